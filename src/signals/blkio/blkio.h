/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between blkio.bpf.c and blkio.ts: sizes and layouts user space decodes. */
#ifndef __BLKIO_H
#define __BLKIO_H

#define BLKIO_BUCKETS 32	/* log2(µs) buckets: [2^i, 2^(i+1)) µs; bucket 0 also holds < 1 µs */
#define BLKIO_MAX_STATS 4096	/* {slot, device} pairs */
#define BLKIO_MAX_DEVICES 512
#define BLKIO_MAX_REQUESTS 16384	/* requests between issue and completion, host-wide */

/* Lives alone in section .rodata.cfg so it sits at offset 0 of its own map; set between open and load. */
struct blkio_cfg {
	struct target_filter filter;
};

/* Key of the per-target, per-device statistics. 8 bytes. */
struct blkio_key {
	__u32 slot;		/* target slot, or the host slot */
	__u32 dev;		/* the whole disk's dev_t as the kernel encodes it: major << 20 | minor */
};

/* Per {slot, device}, per CPU; cumulative since load. Read and write requests only. 296 bytes. */
struct blkio_stat {
	__u64 buckets[BLKIO_BUCKETS];	/* issue → completion latency */
	__u64 ios;		/* completed requests (= samples in buckets) */
	__u64 lat_ns;		/* their latency, summed */
	__u64 read_bytes;
	__u64 write_bytes;
	__u64 seq;		/* requests that started where the slot's previous request on the device ended */
};

/* Per device, shared by all CPUs. 24 bytes. */
struct blkio_dev {
	__s64 inflight;		/* issued and not yet completed, every task's requests */
	__u64 max_inflight;	/* highest inflight seen at an issue during epoch `epoch` */
	__u64 epoch;		/* the value of the epoch map when max_inflight was last reset */
};

#endif /* __BLKIO_H */
