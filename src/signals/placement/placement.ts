/**
 * Placement signal: where each target's runnable threads sit, and which CPUs they could use but leave idle. Each
 * tick it samples every thread's state and last CPU from /proc/<tid>/stat, the CPUs its cpuset allows, and every
 * CPU's busy fraction over the window from /proc/stat deltas. A "pile-up" is two or more runnable threads of one
 * target queued on the same CPU while another CPU it may use sits idle: work the scheduler could spread but does
 * not, usually because an affinity mask or cpuset holds the threads there.
 *
 * No BPF: the answer is an instantaneous sample per tick, which procfs gives at a cost proportional to the
 * target's thread count, and the rule acting on it requires the condition over several ticks anyway.
 *
 * Only targets whose tasks ran in the window are sampled. The run-queue signal (collected before this one) sums each
 * target's on-CPU time and switches in the kernel; a target with neither had no thread on a CPU, so it can have no
 * pile-up (two runnable threads on one CPU take turns within a few ms), and its last sample still stands as long as
 * that one found nothing runnable. Idle targets are still re-sampled every RESAMPLE_TICKS ticks, spread over the
 * ticks by slot, so their thread counts do not go stale. A target whose tasks the kernel side counts for another
 * target (a cgroup target with a nested cgroup target, a process listed by an earlier process target) is always
 * sampled, and so is every target when the run-queue signal is off.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../core/log.js';
import type { Signal, SignalContext, Target, TargetSignals } from '../../core/types.js';
import { detectLayout, type CgroupLayout } from '../../cgroup/layout.js';
import { parseCpuList } from './cpulist.js';
import {
  busyFractions,
  cpusetDirOf,
  cpusetVersionOf,
  effectiveCpusFile,
  readProcStat,
  readTaskStat,
  targetThreads,
  threadAllowedCpus,
  type CpuTimes,
  type ProcRoots,
} from './procfs.js';

export interface PlacementOptions extends ProcRoots {
  /** A CPU whose busy fraction over the window is below this counts as idle (0 < idleBelow ≤ 1). */
  idleBelow: number;
  /**
   * cpuset_spread in cpuset mode widens a cgroup target's own cpuset, up to what its parent's allows: then those
   * CPUs are the ones it could use, not only the ones its cpuset allows now.
   */
  widenCpuset?: boolean;
  /** Injected for tests; probed at start when absent. */
  layout?: CgroupLayout;
}

/** What one tick says about one target's placement. Counts are of threads at the sampling instant. */
export interface PlacementStats {
  /** Threads in the target. */
  threads: number;
  /** Threads in state R (running or waiting for a CPU). */
  runnable: number;
  /** Distinct CPUs the runnable threads are on. */
  cpusUsed: number;
  /** The most runnable threads on one CPU (0 when none is runnable). */
  pileup: number;
  /** The CPU holding `pileup` threads (the lowest on ties); -1 when none is runnable. */
  pileupCpu: number;
  /** CPUs the target's cpusets allow (what spreading may use). */
  allowedCpus: number;
  /** How many allowed CPUs were idle over the window and hold none of its runnable threads. */
  idleCpus: number;
  /** Those idle CPUs, ascending. */
  idle: number[];
  /** Runnable threads per CPU, for CPUs holding at least one. */
  perCpu: Record<string, number>;
}

/** The host part of a tick: snapshot.host.placement. */
export interface PlacementHost {
  /** Busy fraction (0..1) of each CPU over the window, indexed by CPU number; absent CPUs read 0. */
  cpus: number[];
}

/** An idle target is re-sampled at least this often (ticks), so its thread count follows slow changes. */
export const RESAMPLE_TICKS = 30;

export class PlacementSignal implements Signal {
  readonly name = 'placement';
  private log?: Logger;
  private layout?: CgroupLayout;
  private targets: Target[] = [];
  private prevStat?: Map<number, CpuTimes>;
  private lastHost?: PlacementHost;
  /** Each target's last sample, reused while its tasks stay off the CPU. */
  private readonly lastSample = new Map<string, PlacementStats>();
  /** Targets whose every task the run-queue signal counts for them (see onCpuCountsAll). */
  private countedAlone = new Set<string>();
  private ticks = 0;
  /** Samples taken and skipped, since start (for tests and the bench). */
  readonly counts = { sampled: 0, skipped: 0 };

  constructor(private readonly opts: PlacementOptions) {}

  start(ctx: SignalContext): void {
    this.log = ctx.log.child({ signal: this.name });
    this.layout = this.opts.layout ?? detectLayout();
    this.updateTargets(ctx.targets);
    // Baseline, so the first window measures only time after start.
    this.prevStat = readProcStat(this.opts);
    this.log.info({ targets: ctx.targets.length, idleBelow: this.opts.idleBelow }, 'placement sampling /proc');
  }

  updateTargets(targets: Target[]): void {
    this.targets = targets;
    this.countedAlone = onCpuCountsAll(targets);
    const live = new Set(targets.map((t) => t.name));
    for (const name of this.lastSample.keys()) if (!live.has(name)) this.lastSample.delete(name);
  }

  collect(_now: number, out: Record<string, TargetSignals>): void {
    if (this.layout === undefined) return;
    const stat = readProcStat(this.opts);
    const busy = busyFractions(this.prevStat ?? stat, stat);
    this.prevStat = stat;
    const cpus: number[] = [];
    for (const [cpu, b] of busy) cpus[cpu] = b;
    for (let i = 0; i < cpus.length; i++) cpus[i] ??= 0;
    this.lastHost = { cpus };

    // One cpuset read per distinct cpuset per tick, however many threads share it.
    const cpusetCache = new Map<string, number[]>();
    const tick = this.ticks++;
    for (const t of this.targets) {
      const sig = (out[t.name] ??= { name: t.name, role: t.role });
      const prev = this.lastSample.get(t.name);
      const due = (tick + t.slot) % RESAMPLE_TICKS === 0;
      if (prev !== undefined && prev.runnable === 0 && !due && this.countedAlone.has(t.name) && !ranInWindow(sig)) {
        this.counts.skipped++;
        sig.placement = prev;
        continue;
      }
      this.counts.sampled++;
      const p = samplePlacement(t, this.layout, busy, this.opts, cpusetCache);
      this.lastSample.set(t.name, p);
      sig.placement = p;
    }
  }

  /** The host-wide part of the last collect (per-CPU busy fractions). */
  hostWindow(): PlacementHost | undefined {
    return this.lastHost;
  }

  close(): void {
    this.layout = undefined;
    this.prevStat = undefined;
    this.lastSample.clear();
  }
}

/**
 * Whether the run-queue signal saw any of the target's tasks on a CPU in the window. False only when it reported
 * the target and counted neither on-CPU time nor a switch; without a run-queue reading the answer is "maybe", true.
 */
export function ranInWindow(sig: TargetSignals): boolean {
  const r = sig.runqlat;
  if (r === undefined || typeof r.oncpuUs !== 'number') return true;
  return r.oncpuUs > 0 || (r.switchesOut ?? 0) > 0;
}

/**
 * Targets whose every task the kernel side counts for them and no other (signals/membership.ts: a nested cgroup
 * target takes its subtree from the outer one; a process listed by two process targets counts for the first).
 */
export function onCpuCountsAll(targets: readonly Target[]): Set<string> {
  const out = new Set<string>();
  const cgroups = targets.flatMap((t) => (t.scope.kind === 'cgroup' ? [t.scope.path] : []));
  const firstOwner = new Map<number, string>();
  for (const t of targets) if (t.scope.kind === 'pids') for (const pid of t.scope.pids) if (!firstOwner.has(pid)) firstOwner.set(pid, t.name);
  for (const t of targets) {
    if (t.scope.kind === 'cgroup') {
      const dir = t.scope.path;
      if (!cgroups.some((c) => c.startsWith(`${dir}/`))) out.add(t.name);
    } else if (t.scope.pids.every((pid) => firstOwner.get(pid) === t.name)) {
      out.add(t.name);
    }
  }
  return out;
}

/** One target's placement now, given each CPU's busy fraction over the window. */
export function samplePlacement(
  target: Target,
  layout: CgroupLayout,
  busy: ReadonlyMap<number, number>,
  opts: PlacementOptions,
  cpusetCache = new Map<string, number[]>(),
): PlacementStats {
  const tids = targetThreads(target, opts);
  const perCpu = new Map<number, number>();
  const allowed = new Set<number>();
  let threads = 0;
  let runnable = 0;
  for (const tid of tids) {
    const st = readTaskStat(tid, opts);
    if (st === undefined) continue; // exited since it was listed
    threads++;
    if (st.state !== 'R') continue;
    runnable++;
    perCpu.set(st.processor, (perCpu.get(st.processor) ?? 0) + 1);
    // Only runnable threads could use another CPU now, so only theirs decide what "allowed" means.
    for (const c of threadAllowedCpus(tid, layout, opts, cpusetCache) ?? []) allowed.add(c);
  }
  if (opts.widenCpuset && runnable > 0) for (const c of parentCpus(target, layout, cpusetCache) ?? []) allowed.add(c);
  return summarize(threads, runnable, perCpu, allowed, busy, opts.idleBelow);
}

/** The CPUs the parent of a cgroup target's cpuset allows: as far as that cpuset could be widened. */
function parentCpus(target: Target, layout: CgroupLayout, cache: Map<string, number[]>): number[] | undefined {
  const dir = cpusetDirOf(target, () => layout);
  if (dir === undefined) return undefined;
  const parent = path.dirname(dir);
  const hit = cache.get(parent);
  if (hit !== undefined) return hit;
  const file = path.join(parent, effectiveCpusFile(cpusetVersionOf(parent, layout)));
  try {
    const cpus = parseCpuList(fs.readFileSync(file, 'utf8'), file);
    cache.set(parent, cpus);
    return cpus;
  } catch {
    return undefined;
  }
}

/** The pure part: counts per CPU, allowed CPUs and busy fractions → PlacementStats. */
export function summarize(
  threads: number,
  runnable: number,
  perCpu: ReadonlyMap<number, number>,
  allowed: ReadonlySet<number>,
  busy: ReadonlyMap<number, number>,
  idleBelow: number,
): PlacementStats {
  let pileup = 0;
  let pileupCpu = -1;
  for (const [cpu, n] of [...perCpu].sort((a, b) => a[0] - b[0])) {
    if (n > pileup) {
      pileup = n;
      pileupCpu = cpu;
    }
  }
  const idle = [...allowed]
    .filter((c) => !perCpu.has(c) && (busy.get(c) ?? 1) < idleBelow)
    .sort((a, b) => a - b);
  const pc: Record<string, number> = {};
  for (const [cpu, n] of [...perCpu].sort((a, b) => a[0] - b[0])) pc[String(cpu)] = n;
  return {
    threads,
    runnable,
    cpusUsed: perCpu.size,
    pileup,
    pileupCpu,
    allowedCpus: allowed.size,
    idleCpus: idle.length,
    idle,
    perCpu: pc,
  };
}

// This signal's part of each tick snapshot, declared beside the signal so the snapshot's type grows with the list of
// signals and readers need no casts.
declare module '../../core/types.js' {
  interface TargetSignals {
    placement?: PlacementStats;
  }
  interface HostSignals {
    placement?: PlacementHost;
  }
}
