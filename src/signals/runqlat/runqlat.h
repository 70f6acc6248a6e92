/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between runqlat.bpf.c and runqlat.ts: sizes and layouts user space decodes. */
#ifndef __RUNQLAT_H
#define __RUNQLAT_H

#define RUNQLAT_BUCKETS 32	/* log2(µs) buckets: [2^i, 2^(i+1)) µs; bucket 0 also holds < 1 µs */
/* hists has one slot per target plus the host slot; sized to the target count at load (at most this). */
#define RUNQLAT_SLOTS (TARGET_MAX_SLOTS + 1)
#define RUNQLAT_MAX_THREADS 8192

/* Lives alone in section .rodata.cfg so it sits at offset 0 of its own map; set between open and load. */
struct runqlat_cfg {
	struct target_filter filter;
	__u8 per_thread;
	__u8 pad[3];
	__u32 wake_min;		/* waits over wake_ns within wake_gap_ns that wake user space */
	__u64 wake_ns;		/* 0: no wakes */
	__u64 wake_gap_ns;	/* at most one wake per slot per this long */
};

/* Per target slot: armed by user space for the targets whose long waits it wants to hear of at once. */
struct runqlat_wake_state {
	__u64 window_ns;	/* start of the current counting window (bpf_ktime_get_ns) */
	__u64 last_ns;		/* the last wake */
	__u32 over;		/* waits over wake_ns in the window */
	__u32 armed;
};

/* A ring buffer record: a slot's waits crossed the line. 24 bytes. */
struct runqlat_wake {
	__u32 slot;
	__u32 over;		/* waits over wake_ns in the window that fired */
	__u64 wait_ns;		/* the wait that fired it */
	__u64 time_ns;		/* bpf_ktime_get_ns at the wake */
};

/* One per target slot, per CPU; cumulative since load. 304 bytes. */
struct runqlat_hist {
	__u64 buckets[RUNQLAT_BUCKETS];
	__u64 count;		/* switches in (= samples in buckets) */
	__u64 wait_ns;		/* run-queue wait, summed */
	__u64 oncpu_ns;		/* on-CPU time of runs that ended, summed */
	__u64 switches_out;	/* context switches away from a target task */
	__u64 preempted;	/* of which involuntary (the task was still runnable) */
	__u64 migrations;	/* CPU migrations of target tasks (se.nr_migrations deltas, seen at switch-in) */
};

/* Per thread of a target, when cfg.per_thread is set. 168 bytes. */
struct runqlat_thread {
	__u32 buckets[RUNQLAT_BUCKETS];
	__u64 count;
	__u64 wait_ns;
	__u64 max_ns;
	__u32 slot;
	__u32 tgid;
};

#endif /* __RUNQLAT_H */
