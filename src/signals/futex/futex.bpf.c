// SPDX-License-Identifier: GPL-2.0
/*
 * Futex wait time per target, and the futex addresses each process waits on longest.
 *
 * A wait is a thread blocked inside a futex syscall that can sleep (FUTEX_WAIT, WAIT_BITSET, WAIT_REQUEUE_PI, LOCK_PI,
 * LOCK_PI2, and futex_waitv / futex_wait where the kernel has them): the time the thread was off the CPU on
 * user-space synchronisation (a contended mutex, a condition variable, a join), whatever the outcome (woken, timed
 * out, interrupted). FUTEX_WAKE and friends never block and are skipped before anything else is looked at.
 *
 * Hook variants of the same logic; user space loads the first that works, cheapest first:
 *   sched_switch      tp_btf/sched_switch, the hook the runqlat signal already runs on: when a task leaves the CPU
 *                     blocked (not preempted), its user registers (bpf_task_pt_regs, v5.15) tell whether it is inside
 *                     a futex wait syscall and on which address; the wait is timed from that switch-out to its next
 *                     switch-in. Syscalls that do not block (a wake, a wait that returns EAGAIN at once, every other
 *                     syscall) cost nothing.
 *   sched_switch_raw  the same on raw_tp/sched_switch, the wait in progress in a tid-keyed hash (next is no BTF
 *                     pointer there).
 *   tracepoint        syscalls/sys_{enter,exit}_futex (+ _futex_waitv, _futex_wait), timed from syscall entry to
 *                     exit (kernels before v5.15): turns on the syscall trace slow path for every syscall of every
 *                     task (README, Overhead).
 *   tp_btf            raw sys_enter / sys_exit, BTF-typed, filtered by syscall number: runs on every syscall of every
 *                     task; for kernels without syscall trace events (CONFIG_FTRACE_SYSCALLS=n).
 *   raw_tp            the same through bpf_probe_read_kernel, for kernels without tp_btf.
 * The wait in progress lives in task storage wherever both ends have a BTF task pointer, else in a tid-keyed LRU hash.
 *
 * Syscall numbers: futex is arch-specific; futex_waitv (449, v5.16) and futex_wait (454, v6.7) come from the shared
 * table and are the same on every architecture. 32-bit compat tasks on x86-64 use other numbers and are not seen by
 * the variants that match syscall numbers.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.h"
#include "futex.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct futex_wait_cfg cfg SEC(".rodata.cfg") = {};

/* uapi/linux/futex.h: macros, so absent from vmlinux.h. */
#define FUTEX_WAIT		0
#define FUTEX_LOCK_PI		6
#define FUTEX_WAIT_BITSET	9
#define FUTEX_WAIT_REQUEUE_PI	11
#define FUTEX_LOCK_PI2		13
#define FUTEX_PRIVATE_FLAG	128
#define FUTEX_CLOCK_REALTIME	256

#if defined(__TARGET_ARCH_x86)
#define NR_FUTEX 202
#define HAVE_SYSCALL_NR 1
#define SYSCALL_NR_DIRECT(regs) ((regs)->orig_ax)
#define SYSCALL_NR_CORE(regs) BPF_CORE_READ(regs, orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define NR_FUTEX 98
#define HAVE_SYSCALL_NR 1
#define SYSCALL_NR_DIRECT(regs) ((regs)->syscallno)
#define SYSCALL_NR_CORE(regs) BPF_CORE_READ(regs, syscallno)
#else
/* Unknown syscall table: only the tracepoint variant (named events, no numbers) can work. */
#define NR_FUTEX -1
#define HAVE_SYSCALL_NR 0
#define SYSCALL_NR_DIRECT(regs) (-1L)
#define SYSCALL_NR_CORE(regs) (-1L)
#endif
#define NR_FUTEX_WAITV 449
#define NR_FUTEX_WAIT 454

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FUTEX_SLOTS);
	__type(key, __u32);
	__type(value, struct futex_wait_hist);
} hists SEC(".maps");

/* Per-CPU so that threads contending on one lock from different CPUs do not also contend on its counters. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, FUTEX_TOP_ENTRIES);
	__type(key, struct futex_addr_key);
	__type(value, struct futex_addr_stat);
} top SEC(".maps");

DECLARE_TARGET_MAPS();

/*
 * A wait in progress. Only threads of targets (or every thread, in host mode) get one. Which targets it counts for is
 * looked up again when it ends (on_exit_of), not kept from its start.
 */
struct futex_pending {
	__u64 start_ns;		/* 0: no wait in progress */
	__u64 uaddr;
	__u32 tgid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct futex_pending);
} task_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FUTEX_MAX_THREADS);
	__type(key, __u32);
	__type(value, struct futex_pending);
} tid_pending SEC(".maps");

static __always_inline bool is_wait_op(__u64 op)
{
	switch ((__u32)op & ~(__u32)(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)) {
	case FUTEX_WAIT:
	case FUTEX_WAIT_BITSET:
	case FUTEX_WAIT_REQUEUE_PI:
	case FUTEX_LOCK_PI:
	case FUTEX_LOCK_PI2:
		return true;
	default:
		return false;
	}
}

/* futex_waitv(waiters, nr, ...): the first waiter's address stands for the set. */
static __always_inline __u64 waitv_uaddr(__u64 waiters)
{
	struct futex_waitv w = {};

	if (bpf_probe_read_user(&w, sizeof(w), (void *)waiters))
		return 0;
	return w.uaddr;
}

/* BTF variants walk the task's cgroup chain with direct loads (common.h), the bulk of what a non-target pays. */
static __always_inline struct target_slots slots_of(struct task_struct *t, __u32 tgid, const bool btf)
{
	return TARGET_SLOTS_OF_X(cfg.filter, t, tgid, btf);
}

static __always_inline void on_enter(struct task_struct *t, __u64 uaddr, const bool btf)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, tgid = pid_tgid >> 32;
	struct futex_pending *p;
	struct target_slots slots;

	slots = slots_of(t, tgid, btf);
	if (!target_slots_any(slots) && !cfg.filter.host)
		return;
	if (btf) {
		p = bpf_task_storage_get(&task_pending, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	} else {
		p = bpf_map_lookup_elem(&tid_pending, &tid);
		if (!p) {
			struct futex_pending zero = {};

			bpf_map_update_elem(&tid_pending, &tid, &zero, BPF_NOEXIST);
			p = bpf_map_lookup_elem(&tid_pending, &tid);
		}
	}
	if (!p)
		return;
	p->uaddr = uaddr;
	p->tgid = tgid;
	p->start_ns = bpf_ktime_get_ns();
}

static __always_inline void add_top(__u64 uaddr, __u32 tgid, __u32 slot, __u64 delta)
{
	struct futex_addr_key key = { .uaddr = uaddr, .tgid = tgid, .slot = slot };
	struct futex_addr_stat *v = bpf_map_lookup_elem(&top, &key);

	if (!v) {
		struct futex_addr_stat zero = {};

		bpf_map_update_elem(&top, &key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&top, &key);
		if (!v)
			return;
	}
	v->wait_ns += delta;
	v->count++;
}

static __always_inline void add_hist(__u32 slot, __u32 bucket, __u64 delta)
{
	struct futex_wait_hist *h = bpf_map_lookup_elem(&hists, &slot);

	if (!h)
		return;
	h->buckets[bucket & (FUTEX_BUCKETS - 1)]++;
	h->count++;
	h->wait_ns += delta;
}

/*
 * The wait of task `t` (thread `tid` of process `tgid`) ends, if one is in progress. It counts for the targets the
 * thread is in now. The agent writes the pid and the cgroup membership maps one after the other; slots kept from the
 * wait's start would leave a wait that began between the two writes in one of two targets naming the same thread.
 */
static __always_inline void on_exit_of(struct task_struct *t, __u32 tid, __u32 tgid, const bool btf)
{
	struct futex_pending *p;
	struct target_slots slots;
	__u64 now, delta;
	__u32 bucket;

	if (btf)
		p = bpf_task_storage_get(&task_pending, t, 0, 0);
	else
		p = bpf_map_lookup_elem(&tid_pending, &tid);
	if (!p || !p->start_ns)
		return;
	now = bpf_ktime_get_ns();
	delta = now > p->start_ns ? now - p->start_ns : 0;
	p->start_ns = 0;
	/* A tid-keyed entry left by a thread that died mid-wait, its tid now reused by another process. */
	if (p->tgid != tgid)
		return;
	bucket = log2_u64(delta / 1000);
	if (bucket >= FUTEX_BUCKETS)
		bucket = FUTEX_BUCKETS - 1;
	slots = slots_of(t, tgid, btf);
	if (slots.pid >= 0) {
		add_hist(slots.pid, bucket, delta);
		add_top(p->uaddr, tgid, slots.pid, delta);
	}
	if (slots.cgroup >= 0) {
		add_hist(slots.cgroup, bucket, delta);
		add_top(p->uaddr, tgid, slots.cgroup, delta);
	}
	if (cfg.filter.host) {
		if (!target_slots_any(slots))
			add_top(p->uaddr, tgid, cfg.filter.host_slot, delta);
		add_hist(cfg.filter.host_slot, bucket, delta);
	}
}

static __always_inline void on_exit(struct task_struct *t, const bool btf)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	on_exit_of(t, (__u32)pid_tgid, pid_tgid >> 32, btf);
}

/* --- sched_switch: a wait is a task switched out blocked inside a futex wait syscall (v5.15: bpf_task_pt_regs) --- */

/*
 * Whether `regs` (a task's user registers, saved at syscall entry) belong to a futex syscall that waits, and on which
 * address. x86-64 keeps the syscall number in orig_ax and arm64 in syscallno until the syscall returns; a task that
 * blocks outside a syscall (a page fault from user space) has no syscall number there (-1, or on x86-64 the
 * fault's error code, never 202 or 449 or 454). A task that blocks inside a futex syscall for another reason (a
 * page fault on the futex word) is counted as waiting, which it is.
 */
static __always_inline bool futex_wait_in(struct pt_regs *regs, __u64 *uaddr, const bool btf)
{
	long nr;

	if (!HAVE_SYSCALL_NR)
		return false;
	nr = btf ? SYSCALL_NR_DIRECT(regs) : SYSCALL_NR_CORE(regs);
	if (nr == NR_FUTEX) {
		if (!is_wait_op(btf ? PT_REGS_PARM2_SYSCALL(regs) : PT_REGS_PARM2_CORE_SYSCALL(regs)))
			return false;
		*uaddr = btf ? PT_REGS_PARM1_SYSCALL(regs) : PT_REGS_PARM1_CORE_SYSCALL(regs);
	} else if (nr == NR_FUTEX_WAIT) {
		*uaddr = btf ? PT_REGS_PARM1_SYSCALL(regs) : PT_REGS_PARM1_CORE_SYSCALL(regs);
	} else if (nr == NR_FUTEX_WAITV) {
		/* prev is still current at the tracepoint: its address space is the one mapped. */
		*uaddr = waitv_uaddr(btf ? PT_REGS_PARM1_SYSCALL(regs) : PT_REGS_PARM1_CORE_SYSCALL(regs));
	} else {
		return false;
	}
	return true;
}

/*
 * Whether `prev` leaves the CPU blocked (counted in nvcsw, /proc/<pid>/status voluntary_ctxt_switches) rather than
 * preempted or still runnable: as runqlat's switched_out_runnable, inverted. `__state` is the v5.14 name, older than
 * anything with bpf_task_pt_regs.
 */
static __always_inline bool switched_out_blocked(bool preempt, struct task_struct *prev, const bool btf)
{
	return !preempt && (btf ? prev->__state : BPF_CORE_READ(prev, __state)) != 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(futex_switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 uaddr = 0;

	if (switched_out_blocked(preempt, prev, true) &&
	    futex_wait_in((struct pt_regs *)bpf_task_pt_regs(prev), &uaddr, true))
		on_enter(prev, uaddr, true);
	/*
	 * A thread coming back from a wait is still inside the futex syscall: that test (a helper call and one load)
	 * keeps the task-storage lookup off every other switch-in.
	 */
	if (futex_wait_in((struct pt_regs *)bpf_task_pt_regs(next), &uaddr, true))
		on_exit_of(next, next->pid, next->tgid, true);
	return 0;
}

/*
 * Fallback for kernels where tp_btf does not attach. bpf_task_pt_regs still needs a BTF task pointer: prev is the
 * current task at the tracepoint, so bpf_get_current_task_btf() gives one; next has none, so the wait in progress is
 * found by tid, one hash lookup per switch.
 */
SEC("raw_tp/sched_switch")
int BPF_PROG(futex_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *cur = bpf_get_current_task_btf();
	__u64 uaddr = 0;

	if (switched_out_blocked(preempt, prev, false) &&
	    futex_wait_in((struct pt_regs *)bpf_task_pt_regs(cur), &uaddr, false))
		on_enter(prev, uaddr, false);
	on_exit_of(next, BPF_CORE_READ(next, pid), BPF_CORE_READ(next, tgid), false);
	return 0;
}

/* --- tracepoint: syscall trace events (v4.7 for BPF on tracepoints; futex_waitv v5.16, futex_wait v6.7) --- */

SEC("tracepoint/syscalls/sys_enter_futex")
int futex_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	if (!is_wait_op(ctx->args[1]))
		return 0;
	on_enter(bpf_get_current_task_btf(), ctx->args[0], true);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_futex")
int futex_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	on_exit(bpf_get_current_task_btf(), true);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_futex_waitv")
int futex_waitv_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	on_enter(bpf_get_current_task_btf(), waitv_uaddr(ctx->args[0]), true);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_futex_waitv")
int futex_waitv_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	on_exit(bpf_get_current_task_btf(), true);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_futex_wait")
int futex_wait_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	on_enter(bpf_get_current_task_btf(), ctx->args[0], true);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_futex_wait")
int futex_wait_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	on_exit(bpf_get_current_task_btf(), true);
	return 0;
}

/* --- tp_btf: raw sys_enter/sys_exit with BTF-typed arguments (v5.5; task storage from tracing v5.11) --- */

SEC("tp_btf/sys_enter")
int BPF_PROG(futex_enter_btf, struct pt_regs *regs, long id)
{
	__u64 uaddr;

	if (id == NR_FUTEX) {
		if (!is_wait_op(PT_REGS_PARM2_SYSCALL(regs)))
			return 0;
		uaddr = PT_REGS_PARM1_SYSCALL(regs);
	} else if (id == NR_FUTEX_WAIT) {
		uaddr = PT_REGS_PARM1_SYSCALL(regs);
	} else if (id == NR_FUTEX_WAITV) {
		uaddr = waitv_uaddr(PT_REGS_PARM1_SYSCALL(regs));
	} else {
		return 0;
	}
	on_enter(bpf_get_current_task_btf(), uaddr, true);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(futex_exit_btf, struct pt_regs *regs, long ret)
{
	long id = SYSCALL_NR_DIRECT(regs);

	if (id != NR_FUTEX && id != NR_FUTEX_WAIT && id != NR_FUTEX_WAITV)
		return 0;
	on_exit(bpf_get_current_task_btf(), true);
	return 0;
}

/* --- raw_tp: the same through bpf_probe_read_kernel and a tid-keyed hash (v4.17) --- */

SEC("raw_tp/sys_enter")
int BPF_PROG(futex_enter_raw, struct pt_regs *regs, long id)
{
	__u64 uaddr;

	if (id == NR_FUTEX) {
		if (!is_wait_op(PT_REGS_PARM2_CORE_SYSCALL(regs)))
			return 0;
		uaddr = PT_REGS_PARM1_CORE_SYSCALL(regs);
	} else if (id == NR_FUTEX_WAIT) {
		uaddr = PT_REGS_PARM1_CORE_SYSCALL(regs);
	} else if (id == NR_FUTEX_WAITV) {
		uaddr = waitv_uaddr(PT_REGS_PARM1_CORE_SYSCALL(regs));
	} else {
		return 0;
	}
	on_enter((struct task_struct *)bpf_get_current_task(), uaddr, false);
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(futex_exit_raw, struct pt_regs *regs, long ret)
{
	long id = SYSCALL_NR_CORE(regs);

	if (id != NR_FUTEX && id != NR_FUTEX_WAIT && id != NR_FUTEX_WAITV)
		return 0;
	on_exit((struct task_struct *)bpf_get_current_task(), false);
	return 0;
}
