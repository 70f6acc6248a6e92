// SPDX-License-Identifier: GPL-2.0
/*
 * TCP retransmits and packet drops (with the kernel's drop reason) per target, from two tracepoints:
 * tcp/tcp_retransmit_skb and skb/kfree_skb.
 *
 * Both fire wherever the stack happens to be — the retransmit timer, the softirq that processes an ACK, the receive
 * path of another namespace — so the current task says nothing about who owns the traffic. Events are attributed by
 * the socket instead: the cgroup v2 cgroup recorded in the socket when it was created (sk->sk_cgrp_data, inherited
 * by accepted sockets from their listener). User space fills cgroup_slots with v2 cgroup ids only, so a v1 target
 * matches through the v2 cgroups that hold nothing but its processes (see net.ts). A drop is attributed through
 * skb->sk (transmit path, or the receiver's socket once early demux or the socket lookup set it), else through the
 * tracepoint's rx_sk; with neither it counts for the host only.
 *
 * Both events are rare next to a scheduler hook: each costs one membership lookup and a per-CPU add, plus one hash
 * update per drop for the reason breakdown.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.h"
#include "net.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct net_cfg cfg SEC(".rodata.cfg") = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NET_SLOTS);
	__type(key, __u32);
	__type(value, struct net_counts);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NET_MAX_REASON_KEYS);
	__type(key, struct net_reason_key);
	__type(value, __u64);
} reasons SEC(".maps");

DECLARE_TARGET_MAPS();

/*
 * Layouts that differ between kernels, matched by CO-RE (the ___net suffix is ignored when matching):
 * - tcp_retransmit_skb's `err` argument: v6.17, ad892e912b84 ("tcp: trace retransmit failures in
 *   tcp_retransmit_skb"); since then the tracepoint also fires for attempts that failed locally.
 * - kfree_skb's `reason`: v5.17, c504e5c2f964 ("net: skb: introduce kfree_skb_reason()").
 * - kfree_skb's `rx_sk`: v6.11 ("net: add rx_sk to trace_kfree_skb").
 * - sock_cgroup_data.cgroup as a plain pointer: v5.15, 8520e224f547 ("bpf, cgroups: Fix cgroup v2 fallback on
 *   v1/v2 mixed mode"); before it the pointer shared a word with v1 net_cls/net_prio data, and we do not attribute.
 * The raw tracepoint structs exist with the same fields the arguments have, so they serve as the feature test.
 */
struct trace_event_raw_tcp_retransmit_skb___net {
	int err;
} __attribute__((preserve_access_index));

struct trace_event_raw_kfree_skb___net {
	void *rx_sk;
	enum skb_drop_reason reason;
} __attribute__((preserve_access_index));

struct sock_cgroup_data___net {
	struct cgroup *cgroup;
} __attribute__((preserve_access_index));

struct sock___net {
	struct sock_cgroup_data___net sk_cgrp_data;
} __attribute__((preserve_access_index));

static __always_inline int sock_slot(const struct sock *sk)
{
	struct sock___net *s = (struct sock___net *)sk;
	struct cgroup *cg;
	__u64 id;
	__u32 *slot;
	__u8 state;

	if (!sk || !cfg.filter.match_cgroups)
		return -1;
	if (!bpf_core_field_exists(s->sk_cgrp_data) || !bpf_core_field_exists(s->sk_cgrp_data.cgroup))
		return -1;
	/* Request and time-wait minisocks share sock_common but have no sk_cgrp_data. */
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV)
		return -1;
	cg = BPF_CORE_READ(s, sk_cgrp_data.cgroup);
	if (!cg)
		return -1;
	id = BPF_CORE_READ(cg, kn, id);
	slot = bpf_map_lookup_elem(&cgroup_slots, &id);
	if (!slot || *slot >= cfg.filter.host_slot)
		return -1;
	return *slot;
}

static __always_inline struct net_counts *counts_of(__u32 slot)
{
	return bpf_map_lookup_elem(&counts, &slot);
}

static __always_inline void count_reason(__u32 slot, __u32 reason)
{
	struct net_reason_key key = { .slot = slot, .reason = reason };
	__u64 *n = bpf_map_lookup_elem(&reasons, &key);

	if (!n) {
		__u64 zero = 0;

		bpf_map_update_elem(&reasons, &key, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&reasons, &key);
		if (!n)
			return;
	}
	*n += 1;
}

static __always_inline void on_retransmit(const struct sock *sk, const struct sk_buff *skb, int err)
{
	const struct tcp_skb_cb *cb;
	struct net_counts *c;
	__u64 segs;
	int slot;

	/* What tcp_skb_pcount() returns: the kernel adds the same number to RetransSegs. */
	cb = (const void *)skb + bpf_core_field_offset(struct sk_buff, cb);
	segs = BPF_CORE_READ(cb, tcp_gso_segs);
	if (!segs)
		segs = 1;
	slot = sock_slot(sk);
	if (slot >= 0) {
		c = counts_of(slot);
		if (c) {
			if (err)
				c->retrans_failed++;
			else
				c->retrans_segs += segs;
		}
	}
	if (cfg.filter.host) {
		c = counts_of(cfg.filter.host_slot);
		if (c) {
			if (err)
				c->retrans_failed++;
			else
				c->retrans_segs += segs;
			if (slot < 0)
				c->unattributed++;
		}
	}
}

static __always_inline void on_drop(struct sk_buff *skb, __u32 reason, struct sock *rx_sk)
{
	struct net_counts *c;
	struct sock *sk;
	int slot;

	/* Kernels before v6.2 also passed freed-after-use packets through kfree_skb as SKB_CONSUMED. */
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED))
		return;
	sk = BPF_CORE_READ(skb, sk);
	if (!sk)
		sk = rx_sk;
	slot = sock_slot(sk);
	if (slot >= 0) {
		c = counts_of(slot);
		if (c)
			c->drops++;
		count_reason(slot, reason);
	}
	if (cfg.filter.host) {
		c = counts_of(cfg.filter.host_slot);
		if (c) {
			c->drops++;
			if (slot < 0)
				c->unattributed++;
		}
		count_reason(cfg.filter.host_slot, reason);
	}
}

/*
 * The tracepoints' arguments, decoded once for both program kinds. tcp_retransmit_skb(sk, skb[, err]) and
 * kfree_skb(skb, location[, reason[, rx_sk]]): the trailing ones only where this kernel's tracepoint has them.
 */
static __always_inline int retransmit_args(unsigned long long *ctx)
{
	int err = 0;

	if (bpf_core_field_exists(struct trace_event_raw_tcp_retransmit_skb___net, err))
		err = (int)ctx[2];
	on_retransmit((const struct sock *)ctx[0], (const struct sk_buff *)ctx[1], err);
	return 0;
}

static __always_inline int drop_args(unsigned long long *ctx)
{
	struct sock *rx_sk = NULL;
	__u32 reason = 0;

	if (bpf_core_field_exists(struct trace_event_raw_kfree_skb___net, reason))
		reason = (__u32)ctx[2];
	if (bpf_core_field_exists(struct trace_event_raw_kfree_skb___net, rx_sk))
		rx_sk = (struct sock *)ctx[3];
	on_drop((struct sk_buff *)ctx[0], reason, rx_sk);
	return 0;
}

/* BTF-typed arguments (v5.5+): the cheapest form. */
SEC("tp_btf/tcp_retransmit_skb")
int net_retransmit_btf(unsigned long long *ctx)
{
	return retransmit_args(ctx);
}

SEC("tp_btf/kfree_skb")
int net_drop_btf(unsigned long long *ctx)
{
	return drop_args(ctx);
}

/* Fallbacks for kernels without tp_btf (v4.17+): the same arguments, read through bpf_probe_read_kernel. */
SEC("raw_tp/tcp_retransmit_skb")
int net_retransmit_raw(unsigned long long *ctx)
{
	return retransmit_args(ctx);
}

SEC("raw_tp/kfree_skb")
int net_drop_raw(unsigned long long *ctx)
{
	return drop_args(ctx);
}
