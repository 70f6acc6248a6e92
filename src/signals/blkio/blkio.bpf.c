// SPDX-License-Identifier: GPL-2.0
/*
 * Block I/O per target and device: latency from issue to the driver until completion, bytes read and written,
 * whether each request continues the previous one (sequential) and the device's queue depth.
 *
 * Attribution: a request belongs to the task that is current when it is inserted into the queue (block_rq_insert),
 * or, for requests issued straight to the driver without an insert (no I/O scheduler, the common case for NVMe,
 * virtio and loop), when it is issued. That is the submitting task for direct and synchronous I/O, except for a request
 * the driver could not take at once: it waits on the hardware queue and kblockd issues it, so no target gets it (rare,
 * and only under a full queue). Buffered writes are written back later by kworker threads (and loop devices pass their
 * I/O on from kworkers too): that I/O belongs to no target, and appears only in the host-wide view.
 *
 * Every request is tracked from issue to completion, target or not, because queue depth is a property of the device:
 * one hash update at issue, one delete at completion. Requests already in flight when the program attaches are
 * never counted, so the depth needs no correction; a requeued request is issued again under the same pointer and
 * counted once.
 *
 * Two variants of the same logic: tp_btf (direct loads from BTF-typed arguments, v5.11+ for these tracepoints'
 * request-only signatures) and raw_tp (bpf_probe_read_kernel). The classic tracepoints carry no request pointer,
 * so there is no third.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.h"
#include "blkio.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct blkio_cfg cfg SEC(".rodata.cfg") = {};

#define REQ_OP_MASK 0xff	/* (1 << REQ_OP_BITS) - 1, include/linux/blk_types.h */
#define MINORBITS 20

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	/* Entries appear once per {target, device} pair: allocated on demand rather than max_entries × CPUs upfront. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BLKIO_MAX_STATS);
	__type(key, struct blkio_key);
	__type(value, struct blkio_stat);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BLKIO_MAX_DEVICES);
	__type(key, __u32);
	__type(value, struct blkio_dev);
} devs SEC(".maps");

/* Where each {slot, device}'s previous request ended (sector), to tell sequential from random. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BLKIO_MAX_STATS);
	__type(key, struct blkio_key);
	__type(value, __u64);
} cursors SEC(".maps");

/* Bumped by user space every tick: a device's max_inflight restarts at each new value. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} epoch SEC(".maps");

DECLARE_TARGET_MAPS();

struct blkio_req {
	__u64 issue_ns;		/* 0: inserted by a target task, not issued yet */
	__u64 sector;		/* first sector when attributed; tells a reused request pointer from its stale entry */
	__u64 bytes;
	struct target_slots slots;	/* none: counts only toward the host view */
	__u32 dev;
	__u8 op;		/* REQ_OP_* */
	__u8 seq;		/* sequential for slots.pid (or the host view when there is no slot) */
	__u8 seq_cgroup;	/* sequential for slots.cgroup: each slot keeps its own cursor */
	__u8 pad;
};

/*
 * A plain hash rather than an LRU one (measured ~100 ns cheaper per request). Entries that never see a completion
 * (an inserted request merged into another and freed) do not pile up: requests are preallocated per tag, so the same
 * pointer comes back soon, and its next insert or issue overwrites the entry (the sector tells it is stale).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BLKIO_MAX_REQUESTS);
	__type(key, __u64);
	__type(value, struct blkio_req);
} reqs SEC(".maps");

/* What the programs need from a request, read the cheapest way each variant allows. */
struct rq_info {
	__u64 sector;
	__u32 bytes;
	__u32 dev;
	__u8 op;
};

/* v5.17 (f3fa33acca9f) removed request.rq_disk; request_queue.disk replaced it. */
struct request___rq_disk {
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

static __always_inline __u32 disk_dev(struct gendisk *disk)
{
	if (!disk)
		return 0;
	return ((__u32)BPF_CORE_READ(disk, major) << MINORBITS) | (__u32)BPF_CORE_READ(disk, first_minor);
}

static __always_inline void rq_info_btf(struct request *rq, struct rq_info *ri)
{
	struct gendisk *disk;

	ri->sector = rq->__sector;
	ri->bytes = rq->__data_len;
	ri->op = rq->cmd_flags & REQ_OP_MASK;
	if (bpf_core_field_exists(((struct request___rq_disk *)0)->rq_disk))
		disk = BPF_CORE_READ((struct request___rq_disk *)rq, rq_disk);
	else
		disk = rq->q->disk;
	ri->dev = disk ? ((__u32)disk->major << MINORBITS) | (__u32)disk->first_minor : 0;
}

static __always_inline void rq_info_raw(struct request *rq, struct rq_info *ri)
{
	struct gendisk *disk;

	ri->sector = BPF_CORE_READ(rq, __sector);
	ri->bytes = BPF_CORE_READ(rq, __data_len);
	ri->op = BPF_CORE_READ(rq, cmd_flags) & REQ_OP_MASK;
	if (bpf_core_field_exists(((struct request___rq_disk *)0)->rq_disk))
		disk = BPF_CORE_READ((struct request___rq_disk *)rq, rq_disk);
	else
		disk = BPF_CORE_READ(rq, q, disk);
	ri->dev = disk_dev(disk);
}

static __always_inline bool is_rw(__u8 op)
{
	return op == REQ_OP_READ || op == REQ_OP_WRITE;
}

/* The current task's slots (common.h). `btf`: walk its cgroup chain with direct loads. */
static __always_inline struct target_slots current_slots(const bool btf)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (btf)
		return TARGET_SLOTS_OF_BTF(cfg.filter, bpf_get_current_task_btf(), tgid);
	return TARGET_SLOTS_OF(cfg.filter, (struct task_struct *)bpf_get_current_task(), tgid);
}

/* Sequential when it starts where the previous request of the same slot on the same device ended. */
static __always_inline __u8 advance_cursor(__u32 slot, struct rq_info *ri)
{
	struct blkio_key key = { .slot = slot, .dev = ri->dev };
	__u64 end = ri->sector + (ri->bytes >> 9), *c;
	__u8 seq = 0;

	c = bpf_map_lookup_elem(&cursors, &key);
	if (c) {
		seq = *c == ri->sector;
		*c = end;
	} else {
		bpf_map_update_elem(&cursors, &key, &end, BPF_ANY);
	}
	return seq;
}

/* Records a request for `slots` (none: it still counts toward the host view when that is on). */
static __always_inline void fill(struct blkio_req *r, struct target_slots slots, struct rq_info *ri)
{
	r->slots = slots;
	r->sector = ri->sector;
	r->bytes = ri->bytes;
	r->dev = ri->dev;
	r->op = ri->op;
	r->seq = 0;
	r->seq_cgroup = 0;
	if (!is_rw(ri->op))
		return;
	if (slots.pid >= 0)
		r->seq = advance_cursor(slots.pid, ri);
	if (slots.cgroup >= 0)
		r->seq_cgroup = advance_cursor(slots.cgroup, ri);
	if (slots.pid < 0 && slots.cgroup >= 0)
		r->seq = r->seq_cgroup;
	else if (!target_slots_any(slots) && cfg.filter.host)
		r->seq = advance_cursor(cfg.filter.host_slot, ri);
}

static __always_inline void on_insert(struct request *rq, struct rq_info *ri, bool btf)
{
	struct blkio_req r = {}, *old;
	__u64 key = (__u64)rq;
	struct target_slots slots = current_slots(btf);

	if (!target_slots_any(slots) && !cfg.filter.host)
		return;
	old = bpf_map_lookup_elem(&reqs, &key);
	/* A requeued request is inserted again while still counted as issued: keep what it has. */
	if (old && old->issue_ns)
		return;
	fill(&r, slots, ri);
	bpf_map_update_elem(&reqs, &key, &r, BPF_ANY);
}

static __always_inline void track_depth(__u32 dev)
{
	struct blkio_dev *d = bpf_map_lookup_elem(&devs, &dev);
	struct blkio_dev zero = {};
	__u32 k = 0;
	__u64 *e, cur = 0, n;

	if (!d) {
		bpf_map_update_elem(&devs, &dev, &zero, BPF_NOEXIST);
		d = bpf_map_lookup_elem(&devs, &dev);
		if (!d)
			return;
	}
	/* The add's own result would need BPF atomics with fetch (v5.12); a re-read is as good for a maximum. */
	__sync_fetch_and_add(&d->inflight, 1);
	n = d->inflight > 0 ? d->inflight : 0;
	e = bpf_map_lookup_elem(&epoch, &k);
	if (e)
		cur = *e;
	if (d->epoch != cur) {
		d->epoch = cur;
		d->max_inflight = n;
	} else if (n > d->max_inflight) {
		d->max_inflight = n;
	}
}

static __always_inline void on_issue(struct request *rq, struct rq_info *ri, bool btf)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_ns();
	struct blkio_req *old = bpf_map_lookup_elem(&reqs, &key);
	struct blkio_req r = {};

	if (old && old->issue_ns) {
		/* Issued again after a requeue: the latency restarts, the depth already counts it. */
		old->issue_ns = now;
		return;
	}
	if (old && old->sector == ri->sector && old->dev == ri->dev) {
		r = *old;
		r.bytes = ri->bytes; /* a request can grow by merges between insert and issue */
	} else {
		fill(&r, current_slots(btf), ri);
	}
	r.issue_ns = now;
	/* Full (that many requests in flight): leave this one out of the depth too, or it would never come off. */
	if (bpf_map_update_elem(&reqs, &key, &r, BPF_ANY))
		return;
	track_depth(ri->dev);
}

static __always_inline void add_stat(__u32 slot, struct blkio_req *r, __u8 seq, __u32 bucket, __u64 delta)
{
	struct blkio_key key = { .slot = slot, .dev = r->dev };
	struct blkio_stat *s = bpf_map_lookup_elem(&stats, &key);

	if (!s) {
		struct blkio_stat zero = {};

		bpf_map_update_elem(&stats, &key, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&stats, &key);
		if (!s)
			return;
	}
	s->buckets[bucket & (BLKIO_BUCKETS - 1)]++;
	s->ios++;
	s->lat_ns += delta;
	if (r->op == REQ_OP_READ)
		s->read_bytes += r->bytes;
	else
		s->write_bytes += r->bytes;
	s->seq += seq;
}

static __always_inline void on_complete(struct request *rq, __u32 remaining, __u32 nr_bytes)
{
	__u64 key = (__u64)rq, delta, now;
	struct blkio_req *r;
	struct blkio_dev *d;
	__u32 bucket;

	/* A request can complete in pieces; only the last one ends it. */
	if (nr_bytes < remaining)
		return;
	r = bpf_map_lookup_elem(&reqs, &key);
	if (!r || !r->issue_ns)
		return;
	now = bpf_ktime_get_ns();
	delta = now > r->issue_ns ? now - r->issue_ns : 0;
	d = bpf_map_lookup_elem(&devs, &r->dev);
	if (d)
		__sync_fetch_and_add(&d->inflight, -1);
	if (is_rw(r->op)) {
		bucket = log2_u64(delta / 1000);
		if (bucket >= BLKIO_BUCKETS)
			bucket = BLKIO_BUCKETS - 1;
		if (r->slots.pid >= 0)
			add_stat(r->slots.pid, r, r->seq, bucket, delta);
		if (r->slots.cgroup >= 0)
			add_stat(r->slots.cgroup, r, r->seq_cgroup, bucket, delta);
		if (cfg.filter.host)
			add_stat(cfg.filter.host_slot, r, r->seq, bucket, delta);
	}
	bpf_map_delete_elem(&reqs, &key);
}

/* --- tp_btf: BTF-typed request pointers (v5.11 for the request-only signatures, a54895fa34c3) --- */

SEC("tp_btf/block_rq_insert")
int BPF_PROG(blkio_insert_btf, struct request *rq)
{
	struct rq_info ri;

	rq_info_btf(rq, &ri);
	on_insert(rq, &ri, true);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(blkio_issue_btf, struct request *rq)
{
	struct rq_info ri;

	rq_info_btf(rq, &ri);
	on_issue(rq, &ri, true);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(blkio_complete_btf, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	on_complete(rq, rq->__data_len, nr_bytes);
	return 0;
}

/* --- raw_tp: the same through bpf_probe_read_kernel (v4.17 for raw tracepoints; same v5.11 signatures) --- */

SEC("raw_tp/block_rq_insert")
int BPF_PROG(blkio_insert_raw, struct request *rq)
{
	struct rq_info ri;

	rq_info_raw(rq, &ri);
	on_insert(rq, &ri, false);
	return 0;
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(blkio_issue_raw, struct request *rq)
{
	struct rq_info ri;

	rq_info_raw(rq, &ri);
	on_issue(rq, &ri, false);
	return 0;
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(blkio_complete_raw, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	on_complete(rq, BPF_CORE_READ(rq, __data_len), nr_bytes);
	return 0;
}
