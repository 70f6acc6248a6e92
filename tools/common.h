/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the workload programs: option parsing, clocks, signal
 * handling and a CPU-burning loop the optimiser cannot remove.
 */
#ifndef TOOLS_COMMON_H
#define TOOLS_COMMON_H

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NSEC_PER_SEC 1000000000ULL
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_USEC 1000ULL

static const char *prog_name = "tool";

static inline uint64_t ts_to_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * NSEC_PER_SEC + (uint64_t)ts->tv_nsec;
}

static inline struct timespec ns_to_ts(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / NSEC_PER_SEC),
		.tv_nsec = (long)(ns % NSEC_PER_SEC),
	};
	return ts;
}

static inline uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts_to_ns(&ts);
}

static inline void die_usage(const char *usage, const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", prog_name);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s", usage);
	exit(2);
}

/* Strict: "10x", "", negatives and overflow are all rejected, so a typo in a
 * benchmark script fails loudly instead of running a different workload. */
static inline unsigned long long parse_ull(const char *usage, const char *opt,
					   const char *val, unsigned long long min,
					   unsigned long long max)
{
	unsigned long long v;
	char *end;

	if (!val)
		die_usage(usage, "option %s needs a value", opt);
	if (val[0] == '-')
		die_usage(usage, "invalid value for option: %s", opt);
	errno = 0;
	v = strtoull(val, &end, 10);
	if (errno || end == val || *end || v < min || v > max)
		die_usage(usage, "invalid value for option: %s", opt);
	return v;
}

/*
 * Termination signals are blocked in every thread and collected by the main
 * thread with sigtimedwait(), so workers are never interrupted mid-request
 * and no async-signal-safety rules apply to the shutdown path.
 */
static inline void block_term_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* Returns 1 if a termination signal arrived before the absolute monotonic
 * deadline @until_ns, 0 once the deadline has passed. */
static inline int wait_term_until(const sigset_t *set, uint64_t until_ns)
{
	for (;;) {
		uint64_t now = now_ns(CLOCK_MONOTONIC);
		struct timespec rel;

		if (now >= until_ns)
			return 0;
		rel = ns_to_ts(until_ns - now);
		if (sigtimedwait(set, NULL, &rel) >= 0)
			return 1;
		if (errno != EAGAIN && errno != EINTR) {
			perror("sigtimedwait");
			exit(1);
		}
	}
}

/* The empty asm makes each iteration's result observable, so -O2 keeps one
 * multiply-add per iteration and the cost per iteration stays stable. */
static inline uint64_t spin(uint64_t iters, uint64_t seed)
{
	uint64_t x = seed | 1;

	for (uint64_t i = 0; i < iters; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		__asm__ __volatile__("" : "+r"(x));
	}
	return x;
}

/* The long options every tool takes, for the end of its option table (before { 0 }). */
#define COMMON_LONG_OPTIONS                                   \
	{ "threads", required_argument, NULL, 't' },          \
	{ "duration-s", required_argument, NULL, 'd' },       \
	{ "help", no_argument, NULL, 'h' }

/*
 * The options every tool takes, for the default branch of its getopt switch:
 * --threads, --duration-s (0 = until SIGTERM/SIGINT), --help, and anything
 * unknown, which ends the program with the usage text.
 */
static inline void common_option(int c, const char *usage, unsigned int *nr_threads,
				 uint64_t *duration_ns)
{
	switch (c) {
	case 't':
		*nr_threads = (unsigned int)parse_ull(usage, "--threads", optarg, 1, 4096);
		return;
	case 'd':
		*duration_ns = parse_ull(usage, "--duration-s", optarg, 0, 31536000) *
			       NSEC_PER_SEC;
		return;
	case 'h':
		fputs(usage, stdout);
		exit(0);
	default:
		fputs(usage, stderr);
		exit(2);
	}
}

/* After the getopt loop: the tools take no positional arguments. */
static inline void no_arguments(int argc, char **argv, const char *usage)
{
	if (optind < argc)
		die_usage(usage, "unexpected argument: %s", argv[optind]);
}

/*
 * Starts `n` threads running `fn`, the i-th given `first + i` as its argument;
 * any failure ends the program, as nothing can run without its threads.
 */
static inline pthread_t *start_threads(unsigned int n, void *(*fn)(void *), uintptr_t first)
{
	pthread_t *tids = calloc(n, sizeof(*tids));

	if (!tids) {
		fprintf(stderr, "%s: calloc: %s\n", prog_name, strerror(errno));
		exit(1);
	}
	for (unsigned int i = 0; i < n; i++) {
		int err = pthread_create(&tids[i], NULL, fn, (void *)(first + i));

		if (err) {
			fprintf(stderr, "%s: create thread: %s\n", prog_name, strerror(err));
			exit(1);
		}
	}
	return tids;
}

/* Waits for the threads start_threads made (told to stop by the caller) and frees their ids. */
static inline void join_threads(pthread_t *tids, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		pthread_join(tids[i], NULL);
	free(tids);
}

#endif /* TOOLS_COMMON_H */
