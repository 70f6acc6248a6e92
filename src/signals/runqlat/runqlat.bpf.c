// SPDX-License-Identifier: GPL-2.0
/*
 * Run-queue latency and on-CPU time per target, from a single hook on sched_switch.
 *
 * The scheduler already timestamps what we need (CONFIG_SCHED_INFO): at the sched_switch tracepoint
 * next->sched_info.last_queued still holds the rq clock at which `next` became runnable, and
 * prev->sched_info.last_arrival the rq clock at which `prev` got the CPU; sched_info_switch() consumes both right
 * after the tracepoint, against the same rq->clock we read here. So no wakeup hooks and no per-task timestamps are
 * needed: one hook; for tasks outside every target, one or two membership lookups and nothing else.
 *
 * When a wakeup preempts the running task the scheduler skips the clock update in __schedule (RQCF_ACT_SKIP: the
 * wakeup just updated it), so rq->clock can equal last_queued: a wait of 0 by the kernel's own clock, counted as such
 * (>=, not >), which keeps the totals identical to the kernel's schedstat run_delay.
 *
 * The rq is reached through next->se.cfs_rq->rq (set for every task on the CPU it is queued on, whatever its class)
 * rather than the per-CPU `runqueues` ksym, which needs CONFIG_KALLSYMS_ALL — minimal kernels (this one) lack it.
 * se.cfs_rq exists with CONFIG_FAIR_GROUP_SCHED, which every kernel with a cgroup cpu controller has.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.h"
#include "runqlat.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct runqlat_cfg cfg SEC(".rodata.cfg") = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RUNQLAT_SLOTS);
	__type(key, __u32);
	__type(value, struct runqlat_hist);
} hists SEC(".maps");

DECLARE_TARGET_MAPS();

/* Sized to the target count at load, like hists. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RUNQLAT_SLOTS);
	__type(key, __u32);
	__type(value, struct runqlat_wake_state);
} wake_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} wakes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RUNQLAT_MAX_THREADS);
	__type(key, __u32);
	__type(value, struct runqlat_thread);
} threads SEC(".maps");

/*
 * A waiting task that is migrated is dequeued (the kernel adds that segment to sched_info.run_delay) and enqueued
 * again with a new last_queued, so last_queued alone would only show the last segment. We remember the run_delay
 * total seen at each task's previous switch-in; the difference is its whole wait, across migrations. Only target
 * tasks get an entry. Task storage where arguments are BTF-typed; a tid-keyed LRU hash on the raw_tp fallback.
 */
struct task_wait {
	__u64 seen;		/* run_delay total at the previous switch-in; 0 before the first */
	__u64 migrations;	/* se.nr_migrations at the previous switch-in */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_wait);
} task_waits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RUNQLAT_MAX_THREADS);
	__type(key, __u32);
	__type(value, struct task_wait);
} tid_waits SEC(".maps");

static __always_inline struct task_wait *task_wait_of(struct task_struct *t, __u32 tid, bool btf)
{
	struct task_wait *tw;

	if (btf)
		return bpf_task_storage_get(&task_waits, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	tw = bpf_map_lookup_elem(&tid_waits, &tid);
	if (!tw) {
		struct task_wait zero = {};

		bpf_map_update_elem(&tid_waits, &tid, &zero, BPF_NOEXIST);
		tw = bpf_map_lookup_elem(&tid_waits, &tid);
	}
	return tw;
}

static __always_inline struct target_slots slots_of(struct task_struct *t, __u32 tgid, const bool btf)
{
	return TARGET_SLOTS_OF_X(cfg.filter, t, tgid, btf);
}

static __always_inline void account_thread(__u32 tid, __u32 tgid, __u32 slot, __u32 bucket, __u64 delta)
{
	struct runqlat_thread *th = bpf_map_lookup_elem(&threads, &tid);

	if (!th) {
		struct runqlat_thread zero = { .slot = slot, .tgid = tgid };

		bpf_map_update_elem(&threads, &tid, &zero, BPF_NOEXIST);
		th = bpf_map_lookup_elem(&threads, &tid);
		if (!th)
			return;
	}
	th->buckets[bucket & (RUNQLAT_BUCKETS - 1)]++;
	th->count++;
	th->wait_ns += delta;
	if (delta > th->max_ns)
		th->max_ns = delta;
}

/*
 * Event-driven detection: a wait over cfg.wake_ns of a task in an armed slot is counted, and when cfg.wake_min of them
 * fall within cfg.wake_gap_ns the slot's user space is woken through the ring buffer, at most once per wake_gap_ns
 * per slot. The counters are shared between CPUs without locks: a count lost to a race only delays a wake. Only a
 * wait already over the line gets here, so the cost on every other switch is one comparison.
 */
static __always_inline void maybe_wake(__u32 slot, __u64 wait)
{
	struct runqlat_wake_state *ws = bpf_map_lookup_elem(&wake_state, &slot);
	struct runqlat_wake rec;
	__u64 now;
	__u32 over;

	if (!ws || !ws->armed)
		return;
	now = bpf_ktime_get_ns();
	if (now - ws->window_ns > cfg.wake_gap_ns) {
		ws->window_ns = now;
		ws->over = 0;
	}
	/* The add's return value would need BPF v3 atomics (-mcpu=v3); read the counter back instead. */
	__sync_fetch_and_add(&ws->over, 1);
	over = ws->over;
	if (over < cfg.wake_min || now - ws->last_ns < cfg.wake_gap_ns)
		return;
	ws->last_ns = now;
	ws->over = 0;
	ws->window_ns = now;
	rec.slot = slot;
	rec.over = over;
	rec.wait_ns = wait;
	rec.time_ns = now;
	bpf_ringbuf_output(&wakes, &rec, sizeof(rec), 0);
}

/*
 * The slots of the task each CPU switched in last. At the next switch on that CPU it is usually `prev`, whose slots
 * are then known without walking its cgroup chain again: one membership lookup per switch instead of two.
 */
struct cpu_current {
	__u32 pid;
	struct target_slots slots;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_current);
} cpu_current SEC(".maps");

static __always_inline void add_wait(__u32 key, __u32 bucket, __u64 delta, __u64 migrated)
{
	struct runqlat_hist *h = bpf_map_lookup_elem(&hists, &key);

	if (h) {
		h->buckets[bucket & (RUNQLAT_BUCKETS - 1)]++;
		h->count++;
		h->wait_ns += delta;
		h->migrations += migrated;
	}
}

static __always_inline void add_run(__u32 key, __u64 ran, bool involuntary)
{
	struct runqlat_hist *h = bpf_map_lookup_elem(&hists, &key);

	if (h) {
		h->oncpu_ns += ran;
		h->switches_out++;
		h->preempted += involuntary;
	}
}

static __always_inline void on_switch(bool involuntary, struct task_struct *prev, struct task_struct *next,
				      __u64 now, __u64 queued, __u64 run_delay, __u64 migrations, __u64 arrived,
				      __u32 next_pid, __u32 next_tgid, __u32 prev_pid, __u32 prev_tgid, const bool btf)
{
	__u32 zero = 0, nslots = cfg.filter.host_slot;
	struct cpu_current *cur = bpf_map_lookup_elem(&cpu_current, &zero);
	struct target_slots prev_s = TARGET_NO_SLOTS, next_s = TARGET_NO_SLOTS;

	if (prev_pid) {
		if (cur && cur->pid == prev_pid)
			prev_s = cur->slots;
		else
			prev_s = slots_of(prev, prev_tgid, btf);
	}
	if (next_pid)
		next_s = slots_of(next, next_tgid, btf);
	if (cur) {
		cur->pid = next_pid;
		cur->slots = next_s;
	}

	/* `next` waited on the run queue from `queued` until now (plus earlier segments, if it was migrated). */
	if (next_pid && queued && now >= queued && (target_slots_any(next_s) || cfg.filter.host)) {
		__u64 delta = now - queued, total = run_delay + delta, migrated = 0;
		struct task_wait *tw = task_wait_of(next, next_pid, btf);
		__u32 bucket;

		if (tw) {
			if (tw->seen && total > tw->seen && total - tw->seen > delta)
				delta = total - tw->seen;
			if (tw->seen && migrations > tw->migrations)
				migrated = migrations - tw->migrations;
			tw->seen = total;
			tw->migrations = migrations;
		}
		bucket = log2_u64(delta / 1000);
		if (bucket >= RUNQLAT_BUCKETS)
			bucket = RUNQLAT_BUCKETS - 1;
		if (next_s.pid >= 0)
			add_wait(next_s.pid, bucket, delta, migrated);
		if (next_s.cgroup >= 0)
			add_wait(next_s.cgroup, bucket, delta, migrated);
		if (cfg.per_thread && target_slots_any(next_s))
			account_thread(next_pid, next_tgid, target_slots_first(next_s), bucket, delta);
		if (cfg.filter.host)
			add_wait(nslots, bucket, delta, migrated);
		if (cfg.wake_ns && delta >= cfg.wake_ns) {
			if (next_s.pid >= 0)
				maybe_wake(next_s.pid, delta);
			if (next_s.cgroup >= 0)
				maybe_wake(next_s.cgroup, delta);
		}
	}

	/* `prev` ran from `arrived` until now. */
	if (prev_pid && arrived && now >= arrived) {
		if (prev_s.pid >= 0)
			add_run(prev_s.pid, now - arrived, involuntary);
		if (prev_s.cgroup >= 0)
			add_run(prev_s.cgroup, now - arrived, involuntary);
		if (cfg.filter.host)
			add_run(nslots, now - arrived, involuntary);
	}
}

/* Before v5.14 the field was `state` (commit 2f064a59a11f, "sched: Change task_struct::state"). */
struct task_struct___pre_5_14 {
	volatile long state;
} __attribute__((preserve_access_index));

/*
 * Whether `prev` is switched out involuntarily, as the kernel counts it in nivcsw (/proc/<pid>/status
 * nonvoluntary_ctxt_switches): it was preempted, or it is still runnable. The tracepoint's `preempt` alone is only
 * set for preemption inside the kernel (SM_PREEMPT); a task preempted on its way back to user space — every tick
 * preemption of a CPU-bound task, and the only kind on a PREEMPT_NONE kernel — is switched out through schedule()
 * with `preempt` false and its state still TASK_RUNNING. The state is read from the task rather than from the
 * tracepoint's prev_state argument, which only exists since v5.18 (commit fa2c3254d7cf); at the tracepoint the two
 * agree, except that a task woken in between shows TASK_WAKING, which is not 0 either: it did block.
 */
static __always_inline bool switched_out_runnable(bool preempt, struct task_struct *prev, const bool btf)
{
	if (preempt)
		return true;
	if (bpf_core_field_exists(prev->__state))
		return (btf ? prev->__state : BPF_CORE_READ(prev, __state)) == 0;
	return BPF_CORE_READ((struct task_struct___pre_5_14 *)prev, state) == 0;
}

/* BTF-typed arguments: direct loads, the cheapest form (v5.5+). */
SEC("tp_btf/sched_switch")
int BPF_PROG(runqlat_switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct cfs_rq *cfs = next->se.cfs_rq;
	struct rq *rq = cfs ? cfs->rq : NULL;

	if (!rq)
		return 0;
	on_switch(switched_out_runnable(preempt, prev, true), prev, next, rq->clock, next->sched_info.last_queued,
		  next->sched_info.run_delay, next->se.nr_migrations, prev->sched_info.last_arrival, next->pid, next->tgid,
		  prev->pid, prev->tgid, true);
	return 0;
}

/* Fallback for kernels without tp_btf (v4.17+): the same, reading through bpf_probe_read_kernel. */
SEC("raw_tp/sched_switch")
int BPF_PROG(runqlat_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct rq *rq = BPF_CORE_READ(next, se.cfs_rq, rq);

	if (!rq)
		return 0;
	on_switch(switched_out_runnable(preempt, prev, false), prev, next, BPF_CORE_READ(rq, clock), BPF_CORE_READ(next, sched_info.last_queued),
		  BPF_CORE_READ(next, sched_info.run_delay), BPF_CORE_READ(next, se.nr_migrations),
		  BPF_CORE_READ(prev, sched_info.last_arrival),
		  BPF_CORE_READ(next, pid), BPF_CORE_READ(next, tgid), BPF_CORE_READ(prev, pid),
		  BPF_CORE_READ(prev, tgid), false);
	return 0;
}
