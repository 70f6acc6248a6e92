/**
 * Target membership for the kernel side of every signal (bpf/common.h: struct target_filter, DECLARE_TARGET_MAPS).
 * Each target's cgroup subtree and pid list is written into the `cgroup_slots` / `pid_slots` maps of a signal's
 * object, so programs filter to the configured scope in the kernel.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TunerError } from '../core/errors.js';
import type { SignalContext, SlotCapacity, Target } from '../core/types.js';
import type { BpfObject } from '../bpf/object.js';

export const TARGET_MAX_SLOTS = 1024;
export const TARGET_FILTER_SIZE = 8;

/** The slots a fixed set of targets needs: one each, and the kinds of membership they use. */
export function capacityOf(targets: readonly Target[]): SlotCapacity {
  return {
    slots: targets.reduce((m, t) => Math.max(m, t.slot + 1), 0),
    cgroups: targets.some((t) => t.scope.kind === 'cgroup'),
    pids: targets.some((t) => t.scope.kind === 'pids'),
  };
}

/** The capacity signal `name` sizes its maps for: the agent's reservation, or what the given targets need. */
export function capacityFor(ctx: SignalContext, name: string): SlotCapacity {
  const cap = ctx.capacity ?? capacityOf(ctx.targets);
  if (cap.slots > TARGET_MAX_SLOTS) {
    throw new TunerError('CONFIG_INVALID', `start ${name}: targets need ${cap.slots} slots, at most ${TARGET_MAX_SLOTS} are supported — fix: fewer targets, or a lower max_matches on pattern targets`);
  }
  return cap;
}

/**
 * The 8 bytes of struct target_filter, to place at the start of a signal's rodata config. Slots 0..slots-1 are the
 * targets (Target.slot); slot `slots` (`host_slot`) aggregates every task when `host` is set — so per-slot maps are
 * sized slots + 1 at load (`slotCount`).
 */
export function targetFilter(capacity: SlotCapacity, cgroupVersion: 1 | 2, host: boolean): Buffer {
  const b = Buffer.alloc(TARGET_FILTER_SIZE);
  b[0] = cgroupVersion === 1 ? 1 : 0;
  b[1] = capacity.cgroups ? 1 : 0;
  b[2] = capacity.pids ? 1 : 0;
  b[3] = host ? 1 : 0;
  b.writeUInt32LE(capacity.slots, 4);
  return b;
}

/** Entries a per-slot map needs: every target slot plus the host slot. */
export function slotCount(capacity: SlotCapacity): number {
  return capacity.slots + 1;
}

/** Every cgroup directory at or below `dir` with its id (the directory's inode number, as the kernel side sees it). */
export function subtreeIds(dir: string, out: bigint[] = []): bigint[] {
  try {
    const st = statSync(dir, { bigint: true });
    out.push(st.ino);
    // Link count 2: no subdirectories (see childCgroups), so the leaf costs this stat alone.
    if (st.nlink === 2n) return out;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) subtreeIds(join(dir, e.name), out);
  } catch {
    // a cgroup removed while we walk: it simply has no members any more
  }
  return out;
}

/**
 * Rewrites the membership maps of `obj` for `targets`, touching only entries that changed.
 *
 * The kernel keeps one slot per cgroup and one per process (a task's process target and its cgroup target both see
 * its events: bpf/common.h). Where two targets of the same kind claim the same cgroup or process, the choice must
 * not depend on the order of the config file: a cgroup goes to the deepest cgroup target above it (nested targets:
 * the child counts its subtree, the parent the rest), a process to the first process target that lists it.
 * `sharedMembership` says so in words for the agent to log.
 */
export function syncMembership(obj: BpfObject, targets: readonly Target[]): void {
  const cg = new Map<string, Buffer>();
  const depth = new Map<string, number>();
  const pids = new Map<string, Buffer>();
  for (const t of targets) {
    const slot = Buffer.alloc(4);
    slot.writeUInt32LE(t.slot);
    if (t.scope.kind === 'cgroup') {
      const d = t.scope.path.split('/').length;
      for (const id of subtreeIds(t.scope.path)) {
        const k = Buffer.alloc(8);
        k.writeBigUInt64LE(id);
        const key = k.toString('hex');
        if ((depth.get(key) ?? -1) >= d) continue;
        depth.set(key, d);
        cg.set(key, slot);
      }
    } else {
      for (const pid of t.scope.pids) {
        const k = Buffer.alloc(4);
        k.writeUInt32LE(pid);
        const key = k.toString('hex');
        if (!pids.has(key)) pids.set(key, slot);
      }
    }
  }
  obj.map('cgroup_slots').sync(cg);
  obj.map('pid_slots').sync(pids);
}

/** Reads a cumulative u64 counter from a map value (exact below 2^53, which counters reach after centuries). */
export function u64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * 0x1_0000_0000;
}

/**
 * Where one target's tasks are not counted for another that also names them (see syncMembership): a cgroup target
 * nested in another, or a process in two process targets. One sentence per case; empty when every target sees all
 * of its tasks. A process in both a process target and a cgroup target is not listed: both count it.
 */
export function sharedMembership(targets: readonly Target[]): string[] {
  const out: string[] = [];
  const cgroups = targets.filter((t) => t.scope.kind === 'cgroup');
  for (const outer of cgroups) {
    for (const inner of cgroups) {
      const o = (outer.scope as { path: string }).path;
      const i = (inner.scope as { path: string }).path;
      if (i.startsWith(`${o}/`)) {
        out.push(`${outer.name} does not count the tasks of ${i}: they are counted by ${inner.name}, the deeper cgroup target`);
      }
    }
  }
  const owner = new Map<number, string>();
  for (const t of targets) {
    if (t.scope.kind !== 'pids') continue;
    for (const pid of t.scope.pids) {
      const first = owner.get(pid);
      if (first === undefined) owner.set(pid, t.name);
      else out.push(`${t.name} does not count process ${pid}: it is counted by ${first}, the first process target that matches it`);
    }
  }
  return out;
}
