// SPDX-License-Identifier: GPL-2.0
/*
 * Futex wait time per target, and the futex addresses each process waits on longest.
 *
 * A wait is one futex syscall that can sleep (FUTEX_WAIT, WAIT_BITSET, WAIT_REQUEUE_PI, LOCK_PI, LOCK_PI2, and
 * futex_waitv / futex_wait where the kernel has them), timed from syscall entry to syscall exit: the time the thread
 * was blocked on user-space synchronisation (a contended mutex, a condition variable, a join), whatever the outcome
 * (woken, timed out, EAGAIN because the word changed, interrupted). FUTEX_WAKE and friends never block and are
 * skipped before anything else is looked at.
 *
 * Three hook variants of the same logic; user space loads the first that works, cheapest first:
 *   tracepoint  syscalls/sys_{enter,exit}_futex (+ _futex_waitv, _futex_wait): the kernel runs the program for futex
 *               syscalls only; every other syscall pays a bitmap test in native code.
 *   tp_btf      raw sys_enter / sys_exit, BTF-typed, filtered by syscall number: the program runs on every syscall
 *               of every task — measured dearer system-wide (README, Overhead), kept for kernels without
 *               syscall trace events (CONFIG_FTRACE_SYSCALLS=n).
 *   raw_tp      the same through bpf_probe_read_kernel, for kernels without tp_btf.
 * The entry timestamp lives in task storage wherever a BTF task pointer exists (bpf_get_current_task_btf, v5.11),
 * else in a tid-keyed LRU hash.
 *
 * Syscall numbers: futex is arch-specific; futex_waitv (449, v5.16) and futex_wait (454, v6.7) come from the shared
 * table and are the same on every architecture. 32-bit compat tasks on x86-64 use other numbers and are not seen by
 * the tp_btf/raw_tp variants.
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
#define SYSCALL_NR_DIRECT(regs) ((regs)->orig_ax)
#define SYSCALL_NR_CORE(regs) BPF_CORE_READ(regs, orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define NR_FUTEX 98
#define SYSCALL_NR_DIRECT(regs) ((regs)->syscallno)
#define SYSCALL_NR_CORE(regs) BPF_CORE_READ(regs, syscallno)
#else
/* Unknown syscall table: only the tracepoint variant (named events, no numbers) can work. */
#define NR_FUTEX -1
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

/* A wait in progress. Only threads of targets (or every thread, in host mode) get one. */
struct futex_pending {
	__u64 start_ns;		/* 0: no wait in progress */
	__u64 uaddr;
	struct target_slots slots;	/* none: a task that only counts toward the host slot */
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
	p->slots = slots;
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

static __always_inline void on_exit(struct task_struct *t, const bool btf)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, tgid = pid_tgid >> 32;
	struct futex_pending *p;
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
	if (p->slots.pid >= 0) {
		add_hist(p->slots.pid, bucket, delta);
		add_top(p->uaddr, tgid, p->slots.pid, delta);
	}
	if (p->slots.cgroup >= 0) {
		add_hist(p->slots.cgroup, bucket, delta);
		add_top(p->uaddr, tgid, p->slots.cgroup, delta);
	}
	if (!target_slots_any(p->slots))
		add_top(p->uaddr, tgid, cfg.filter.host_slot, delta);
	if (cfg.filter.host)
		add_hist(cfg.filter.host_slot, bucket, delta);
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
