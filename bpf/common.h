/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by every program: log2 buckets and the cgroup id a signal attributes a task to. */
#ifndef __EBPF_TUNER_COMMON_H
#define __EBPF_TUNER_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* Branch-free-ish log2 without __builtin_clzll, which some clang versions mis-handle for the BPF target. */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, s;

	s = (v > 0xffffffffULL) << 5; v >>= s; r |= s;
	s = (v > 0xffff) << 4; v >>= s; r |= s;
	s = (v > 0xff) << 3; v >>= s; r |= s;
	s = (v > 0xf) << 2; v >>= s; r |= s;
	s = (v > 0x3) << 1; v >>= s; r |= s;
	r |= (v >> 1);
	return r;
}

/*
 * The id of the cgroup a task belongs to, in the hierarchy user space resolves targets in.
 * cgroup v2: the default hierarchy. cgroup v1 (and hybrid hosts): the cpu controller's hierarchy, because
 * bpf_get_current_cgroup_id() only ever returns the v2 id, and it is the cpu hierarchy that cpu knobs live in.
 * Both ids equal the inode number of the cgroup's directory (kernfs_node.id, a u64 since v5.5).
 *
 * `btf`: the task pointer is BTF-typed (tp_btf, fentry, iterators), so the chain is walked with direct loads — a
 * few ns, against ~25 ns for each bpf_probe_read_kernel that BPF_CORE_READ costs; a constant at every call site.
 */
static __always_inline __u64 task_cgroup_id(struct task_struct *t, bool v1, const bool btf)
{
	int idx = bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id);
	struct cgroup_subsys_state *css;
	struct css_set *cs;
	struct cgroup *cg;

	if (btf) {
		cs = t->cgroups;
		if (!cs)
			return 0;
		if (v1) {
			if (idx < 0 || idx >= CGROUP_SUBSYS_COUNT)
				return 0;
			css = cs->subsys[idx];
			cg = css ? css->cgroup : NULL;
		} else {
			cg = cs->dfl_cgrp;
		}
		return cg ? cg->kn->id : 0;
	}
	cs = BPF_CORE_READ(t, cgroups);
	if (!cs)
		return 0;
	if (v1) {
		css = NULL;
		if (idx < 0 || idx >= CGROUP_SUBSYS_COUNT)
			return 0;
		bpf_core_read(&css, sizeof(css), &cs->subsys[idx]);
		if (!css)
			return 0;
		cg = BPF_CORE_READ(css, cgroup);
	} else {
		cg = BPF_CORE_READ(cs, dfl_cgrp);
	}
	if (!cg)
		return 0;
	return BPF_CORE_READ(cg, kn, id);
}

/*
 * Target membership, shared by every signal: which slot (target index) a task belongs to. User space keeps both maps
 * current (every cgroup id of each target's subtree; every tgid of pid targets) so filtering happens here, in the
 * kernel, and a signal's cost does not grow with unrelated activity on the host.
 */
#define TARGET_MAX_SLOTS 1024
#define TARGET_MAX_CGROUPS 16384
#define TARGET_MAX_PIDS 16384

/* The first bytes of every signal's rodata config; src/signals/membership.ts writes them. */
struct target_filter {
	__u8 cgroup_v1;		/* attribute tasks by their v1 cpu cgroup instead of the v2 one */
	__u8 match_cgroups;
	__u8 match_pids;
	__u8 host;		/* also aggregate every task into slot host_slot */
	__u32 host_slot;	/* = the number of targets: slots 0..host_slot-1 are targets */
};

#define DECLARE_TARGET_MAPS()							\
	struct {								\
		__uint(type, BPF_MAP_TYPE_HASH);				\
		__uint(max_entries, TARGET_MAX_CGROUPS);			\
		__type(key, __u64);						\
		__type(value, __u32);						\
	} cgroup_slots SEC(".maps");						\
	struct {								\
		__uint(type, BPF_MAP_TYPE_HASH);				\
		__uint(max_entries, TARGET_MAX_PIDS);				\
		__type(key, __u32);						\
		__type(value, __u32);						\
	} pid_slots SEC(".maps")

/*
 * The target slots of task `t` (thread group `tgid`): the process target of its thread group and the cgroup target
 * of its cgroup, each -1 when there is none (or the map holds a slot at or past host_slot). A task can be in both
 * — a pid target whose process also sits in a cgroup target — and then both targets see its events: each names a
 * set of tasks, and neither owns them. `cgroup` is -1 when it equals `pid`, so nothing is counted twice in one slot.
 *
 * The cgroup lookup is made even after the pid lookup hit. That costs one more lookup only for tasks of process
 * targets; every other task needed both lookups already. Needs DECLARE_TARGET_MAPS().
 * TARGET_SLOTS_OF_BTF where `t` is BTF-typed (tp_btf): direct loads, 3-4x cheaper; TARGET_SLOTS_OF elsewhere.
 */
struct target_slots {
	__s32 pid;
	__s32 cgroup;
};

#define TARGET_NO_SLOTS ((struct target_slots){ .pid = -1, .cgroup = -1 })

static __always_inline bool target_slots_any(struct target_slots s)
{
	return s.pid >= 0 || s.cgroup >= 0;
}

/* The one slot per-thread detail is filed under: the process target's, else the cgroup target's; -1 for none. */
static __always_inline int target_slots_first(struct target_slots s)
{
	return s.pid >= 0 ? s.pid : s.cgroup;
}

#define TARGET_SLOTS_OF(filter, t, tgid) TARGET_SLOTS_OF_X(filter, t, tgid, false)
#define TARGET_SLOTS_OF_BTF(filter, t, tgid) TARGET_SLOTS_OF_X(filter, t, tgid, true)
#define TARGET_SLOTS_OF_X(filter, t, tgid, btf)					\
	({									\
		struct target_slots __ts = TARGET_NO_SLOTS;			\
		__u32 __tgid = (tgid), *__s;					\
		if ((filter).match_pids) {					\
			__s = bpf_map_lookup_elem(&pid_slots, &__tgid);		\
			if (__s && *__s < (filter).host_slot)			\
				__ts.pid = *__s;				\
		}								\
		if ((filter).match_cgroups) {					\
			__u64 __id = task_cgroup_id((t), (filter).cgroup_v1, (btf));	\
			__s = bpf_map_lookup_elem(&cgroup_slots, &__id);	\
			if (__s && *__s < (filter).host_slot && (__s32)*__s != __ts.pid)	\
				__ts.cgroup = *__s;				\
		}								\
		__ts;								\
	})

#endif /* __EBPF_TUNER_COMMON_H */
