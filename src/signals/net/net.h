/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between net.bpf.c and net.ts: sizes and layouts user space decodes. */
#ifndef __NET_H
#define __NET_H

/* counts has one slot per target plus the host slot; sized to the target count at load (at most this). */
#define NET_SLOTS (TARGET_MAX_SLOTS + 1)
/* (slot, reason) pairs seen; a drop whose pair does not fit is still counted in net_counts.drops. */
#define NET_MAX_REASON_KEYS 4096

/* Lives alone in section .rodata.cfg so it sits at offset 0 of its own map; set between open and load. */
struct net_cfg {
	struct target_filter filter;
};

/* One per target slot, per CPU; cumulative since load. 32 bytes. */
struct net_counts {
	__u64 retrans_segs;	/* segments retransmitted (what the kernel adds to RetransSegs) */
	__u64 retrans_failed;	/* retransmit attempts that failed locally (tracepoint err != 0) */
	__u64 drops;		/* packets freed with a drop reason */
	__u64 unattributed;	/* host slot only: events whose socket was unknown or in no target */
};

/* Key of the per-CPU drop-reason counters (value: __u64). 8 bytes. */
struct net_reason_key {
	__u32 slot;
	__u32 reason;		/* the kernel's enum skb_drop_reason value, as the tracepoint passed it */
};

#endif /* __NET_H */
