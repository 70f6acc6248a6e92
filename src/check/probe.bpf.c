// SPDX-License-Identifier: GPL-2.0
/*
 * Minimal programs and maps used to probe what this kernel supports (`ebpf-tuner check`) and, for benchmarks,
 * the cost floor: an empty program on sched_switch. Each is loaded on its own through set_autoload.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sched_switch")
int BPF_PROG(probe_tp_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(probe_raw_tp, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return 0;
}

SEC("tracepoint/sched/sched_switch")
int probe_tracepoint(void *ctx)
{
	return 0;
}

SEC("fentry/do_nanosleep")
int BPF_PROG(probe_fentry)
{
	return 0;
}

SEC("kprobe/do_nanosleep")
int probe_kprobe(void *ctx)
{
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} probe_ringbuf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} probe_task_storage SEC(".maps");

/* Uses both maps so a kernel lacking either fails this program's load, which is how check finds out. */
SEC("tp_btf/sched_wakeup")
int BPF_PROG(probe_maps, struct task_struct *p)
{
	__u64 *v = bpf_task_storage_get(&probe_task_storage, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (v)
		(*v)++;
	bpf_ringbuf_output(&probe_ringbuf, &p, 0, BPF_RB_FORCE_WAKEUP * 0);
	return 0;
}
