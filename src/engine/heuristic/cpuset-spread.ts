/**
 * The "same-CPU pile-up" rule: when a protect target keeps two or more runnable threads queued on one CPU while
 * another CPU it is allowed to use sits idle, widen the CPUs its threads may run on (cpuset_spread), one bounded
 * step at a time; once the target's parallel demand has gone (fewer runnable threads than a pile-up needs) for long
 * enough, put the original placement back.
 *
 * The two conditions are different on purpose, and the gap between them is the hysteresis band: spreading removes
 * the pile-up, so "no pile-up" would undo every fix a tick later. A target that is spread and still busy is neither
 * piled up nor calm, and holds. Streaks are counted from the history the engine passes in, so replaying the same
 * ticks replays the same nudges. With `pinCpus` configured, a pile-up confines the target to exactly those CPUs
 * instead (pinning: dedicated CPUs for the protected workload).
 */
import type { CpusetSpreadPolicy } from '../../config/types.js';
import type { TickSnapshot } from '../../core/types.js';
import type { PlacementStats } from '../../signals/placement/placement.js';
import { formatCpuList, parseCpuList } from '../../signals/placement/cpulist.js';
import { restoreNudge, type DecideInput, type Objective, type Strategy, type StrategyNudge } from '../strategy.js';
import { cmp, recallNothing, recallSignal, streak } from './common.js';

export const CPUSET_SPREAD_RULE = 'cpuset-spread';
export const CPUSET_SPREAD_ACTION = 'cpuset_spread';

/** The action's knob key for a mode: per-thread affinity counts `cpus`, the cgroup's cpuset.cpus counts `cpuset`. */
export function spreadKey(mode: CpusetSpreadPolicy['mode']): 'cpus' | 'cpuset' {
  return mode === 'cpuset' ? 'cpuset' : 'cpus';
}

/**
 * How many CPUs to allow next: enough for every runnable thread, at most double what the target has (one step
 * at a time), never beyond what its cpusets allow. Returns `current` (no step) when spreading cannot help.
 */
export function nextSpread(current: number, p: Pick<PlacementStats, 'runnable' | 'allowedCpus'>): number {
  const to = Math.min(p.allowedCpus, p.runnable, Math.max(1, current) * 2);
  return to > current ? to : current;
}

export class CpusetSpreadRule implements Strategy {
  readonly name = CPUSET_SPREAD_RULE;
  readonly historyTicks: number;
  readonly #policy: CpusetSpreadPolicy;
  readonly #pin: number[];

  constructor(policy: CpusetSpreadPolicy) {
    this.#policy = policy;
    this.#pin = parseCpuList(policy.pinCpus, 'policy.cpuset_spread.pin_cpus');
    this.historyTicks = Math.max(policy.triggerTicks, policy.calmTicks) - 1;
  }

  /** Streaks look back at the protect targets' placement only. */
  recall(snapshot: TickSnapshot): TickSnapshot {
    if (!this.#policy.enabled) return recallNothing(snapshot);
    return recallSignal(snapshot, 'placement', (t) => t.role === 'protect');
  }

  /** A tick with a pile-up: ≥ minPileup runnable threads on one CPU while an allowed CPU is idle. */
  #piled(s: TickSnapshot, name: string): boolean {
    const p = placement(s, name);
    return p !== undefined && p.pileup >= this.#policy.minPileup && p.idleCpus > 0;
  }

  /** A tick without parallel demand: too few runnable threads to pile up (or no threads to place at all). */
  #calm(s: TickSnapshot, name: string): boolean {
    const p = placement(s, name);
    return p === undefined || p.runnable < this.#policy.minPileup;
  }

  decide(input: DecideInput): StrategyNudge[] {
    const pol = this.#policy;
    if (!pol.enabled) return [];
    const key = spreadKey(pol.mode);
    const out: StrategyNudge[] = [];
    const protect = input.targets.filter((t) => t.role === 'protect').map((t) => t.name).sort(cmp);
    for (const name of protect) {
      const hot = streak(input, pol.triggerTicks, (s) => this.#piled(s, name));
      const held = input.changed(name, CPUSET_SPREAD_ACTION);
      if (hot >= pol.triggerTicks) {
        const n = this.#step(input, name, key, hot, held);
        if (n !== undefined) out.push(n);
        continue;
      }
      if (held && streak(input, pol.calmTicks, (s) => this.#calm(s, name)) >= pol.calmTicks) {
        const p = placement(input.snapshot, name);
        out.push(
          restoreNudge({
            action: CPUSET_SPREAD_ACTION,
            target: name,
            reason:
              `calm: ${name} had fewer than ${pol.minPileup} runnable threads for ${pol.calmTicks} ticks` +
              `${p !== undefined ? ` (${p.runnable} now)` : ' (no threads now)'}; restoring its original CPU placement`,
            rule: CPUSET_SPREAD_RULE,
            evidence: { calmTicks: pol.calmTicks, minPileup: pol.minPileup, runnable: p?.runnable ?? 0 },
            expected: `${name} keeps running without a pile-up on its original CPUs`,
          }),
        );
      }
    }
    return out;
  }

  #step(input: DecideInput, name: string, key: 'cpus' | 'cpuset', hot: number, held: boolean): StrategyNudge | undefined {
    const pol = this.#policy;
    const p = placement(input.snapshot, name)!;
    const current = input.current(name, CPUSET_SPREAD_ACTION)?.[key];
    // Without the current count there is no bounded step to take.
    if (current === undefined || !Number.isFinite(current)) return undefined;
    const why =
      `${name} has ${p.pileup} runnable threads on CPU ${p.pileupCpu} while ${p.idleCpus} allowed ` +
      `CPU${p.idleCpus === 1 ? '' : 's'} (${formatCpuList(p.idle)}) ${p.idleCpus === 1 ? 'is' : 'are'} idle, for ${hot} ticks`;
    const evidence: Record<string, number> = {
      pileup: p.pileup,
      pileupCpu: p.pileupCpu,
      runnable: p.runnable,
      idleCpus: p.idleCpus,
      allowedCpus: p.allowedCpus,
      hotTicks: hot,
      fromCpus: current,
    };
    let desired: Record<string, number | string>;
    let move: string;
    if (this.#pin.length > 0) {
      // A pin is one move to a configured set; once held, repeating it could only fight whoever moved it since.
      if (held) return undefined;
      desired = { [key]: this.#pin.length, cpulist: formatCpuList(this.#pin) };
      move = `pinning it to CPUs ${formatCpuList(this.#pin)} (policy pin_cpus)`;
      evidence.toCpus = this.#pin.length;
    } else {
      const to = nextSpread(current, p);
      if (to <= current) return undefined;
      desired = { [key]: to, prefer: formatCpuList(p.idle) };
      move = `spreading its threads from ${current} to ${to} CPUs${key === 'cpuset' ? ' (cpuset.cpus)' : ' (thread affinity)'}`;
      evidence.toCpus = to;
    }
    const runqlat = input.snapshot.targets[name]?.runqlat;
    const objective: Objective =
      runqlat !== undefined && runqlat.count > 0
        ? { targets: [name], metric: 'runqlat.p99', better: 'lower', unit: 'us', baselineTicks: pol.triggerTicks }
        : { targets: [name], metric: 'placement.pileup', better: 'lower', baselineTicks: pol.triggerTicks };
    return {
      kind: 'set',
      action: CPUSET_SPREAD_ACTION,
      target: name,
      desired,
      reason: `${why}; ${move}`,
      rule: CPUSET_SPREAD_RULE,
      evidence,
      expected: `${name}'s runnable threads move onto the idle CPUs, so no CPU holds ${pol.minPileup} of them and its ${objective.metric} falls`,
      objective,
    };
  }
}

function placement(s: TickSnapshot, name: string): PlacementStats | undefined {
  return s.targets[name]?.placement;
}

