/**
 * cpuset_spread: choose how many (and which) CPUs a target's threads may run on. Spreading widens the set so
 * threads queued on one CPU can move to idle ones; pinning narrows it, or names it exactly. Two knobs do it:
 *
 *   - `{ cpus: N }` — every thread's CPU affinity (sched_setaffinity), one `affinity:<tid>@<start>` knob per thread;
 *   - `{ cpuset: N }` — the `cpuset.cpus` of the target's cpuset cgroup: the target's own directory on cgroup v2,
 *     the same relative path under the v1 cpuset hierarchy on v1 and hybrid hosts.
 *
 * Which CPUs: the new set keeps the CPUs in use and adds from `prefer` (a CPU list, e.g. the idle ones) and then in
 * ascending order; a smaller N keeps `prefer` CPUs first. `cpulist` names the set exactly (pinning). Only CPUs the
 * target's cpusets allow are ever chosen, so a spread never reaches beyond what the administrator granted.
 * A restore puts every journaled original back, even one that names values (`restoresFromJournal`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { TunerError, isTunerError } from '../../core/errors.js';
import type { KnobRef, Target } from '../../core/types.js';
import { kernelKnobIO, normalizeKnobValue, type KnobIO } from '../../cgroup/cgroup.js';
import { controllerRootOf, detectLayout, type CgroupLayout } from '../../cgroup/layout.js';
import type { RestoreItem } from '../../journal/restore.js';
import { formatCpuList, parseCpuList } from '../../signals/placement/cpulist.js';
import {
  cpusetDirOf,
  cpusetVersionOf,
  effectiveCpusFile,
  readTaskStat,
  targetThreads,
  threadAllowedCpus,
  type ProcRoots,
} from '../../signals/placement/procfs.js';
import { applyResult, type Action, type ActionPlan, type ApplyResult, type Desired, type PlannedChange } from '../action.js';
import type { KnobWriter, SetResult } from '../knob-writer.js';
import { AFFINITY_SCHEME, affinityKnobPath } from './affinity.js';
import { cpusetSpreadArm } from './learner-arm.js';
import { getAffinity } from './sched.js';

export const CPUSET_SPREAD = 'cpuset_spread';

export interface CpusetSpreadOptions extends ProcRoots {
  /** Cgroup file reads; the writer does the writes. */
  io?: KnobIO;
  /** Probed on first use when absent. */
  layout?: CgroupLayout;
  /** Reads a thread's mask; injectable so planning can be tested without live threads. */
  getAffinity?: (tid: number) => number[];
}

/**
 * The CPU set of size `n` for a target now on `current`, allowed `allowed`: grow by keeping every current CPU and
 * adding `prefer` CPUs, then the lowest others; shrink by keeping `prefer` CPUs first, then the lowest current
 * ones. `n` is clamped to 1..|allowed|; CPUs outside `allowed` never appear.
 */
export function chooseCpus(
  current: readonly number[],
  allowed: readonly number[],
  n: number,
  prefer: readonly number[] = [],
): number[] {
  const ok = new Set(allowed);
  const want = Math.max(1, Math.min(allowed.length, Math.round(n)));
  const keep = [...new Set(current)].filter((c) => ok.has(c)).sort((a, b) => a - b);
  const pref = [...new Set(prefer)].filter((c) => ok.has(c));
  let out: number[];
  if (want >= keep.length) {
    const extra = [...pref, ...[...ok].sort((a, b) => a - b)].filter((c) => !keep.includes(c));
    out = [...keep, ...[...new Set(extra)].slice(0, want - keep.length)];
  } else {
    out = [...new Set([...pref.filter((c) => keep.includes(c)), ...keep])].slice(0, want);
  }
  return out.sort((a, b) => a - b);
}

interface LiveThread {
  tid: number;
  starttime: number;
}

export { cpusetDirOf, cpusetVersionOf };

export function createCpusetSpreadAction(opts: CpusetSpreadOptions = {}): Action {
  const io = opts.io ?? kernelKnobIO;
  const readMask = opts.getAffinity ?? getAffinity;
  let layout = opts.layout;
  const lay = (): CgroupLayout => (layout ??= detectLayout());

  const cpusetKnob = (target: Target): KnobRef | undefined => {
    const dir = cpusetDirOf(target, lay);
    if (dir === undefined) return undefined;
    const file = path.join(dir, 'cpuset.cpus');
    return { id: `${CPUSET_SPREAD}:${file}`, path: file, target: target.name };
  };

  /** A cpuset's CPUs: cpuset.cpus, or the effective set when it is empty (a v2 cpuset inheriting its parent's). */
  const cpusetState = (dir: string): { raw: string; cpus: number[] } => {
    const file = path.join(dir, 'cpuset.cpus');
    const raw = io.read(file);
    let cpus = parseCpuList(raw, file);
    if (cpus.length === 0) {
      const eff = path.join(dir, effectiveCpusFile(cpusetVersionOf(dir, lay())));
      cpus = parseCpuList(io.read(eff), eff);
    }
    return { raw, cpus };
  };

  /** What a cpuset may be given: its parent's effective CPUs (a child can never hold more). */
  const cpusetAllowed = (dir: string): number[] => {
    const parent = path.dirname(dir);
    const eff = path.join(parent, effectiveCpusFile(cpusetVersionOf(parent, lay())));
    return parseCpuList(io.read(eff), eff);
  };

  const liveThreads = (target: Target): LiveThread[] => {
    const out: LiveThread[] = [];
    for (const tid of targetThreads(target, opts)) {
      const st = readTaskStat(tid, opts);
      if (st !== undefined) out.push({ tid, starttime: st.starttime });
    }
    return out;
  };

  const masks = (threads: LiveThread[]): { t: LiveThread; cpus: number[] }[] => {
    const out: { t: LiveThread; cpus: number[] }[] = [];
    for (const t of threads) {
      try {
        out.push({ t, cpus: readMask(t.tid) });
      } catch (e) {
        if (!isTunerError(e, 'PID_NOT_FOUND')) throw e;
      }
    }
    return out;
  };

  const knobs = (target: Target): KnobRef[] => {
    const out: KnobRef[] = [];
    const c = cpusetKnob(target);
    if (c !== undefined) out.push(c);
    for (const t of liveThreads(target)) {
      const p = affinityKnobPath(t);
      out.push({ id: p, path: p, target: target.name });
    }
    return out;
  };

  const revert = (target: Target, writer: KnobWriter): RestoreItem[] => {
    // From the journal, not from knobs(): threads that exited since still have entries, to be reported vanished.
    const r = writer.restoreAll((e) => e.action === CPUSET_SPREAD && e.target === target.name);
    return [...r.restored, ...r.overridden, ...r.vanished, ...r.failed];
  };

  const fail = (target: Target, msg: string): TunerError =>
    new TunerError('ACTION_FAILED', `plan ${CPUSET_SPREAD} for target ${target.name}: ${msg}`);

  return {
    name: CPUSET_SPREAD,
    learnerArms: [cpusetSpreadArm],
    // CPU counts (NR_CPUS tops out at 8192); at most double or halve per nudge, so threads spread out step by step.
    bounds: {
      cpus: { min: 1, max: 8192, maxStepFraction: 1 },
      cpuset: { min: 1, max: 8192, maxStepFraction: 1 },
    },
    knobs,

    read(target: Target): Record<string, number> {
      const union = new Set<number>();
      for (const m of masks(liveThreads(target))) for (const c of m.cpus) union.add(c);
      const out: Record<string, number> = { cpus: union.size };
      const dir = cpusetDirOf(target, lay);
      if (dir !== undefined) out.cpuset = cpusetState(dir).cpus.length;
      return out;
    },

    plan(target: Target, desired: Desired): ActionPlan {
      const { cpus: nCpus, cpuset: nCpuset, prefer, cpulist } = desired;
      const mode = nCpus !== undefined ? 'cpus' : nCpuset !== undefined ? 'cpuset' : undefined;
      if (mode === undefined || (nCpus !== undefined && nCpuset !== undefined)) {
        throw fail(target, `desired must hold exactly one of cpus (thread affinity) and cpuset (cpuset.cpus), got ${JSON.stringify(desired)}`);
      }
      const n = mode === 'cpus' ? nCpus : nCpuset;
      if (typeof n !== 'number' || !Number.isFinite(n)) {
        throw fail(target, `desired.${mode} must be a finite number of CPUs, got ${JSON.stringify(n)}`);
      }
      if (prefer !== undefined && typeof prefer !== 'string') throw fail(target, 'desired.prefer must be a CPU list like "2-3"');
      if (cpulist !== undefined && typeof cpulist !== 'string') throw fail(target, 'desired.cpulist must be a CPU list like "2-3"');
      const preferCpus = prefer !== undefined ? parseCpuList(prefer, 'desired.prefer') : [];
      const exact = cpulist !== undefined ? parseCpuList(cpulist, 'desired.cpulist') : undefined;
      const notes: string[] = [];

      const decide = (current: number[], allowed: number[]): number[] => {
        if (allowed.length === 0) throw fail(target, 'its cpusets allow no CPU (every thread exited?)');
        if (exact !== undefined) {
          const outside = exact.filter((c) => !allowed.includes(c));
          if (exact.length === 0 || outside.length > 0) {
            throw fail(
              target,
              `cpulist ${JSON.stringify(cpulist)} must be non-empty and inside the CPUs its cpusets allow (${formatCpuList(allowed)})`,
            );
          }
          if (Math.round(n) !== exact.length) notes.push(`${mode} ${n} taken from cpulist ${formatCpuList(exact)} (${exact.length} CPUs)`);
          return exact;
        }
        const chosen = chooseCpus(current, allowed, n, preferCpus);
        if (chosen.length !== n) {
          notes.push(`${mode} ${n} adjusted to ${chosen.length} (the target's cpusets allow ${formatCpuList(allowed)})`);
        }
        return chosen;
      };

      const changes: PlannedChange[] = [];
      let chosen: number[];
      if (mode === 'cpuset') {
        const knob = cpusetKnob(target);
        if (knob === undefined) {
          throw new TunerError(
            'CGROUP_UNSUPPORTED',
            `plan ${CPUSET_SPREAD} for target ${target.name}: it has no cpuset cgroup (v2: enable +cpuset in the parent's cgroup.subtree_control; v1: create the same path under the cpuset hierarchy) — or spread with { cpus } (thread affinity) instead`,
          );
        }
        const dir = path.dirname(knob.path);
        const { raw, cpus } = cpusetState(dir);
        chosen = decide(cpus, cpusetAllowed(dir));
        const to = formatCpuList(chosen);
        if (normalizeKnobValue(raw) !== to) changes.push({ knob, from: raw, to });
      } else {
        const threads = masks(liveThreads(target));
        const cache = new Map<string, number[]>();
        const allowed = new Set<number>();
        const union = new Set<number>();
        for (const m of threads) {
          for (const c of threadAllowedCpus(m.t.tid, lay(), opts, cache) ?? []) allowed.add(c);
          for (const c of m.cpus) union.add(c);
        }
        if (threads.length === 0) {
          return { action: CPUSET_SPREAD, target: target.name, desired: { cpus: 0 }, changes: [], notes: ['the target has no threads'] };
        }
        chosen = decide([...union], [...allowed].sort((a, b) => a - b));
        const to = formatCpuList(chosen);
        for (const m of threads) {
          const from = formatCpuList(m.cpus);
          if (from === to) continue;
          const p = affinityKnobPath(m.t);
          changes.push({ knob: { id: p, path: p, target: target.name }, from, to });
        }
      }
      const out: Desired = { [mode]: chosen.length };
      out.cpulist = formatCpuList(chosen);
      return { action: CPUSET_SPREAD, target: target.name, desired: out, changes, notes };
    },

    apply(plan: ActionPlan, writer: KnobWriter): ApplyResult {
      const results: SetResult[] = [];
      for (const c of plan.changes) {
        try {
          results.push(writer.set(c.knob, CPUSET_SPREAD, c.to));
        } catch (e) {
          // A thread that exited between planning and now has nothing left to spread.
          const threadGone = c.knob.path.startsWith(`${AFFINITY_SCHEME}:`) && (isTunerError(e, 'PID_NOT_FOUND') || isTunerError(e, 'CGROUP_NOT_FOUND'));
          if (!threadGone) throw e;
        }
      }
      return applyResult(plan, results);
    },

    revert,
    restoresFromJournal: true,
  };
}

export const cpusetSpread = createCpusetSpreadAction();
