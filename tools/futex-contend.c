// SPDX-License-Identifier: MIT
/*
 * futex-contend: N threads taking one pthread mutex around a short critical
 * section, so that lock hand-offs go through futex_wait/futex_wake in the
 * kernel — the workload behind the futex contention signal.
 *
 * Prints one JSON line at the end:
 *   {"t":s,"threads":n,"acquisitions":n,"per_s":..,"final":true}
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include "common.h"

static const char usage[] =
	"usage: futex-contend [--threads N] [--duration-s S] [--cs-iters N] [--outside-iters N]\n"
	"  --threads N        contending threads (default 4)\n"
	"  --duration-s S     stop after S seconds; 0 runs until SIGTERM/SIGINT (default 0)\n"
	"  --cs-iters N       spin iterations while holding the lock (default 200)\n"
	"  --outside-iters N  spin iterations between acquisitions (default 200)\n";

/* A default (non-adaptive) mutex: a contended lock sleeps in the kernel
 * right away instead of spinning in user space, which is what we want to
 * be visible. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t acquisitions; /* guarded by lock: the shared state */
static atomic_bool stop;
static uint64_t cs_iters = 200, outside_iters = 200;
static volatile uint64_t sink;

static void *contender(void *arg)
{
	uint64_t x = (uintptr_t)arg;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		pthread_mutex_lock(&lock);
		x = spin(cs_iters, x);
		acquisitions++;
		pthread_mutex_unlock(&lock);
		x = spin(outside_iters, x);
	}
	sink = x;
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cs-iters", required_argument, NULL, 'c' },
		{ "outside-iters", required_argument, NULL, 'o' },
		COMMON_LONG_OPTIONS,
		{ 0 },
	};
	unsigned int nr_threads = 4;
	uint64_t duration_ns = 0, start, elapsed;
	pthread_t *tids;
	sigset_t sigs;
	int c;

	prog_name = "futex-contend";
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cs_iters = parse_ull(usage, "--cs-iters", optarg, 0, 1000000000);
			break;
		case 'o':
			outside_iters = parse_ull(usage, "--outside-iters", optarg, 0, 1000000000);
			break;
		default:
			common_option(c, usage, &nr_threads, &duration_ns);
		}
	}
	no_arguments(argc, argv, usage);

	block_term_signals(&sigs);
	start = now_ns(CLOCK_MONOTONIC);
	tids = start_threads(nr_threads, contender, 1);

	wait_term_until(&sigs, duration_ns ? start + duration_ns : UINT64_MAX);

	atomic_store(&stop, true);
	join_threads(tids, nr_threads);
	elapsed = now_ns(CLOCK_MONOTONIC) - start;
	printf("{\"t\":%.3f,\"threads\":%u,\"acquisitions\":%llu,\"per_s\":%.0f,\"final\":true}\n",
	       (double)elapsed / NSEC_PER_SEC, nr_threads, (unsigned long long)acquisitions,
	       elapsed ? (double)acquisitions * NSEC_PER_SEC / (double)elapsed : 0.0);
	return 0;
}
