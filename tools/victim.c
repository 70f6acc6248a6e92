// SPDX-License-Identifier: MIT
/*
 * victim: a latency-sensitive periodic workload for tests, demos and benchmarks.
 *
 * Each worker thread runs requests on a fixed absolute schedule (one every
 * --period-us); a request burns a fixed amount of CPU (--work-us, converted
 * once at start into a spin-iteration count) and its latency is completion
 * time minus scheduled start. Because the schedule is absolute, a late request
 * does not push the next one back: queueing behind a delay is counted, as a
 * real server's clients would see it, instead of being hidden.
 *
 * Output, JSON lines on stdout:
 *   every --report-ms: {"t":s,"count":n,"p50_us":..,"p90_us":..,"p99_us":..,"max_us":..}
 *   at the end:        the same over the whole run plus "final":true
 * "t" is seconds since the schedule started.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common.h"

static const char usage[] =
	"usage: victim [options]\n"
	"  --period-us N    schedule one request every N us per thread (default 5000)\n"
	"  --work-us N      CPU work per request in us, as measured uncontended (default 1000)\n"
	"  --threads N      worker threads, each with its own schedule (default 1)\n"
	"  --report-ms N    interval between report lines (default 1000)\n"
	"  --duration-s N   stop after N seconds; 0 runs until SIGTERM/SIGINT (default 0)\n"
	"  --work-iters N   skip calibration and spin N iterations per request\n"
	"                   (calibration result is printed on stderr, to repeat a run exactly)\n"
	"  --quiet          no calibration message on stderr\n";

/*
 * Log-linear histogram over nanoseconds (HDR-style): values below SUB_COUNT
 * are exact, above that every power of two is split into SUB_COUNT/2 buckets,
 * so a reported percentile is within 1/128 (0.8%) of the true value. The
 * whole table is fixed, so recording a request never allocates.
 */
#define SUB_BITS 8
#define SUB_COUNT (1u << SUB_BITS)
#define SUB_HALF (SUB_COUNT / 2)
#define MAX_BITS 40 /* ~18 minutes; anything slower is clamped */
#define NR_BUCKETS (SUB_COUNT + (MAX_BITS - SUB_BITS) * SUB_HALF)

struct hist {
	uint64_t b[NR_BUCKETS];
	uint64_t count;
	uint64_t max;
};

static inline unsigned int bucket_of(uint64_t v)
{
	unsigned int msb, e;

	if (v >= (1ULL << MAX_BITS))
		v = (1ULL << MAX_BITS) - 1;
	if (v < SUB_COUNT)
		return (unsigned int)v;
	msb = 63 - (unsigned int)__builtin_clzll(v);
	e = msb - (SUB_BITS - 1);
	return SUB_COUNT + (e - 1) * SUB_HALF + (unsigned int)((v >> e) - SUB_HALF);
}

static inline uint64_t bucket_low(unsigned int idx)
{
	unsigned int e;

	if (idx < SUB_COUNT)
		return idx;
	e = (idx - SUB_COUNT) / SUB_HALF + 1;
	return (uint64_t)((idx - SUB_COUNT) % SUB_HALF + SUB_HALF) << e;
}

static inline uint64_t bucket_mid(unsigned int idx)
{
	unsigned int e = idx < SUB_COUNT ? 0 : (idx - SUB_COUNT) / SUB_HALF + 1;

	return bucket_low(idx) + (((1ULL << e) - 1) >> 1);
}

/*
 * Workers record into one shared interval histogram with relaxed atomics and
 * the reporter drains it bucket by bucket with atomic exchange: no lock that a
 * worker could wait on while the reporter runs, which would show up as
 * latency the victim itself caused.
 */
static _Atomic uint64_t live[NR_BUCKETS];
static _Atomic uint64_t live_max;

static struct hist interval, total;

static atomic_bool stop;
static uint64_t period_ns = 5000 * NSEC_PER_USEC;
static uint64_t work_iters;
static uint64_t t0_ns;
static unsigned int nr_threads = 1;
static volatile uint64_t sink;

static void record(uint64_t lat_ns)
{
	uint64_t cur = atomic_load_explicit(&live_max, memory_order_relaxed);

	atomic_fetch_add_explicit(&live[bucket_of(lat_ns)], 1, memory_order_relaxed);
	while (lat_ns > cur &&
	       !atomic_compare_exchange_weak_explicit(&live_max, &cur, lat_ns,
						      memory_order_relaxed,
						      memory_order_relaxed))
		;
}

static void drain(struct hist *h)
{
	h->count = 0;
	h->max = atomic_exchange_explicit(&live_max, 0, memory_order_relaxed);
	for (unsigned int i = 0; i < NR_BUCKETS; i++) {
		h->b[i] = atomic_exchange_explicit(&live[i], 0, memory_order_relaxed);
		h->count += h->b[i];
		/* A request recorded between the max exchange and its bucket's
		 * exchange lands in this interval's buckets but the next
		 * interval's max; keep max >= every counted value. */
		if (h->b[i] && bucket_low(i) > h->max)
			h->max = bucket_low(i);
	}
}

static void merge(struct hist *dst, const struct hist *src)
{
	for (unsigned int i = 0; i < NR_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	if (src->max > dst->max)
		dst->max = src->max;
}

/* Nearest-rank percentile, reported at the bucket midpoint and never above
 * the observed maximum. */
static double pct_us(const struct hist *h, double q)
{
	uint64_t rank, seen = 0, v = 0;

	if (!h->count)
		return 0;
	rank = (uint64_t)(q * (double)h->count);
	if ((double)rank < q * (double)h->count)
		rank++;
	if (!rank)
		rank = 1;
	for (unsigned int i = 0; i < NR_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			v = bucket_mid(i);
			break;
		}
	}
	if (v > h->max)
		v = h->max;
	return (double)v / NSEC_PER_USEC;
}

static void print_line(const struct hist *h, uint64_t at_ns, bool final)
{
	printf("{\"t\":%.3f,\"count\":%llu,\"p50_us\":%.1f,\"p90_us\":%.1f,"
	       "\"p99_us\":%.1f,\"max_us\":%.1f",
	       (double)(at_ns - t0_ns) / NSEC_PER_SEC, (unsigned long long)h->count,
	       pct_us(h, 0.50), pct_us(h, 0.90), pct_us(h, 0.99),
	       (double)h->max / NSEC_PER_USEC);
	if (final)
		printf(",\"threads\":%u,\"period_us\":%llu,\"work_iters\":%llu,\"final\":true",
		       nr_threads, (unsigned long long)(period_ns / NSEC_PER_USEC),
		       (unsigned long long)work_iters);
	printf("}\n");
	fflush(stdout);
}

/*
 * Spin-iteration count for @work_us of CPU. Thread CPU time is used rather
 * than wall time so that a preemption during calibration does not inflate the
 * measured cost; the fastest of several trials is kept because interference
 * (cache, SMT sibling, interrupts) only ever slows a trial down.
 */
static uint64_t calibrate(uint64_t work_us)
{
	uint64_t chunk = 1 << 14, best_ns_x1k = UINT64_MAX, start, ns;

	/* Let the CPU leave any idle/low-frequency state first. */
	start = now_ns(CLOCK_MONOTONIC);
	while (now_ns(CLOCK_MONOTONIC) - start < 20 * NSEC_PER_MSEC)
		sink = spin(chunk, sink);

	for (;;) {
		start = now_ns(CLOCK_THREAD_CPUTIME_ID);
		sink = spin(chunk, sink);
		ns = now_ns(CLOCK_THREAD_CPUTIME_ID) - start;
		if (ns >= 2 * NSEC_PER_MSEC)
			break;
		chunk *= 2;
	}
	for (int trial = 0; trial < 9; trial++) {
		start = now_ns(CLOCK_THREAD_CPUTIME_ID);
		sink = spin(chunk, sink);
		ns = now_ns(CLOCK_THREAD_CPUTIME_ID) - start;
		/* ns per 1000 iterations keeps precision in integer math. */
		if (ns * 1000 / chunk < best_ns_x1k)
			best_ns_x1k = ns * 1000 / chunk;
	}
	if (!best_ns_x1k)
		best_ns_x1k = 1;
	return work_us * NSEC_PER_USEC * 1000 / best_ns_x1k;
}

static void *worker(void *arg)
{
	unsigned int id = (unsigned int)(uintptr_t)arg;
	/* Threads are spread across the period so they do not all compete for
	 * a CPU at the same instant by construction. */
	uint64_t next = t0_ns + period_ns * id / nr_threads;
	uint64_t seed = id + 1;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		struct timespec ts = ns_to_ts(next);

		/* EINTR is the wake-up from stop_workers(); re-check stop. */
		if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
			continue;
		seed = spin(work_iters, seed);
		record(now_ns(CLOCK_MONOTONIC) - next);
		next += period_ns;
	}
	sink = seed;
	return NULL;
}

static void on_wake(int sig)
{
	(void)sig;
}

/*
 * A worker may be asleep until its next deadline, which with a long period is
 * far away: interrupt the sleep instead of waiting it out. The kick repeats
 * because a worker that checked the flag just before it was set sleeps through
 * a kick delivered before it entered clock_nanosleep().
 */
static void stop_workers(pthread_t *tids)
{
	struct sigaction sa = { .sa_handler = on_wake }; /* no SA_RESTART */

	sigaction(SIGUSR1, &sa, NULL);
	atomic_store(&stop, true);
	for (unsigned int i = 0; i < nr_threads; i++) {
		for (;;) {
			struct timespec ts;

			pthread_kill(tids[i], SIGUSR1);
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10 * NSEC_PER_MSEC;
			if (ts.tv_nsec >= (long)NSEC_PER_SEC) {
				ts.tv_sec++;
				ts.tv_nsec -= NSEC_PER_SEC;
			}
			if (pthread_timedjoin_np(tids[i], NULL, &ts) == 0)
				break;
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "period-us", required_argument, NULL, 'p' },
		{ "work-us", required_argument, NULL, 'w' },
		{ "report-ms", required_argument, NULL, 'r' },
		{ "work-iters", required_argument, NULL, 'i' },
		{ "quiet", no_argument, NULL, 'q' },
		COMMON_LONG_OPTIONS,
		{ 0 },
	};
	uint64_t work_us = 1000, report_ns = NSEC_PER_SEC, duration_ns = 0;
	uint64_t next_report, end, now;
	bool quiet = false;
	pthread_t *tids;
	sigset_t sigs;
	int c;

	prog_name = "victim";
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			period_ns = parse_ull(usage, "--period-us", optarg, 1, 60000000) *
				    NSEC_PER_USEC;
			break;
		case 'w':
			work_us = parse_ull(usage, "--work-us", optarg, 0, 60000000);
			break;
		case 'r':
			report_ns = parse_ull(usage, "--report-ms", optarg, 1, 3600000) *
				    NSEC_PER_MSEC;
			break;
		case 'i':
			work_iters = parse_ull(usage, "--work-iters", optarg, 1, UINT64_MAX / 2);
			break;
		case 'q':
			quiet = true;
			break;
		default:
			common_option(c, usage, &nr_threads, &duration_ns);
		}
	}
	no_arguments(argc, argv, usage);

	block_term_signals(&sigs);
	/* The default 50 us timer slack would be measured as latency on every
	 * request; threads inherit the setting. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

	if (!work_iters && work_us)
		work_iters = calibrate(work_us);
	if (!quiet && work_us)
		fprintf(stderr, "victim: %llu us of work = %llu iterations (--work-iters %llu)\n",
			(unsigned long long)work_us, (unsigned long long)work_iters,
			(unsigned long long)work_iters);

	/* Fault the histogram pages in now, not during the first requests. */
	for (unsigned int i = 0; i < NR_BUCKETS; i++)
		atomic_store(&live[i], 0);
	memset(&interval, 0, sizeof(interval));
	memset(&total, 0, sizeof(total));

	/* A common start slightly in the future, so every thread exists before
	 * the first deadline and no request starts late by construction. */
	t0_ns = now_ns(CLOCK_MONOTONIC) + 10 * NSEC_PER_MSEC;
	tids = start_threads(nr_threads, worker, 0);

	next_report = t0_ns + report_ns;
	end = duration_ns ? t0_ns + duration_ns : UINT64_MAX;
	for (;;) {
		if (wait_term_until(&sigs, next_report < end ? next_report : end))
			break;
		now = now_ns(CLOCK_MONOTONIC);
		if (now >= next_report) {
			drain(&interval);
			merge(&total, &interval);
			print_line(&interval, next_report, false);
			next_report += report_ns;
		}
		if (now >= end)
			break;
	}

	stop_workers(tids);
	now = now_ns(CLOCK_MONOTONIC);
	/* The partial interval since the last report only goes into the total. */
	drain(&interval);
	merge(&total, &interval);
	print_line(&total, end < now ? end : now, true);
	free(tids);
	return 0;
}
