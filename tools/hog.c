// SPDX-License-Identifier: MIT
/*
 * hog: N threads that never sleep, the CPU competitor that makes the victim's
 * scheduling latency visible. Runs until --duration-s elapses or a
 * SIGTERM/SIGINT arrives, then exits 0.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include "common.h"

static const char usage[] =
	"usage: hog [--threads N] [--duration-s S]\n"
	"  --threads N      spinning threads (default: online CPUs)\n"
	"  --duration-s S   stop after S seconds; 0 runs until SIGTERM/SIGINT (default 0)\n";

static atomic_bool stop;
static volatile uint64_t sink;

static void *spinner(void *arg)
{
	uint64_t x = (uintptr_t)arg;

	/* Chunks short enough that stopping is prompt, long enough that the
	 * flag check costs nothing. */
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		x = spin(1 << 16, x);
	sink = x;
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_LONG_OPTIONS,
		{ 0 },
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int nr_threads = ncpu > 0 ? (unsigned int)ncpu : 1;
	uint64_t duration_ns = 0;
	pthread_t *tids;
	sigset_t sigs;
	int c;

	prog_name = "hog";
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
		common_option(c, usage, &nr_threads, &duration_ns);
	no_arguments(argc, argv, usage);

	block_term_signals(&sigs);
	tids = start_threads(nr_threads, spinner, 1);

	wait_term_until(&sigs, duration_ns ? now_ns(CLOCK_MONOTONIC) + duration_ns : UINT64_MAX);

	atomic_store(&stop, true);
	join_threads(tids, nr_threads);
	return 0;
}
