/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between futex.bpf.c and futex.ts: sizes and layouts user space decodes. */
#ifndef __FUTEX_H
#define __FUTEX_H

#define FUTEX_BUCKETS 32	/* log2(µs) buckets: [2^i, 2^(i+1)) µs; bucket 0 also holds < 1 µs */
/* hists has one slot per target plus the host slot; sized to the target count at load (at most this). */
#define FUTEX_SLOTS (TARGET_MAX_SLOTS + 1)
/* Distinct {slot, tgid, futex address} triples remembered for the top-N; least recently used ones are evicted. */
#define FUTEX_TOP_ENTRIES 4096
/* Threads with a wait in progress, on the tid-keyed fallback (task storage needs no bound). */
#define FUTEX_MAX_THREADS 16384

/* Lives alone in section .rodata.cfg so it sits at offset 0 of its own map; set between open and load. */
struct futex_wait_cfg {
	struct target_filter filter;
};

/* One per target slot, per CPU; cumulative since load. 272 bytes. */
struct futex_wait_hist {
	__u64 buckets[FUTEX_BUCKETS];
	__u64 count;		/* completed waits (= samples in buckets) */
	__u64 wait_ns;		/* time spent in them, summed */
};

/* Key of the per-address map. 16 bytes, no padding. */
struct futex_addr_key {
	__u64 uaddr;		/* the futex word's user address (the first one, for futex_waitv) */
	__u32 tgid;
	__u32 slot;		/* target slot; the host slot for tasks outside every target */
};

/* Per-CPU value of the per-address map; cumulative since the entry was created. 16 bytes. */
struct futex_addr_stat {
	__u64 wait_ns;
	__u64 count;
};

#endif /* __FUTEX_H */
