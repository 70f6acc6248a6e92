// SPDX-License-Identifier: MIT
/*
 * numa-touch: a workload whose memory stays resident and hot, for the NUMA
 * tests. It maps --mib MiB of anonymous memory, writes every page once (so
 * every page is allocated, on whatever node the memory policy it runs under
 * picks: run it under `numactl --membind=N` to choose), then --threads
 * threads keep writing one word in every page until --duration-s elapses or a
 * SIGTERM/SIGINT arrives, and it exits 0.
 *
 * It allocates nothing after the first pass, so what numa_maps shows is the
 * placement of that first pass plus whatever was migrated since, and the
 * threads' CPU time is spent touching that memory: where they run decides
 * whether their accesses are local or remote.
 *
 * Output, one JSON line on stdout once every page is written:
 *   {"ready":true,"mib":N,"threads":N}
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

static const char usage[] =
	"usage: numa-touch [--mib N] [--threads N] [--duration-s S]\n"
	"  --mib N          anonymous memory to allocate and keep touching (default 256)\n"
	"  --threads N      threads touching it (default 1)\n"
	"  --duration-s S   stop after S seconds; 0 runs until SIGTERM/SIGINT (default 0)\n";

static atomic_bool stop;
static volatile unsigned char *mem;
static size_t mem_len;
static size_t page;

static void *toucher(void *arg)
{
	uint64_t x = (uintptr_t)arg;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		/* One word per page: every page stays referenced without turning
		 * the loop into a memory-bandwidth benchmark. */
		for (size_t off = 0; off < mem_len; off += page)
			mem[off] = (unsigned char)(x += mem[off] + 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		COMMON_LONG_OPTIONS,
		{ 0 },
	};
	unsigned long long mib = 256;
	unsigned int nr_threads = 1;
	uint64_t duration_ns = 0;
	pthread_t *tids;
	sigset_t sigs;
	void *p;
	int c;

	prog_name = "numa-touch";
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			mib = parse_ull(usage, "--mib", optarg, 1, 1ULL << 20);
			break;
		default:
			common_option(c, usage, &nr_threads, &duration_ns);
		}
	}
	no_arguments(argc, argv, usage);

	block_term_signals(&sigs);
	page = (size_t)sysconf(_SC_PAGESIZE);
	mem_len = (size_t)mib << 20;
	p = mmap(NULL, mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("numa-touch: mmap");
		return 1;
	}
	mem = p;
	/* The first write allocates each page under the memory policy in force. */
	for (size_t off = 0; off < mem_len; off += page)
		mem[off] = 1;
	printf("{\"ready\":true,\"mib\":%llu,\"threads\":%u}\n", mib, nr_threads);
	fflush(stdout);

	tids = start_threads(nr_threads, toucher, 1);

	wait_term_until(&sigs, duration_ns ? now_ns(CLOCK_MONOTONIC) + duration_ns : UINT64_MAX);

	atomic_store(&stop, true);
	join_threads(tids, nr_threads);
	munmap(p, mem_len);
	return 0;
}
