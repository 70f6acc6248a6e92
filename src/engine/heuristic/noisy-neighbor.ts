/**
 * The built-in default strategy: when a latency-sensitive (protect) target keeps waiting on the run queue, give the
 * busiest noisy targets a smaller share of the CPU, one bounded step at a time, and give it back once things have
 * stayed calm. Two thresholds (hot above p99ThresholdUs, calm below p99ThresholdUs × calmFraction) and two streak
 * lengths make a hysteresis band, so the rule does not flap around a single line. Once every busy noisy target is at
 * min_weight, the next step (idleAtFloor) is cpu.idle 1 for the busiest: a weight only shares the CPU out over a
 * period, while an idle group's tasks yield to a waking sibling at once.
 *
 * Calm alone does not give a share back: a step that works makes the protect target calm while the neighbour still
 * wants the CPU, and restoring then brings the waiting back (hot, step, calm, restore, over and over). A held noisy
 * target is restored only once its own demand — on-CPU plus waiting for a CPU — has also stayed below
 * releaseBelowCpus for the calm streak. Holding a busy neighbour costs it nothing while the protect target is idle:
 * weights and cpu.idle only divide a CPU that both want.
 *
 * While it holds a change instead of restoring it, the rule says so each tick through `DecideInput.hold`, with the
 * cause: the protect targets not calm for long enough yet, hot ones included (`protect-not-calm`), or calm while the
 * neighbour still wants the CPU (`noisy-busy`). That is what `status`, the HTTP API and the dashboard show beside the change.
 *
 * The rule keeps no state of its own: streaks are counted from the history the engine passes in, so replaying the
 * same ticks replays the same nudges, and a restarted agent needs only to observe again.
 *
 * A protect target with no run-queue data in a tick (no runqlat, or count 0) had nothing waiting in that window:
 * that tick is not hot (it ends a hot streak, so the rule acts only on consecutive fresh evidence) and does not
 * break calm (an idle target needs no protection; what still holds a neighbour is that neighbour's own demand).
 */
import type { NoisyNeighborPolicy } from '../../config/types.js';
import type { TargetSignals, TickSnapshot } from '../../core/types.js';
import { formatUs, ordinal } from '../format.js';
import type { StrategyHold } from '../holds.js';
import { type DecideInput, type Strategy, type StrategyNudge, type StrategyTarget } from '../strategy.js';
import { cmp, recallNothing, recallSignal, streak } from './common.js';
import { waitShare } from '../../signals/runqlat/runqlat.js';

export const NOISY_NEIGHBOR_RULE = 'noisy-neighbor';
/** The action this rule drives; its knobs are `weight` in cgroup v2 cpu.weight units and `idle` (cpu.idle). */
export const CPU_WEIGHT_ACTION = 'cpu_weight';

type Runqlat = NonNullable<TargetSignals['runqlat']>;
type Report = NonNullable<DecideInput['hold']>;

/**
 * The next weight one step down: max(minWeight, round(current × (1 − stepFraction))), but at least one unit below
 * current, because rounding alone would leave small weights stuck (round(2 × 0.75) = 2).
 */
export function stepWeight(current: number, policy: Pick<NoisyNeighborPolicy, 'stepFraction' | 'minWeight'>): number {
  const next = Math.min(current - 1, Math.round(current * (1 - policy.stepFraction)));
  return Math.max(policy.minWeight, next);
}

export class NoisyNeighborRule implements Strategy {
  readonly name = NOISY_NEIGHBOR_RULE;
  readonly historyTicks: number;
  readonly #policy: NoisyNeighborPolicy;

  constructor(policy: NoisyNeighborPolicy) {
    this.#policy = policy;
    // Streaks include the current snapshot, so one tick fewer of history suffices.
    this.historyTicks = Math.max(policy.triggerTicks, policy.calmTicks) - 1;
  }

  /** Streaks look back at the run-queue data of the protect targets (their waits) and the noisy ones (their demand). */
  recall(snapshot: TickSnapshot): TickSnapshot {
    if (!this.#policy.enabled) return recallNothing(snapshot);
    return recallSignal(snapshot, 'runqlat', (t) => t.role === 'protect' || t.role === 'noisy');
  }

  decide(input: DecideInput): StrategyNudge[] {
    const p = this.#policy;
    if (!p.enabled) return [];
    const protect = input.targets.filter((t) => t.role === 'protect');
    const noisy = input.targets.filter((t) => t.role === 'noisy');

    const hot: Hot[] = [];
    for (const t of protect) {
      const ticks = streak(input, p.triggerTicks, (s) => hotBy(data(s, t.name), p) !== undefined);
      if (ticks >= p.triggerTicks) {
        const stats = data(input.snapshot, t.name)!;
        hot.push({ name: t.name, stats, ticks, by: hotBy(stats, p)! });
      }
    }
    const calmBelowUs = p.p99ThresholdUs * p.calmFraction;
    const calmShare = p.waitShareThreshold * p.calmFraction;
    const calmTick = (q: Runqlat | undefined): boolean => q === undefined || (q.p99 < calmBelowUs && waitShare(q) < calmShare);
    if (hot.length > 0) {
      // Hot is not calm either: a change in effect stays held under the same cause while the rule steps further, so
      // an incident that swings between hot and the band is one hold, not a new one (a log line, a state write) per swing.
      if (input.hold !== undefined) this.#holdUncalm(input, input.hold, protect, noisy, calmTick);
      return this.#step(input, hot, noisy);
    }
    const calm = protect.every((t) => streak(input, p.calmTicks, (s) => calmTick(data(s, t.name))) >= p.calmTicks);
    if (calm) return this.#restore(input, protect, noisy, calmBelowUs);
    // Between the thresholds, or a streak not yet long enough: hold whatever is in place.
    if (input.hold !== undefined) this.#holdUncalm(input, input.hold, protect, noisy, calmTick);
    return [];
  }

  /**
   * Reports the changes held because a protect target has not been calm for `calmTicks` yet, naming the one furthest
   * from it. Walks the noisy targets only to ask whether each is changed; the words are made once, and only when one is.
   */
  #holdUncalm(input: DecideInput, report: Report, protect: StrategyTarget[], noisy: StrategyTarget[], calmTick: (q: Runqlat | undefined) => boolean): void {
    const p = this.#policy;
    let why: { reason: string; evidence: Record<string, number> } | undefined;
    const explain = (): { reason: string; evidence: Record<string, number> } => {
      let worst = { name: '', ticks: Infinity };
      for (const t of protect) {
        const ticks = streak(input, p.calmTicks, (s) => calmTick(data(s, t.name)));
        if (ticks < worst.ticks) worst = { name: t.name, ticks };
      }
      const q = data(input.snapshot, worst.name);
      const calmBelowUs = p.p99ThresholdUs * p.calmFraction;
      const waits = p.waitShareThreshold < 1;
      const bar = `p99 < ${formatUs(calmBelowUs)}` + (waits ? `, waits < ${percent(p.waitShareThreshold * p.calmFraction)}` : '');
      const now =
        q === undefined ? 'nothing waited' : `p99 ${formatUs(q.p99)}` + (waits ? `, waited ${percent(waitShare(q))}` : '');
      const evidence: Record<string, number> = { calmTicks: worst.ticks, calmTicksNeeded: p.calmTicks, calmBelowUs };
      if (q !== undefined) {
        evidence.p99Us = q.p99;
        evidence.waitShare = waitShare(q);
      }
      return {
        reason: `protect target ${worst.name} calm for ${worst.ticks} of the ${p.calmTicks} ticks a restore needs (calm_ticks; calm is run-queue ${bar}; now ${now})`,
        evidence,
      };
    };
    for (const t of noisy) {
      if (!input.changed(t.name, CPU_WEIGHT_ACTION)) continue;
      why ??= explain();
      report({ action: CPU_WEIGHT_ACTION, target: t.name, rule: NOISY_NEIGHBOR_RULE, cause: 'protect-not-calm', ...why });
    }
  }

  #step(input: DecideInput, hot: Hot[], noisy: StrategyTarget[]): StrategyNudge[] {
    const p = this.#policy;
    hot.sort((a, b) => b.stats.p99 - a.stats.p99 || cmp(a.name, b.name));

    const steps = busy(input, noisy).flatMap(({ name, oncpuUs }) => {
      const from = input.current(name, CPU_WEIGHT_ACTION)?.weight;
      // Without the current weight there is no bounded step to compute; without room above the floor, no step.
      if (from === undefined || !Number.isFinite(from)) return [];
      const to = stepWeight(from, p);
      if (to >= from) return [];
      return [{ name, oncpuUs, desired: { weight: to }, move: `; cpu.weight ${from} → ${to}`, evidence: { fromWeight: from, toWeight: to } }];
    });
    if (steps.length > 0 || !p.idleAtFloor) return this.#nudges(input, hot, steps);

    // Below the floor: every busy noisy target is at min_weight (or refused), and a protect target still waits. The
    // busiest not yet idle gets cpu.idle 1 — it then runs only when nothing else in its parent wants the CPU, so a
    // waking protect task no longer waits out its slice. Targets whose kernel has no cpu.idle report no `idle`.
    const idles = busy(input, noisy).flatMap(({ name, oncpuUs }) => {
      const cur = input.current(name, CPU_WEIGHT_ACTION);
      if (cur?.idle !== 0 || cur.weight === undefined) return [];
      return [
        {
          name,
          oncpuUs,
          desired: { idle: 1 },
          move: ` and at the weight floor (${cur.weight}, min_weight ${p.minWeight}); cpu.idle 0 → 1`,
          evidence: { fromWeight: cur.weight, fromIdle: 0, toIdle: 1 },
        },
      ];
    });
    return this.#nudges(input, hot, idles);
  }

  /** One nudge per step, busiest first, at most maxNoisyPerStep; hot is sorted worst first. */
  #nudges(input: DecideInput, hot: Hot[], steps: Step[]): StrategyNudge[] {
    const p = this.#policy;
    const worst = hot[0]!;
    const others = hot.slice(1).map((h) => h.name);
    const share = waitShare(worst.stats);
    const what =
      worst.by === 'p99'
        ? `run-queue p99 ${formatUs(worst.stats.p99)} > ${formatUs(p.p99ThresholdUs)}`
        : `waited for a CPU ${percent(share)} of its runnable time > ${percent(p.waitShareThreshold)} (run-queue p99 ${formatUs(worst.stats.p99)})`;
    const why = `${worst.name} ${what} for ${worst.ticks} ticks` + (others.length > 0 ? ` (also hot: ${others.join(', ')})` : '');
    const windowS = input.snapshot.windowMs / 1000;
    const objectiveTargets = hot.map((h) => h.name).sort(cmp);
    // Judged by what made it hot: a server whose waits are few but long enough to set its clients' p99 keeps a low
    // p99 of waits; what the step must change then is how long it waits in all (µs per tick).
    const byP99 = hot.every((h) => h.by === 'p99');
    steps.sort((a, b) => b.oncpuUs - a.oncpuUs || cmp(a.name, b.name));
    return steps.slice(0, Math.max(0, p.maxNoisyPerStep)).map((c, i) => {
      const perS = windowS > 0 ? c.oncpuUs / windowS : c.oncpuUs;
      const rank = i === 0 ? 'the busiest' : `the ${ordinal(i + 1)} busiest`;
      return {
        kind: 'set',
        action: CPU_WEIGHT_ACTION,
        target: c.name,
        desired: c.desired,
        reason: `${why}; ${c.name} is ${rank} noisy target (${formatUs(perS)} on-CPU/s)${c.move}`,
        rule: NOISY_NEIGHBOR_RULE,
        evidence: {
          p99Us: worst.stats.p99,
          p99EwmaUs: worst.stats.p99Ewma,
          thresholdUs: p.p99ThresholdUs,
          hotTicks: worst.ticks,
          hotTargets: hot.length,
          waitShare: share,
          waitShareThreshold: p.waitShareThreshold,
          oncpuUsPerS: perS,
          busiestRank: i + 1,
          ...c.evidence,
        },
        expected: byP99
          ? `${objectiveTargets.join(', ')} run-queue p99 falls from ${formatUs(worst.stats.p99)} toward ${formatUs(p.p99ThresholdUs)}`
          : `${objectiveTargets.join(', ')} wait less for a CPU (${worst.name}: ${formatUs(worst.stats.waitUs)} in this tick)`,
        objective: {
          targets: objectiveTargets,
          metric: byP99 ? 'runqlat.p99' : 'runqlat.waitUs',
          better: 'lower',
          unit: 'us',
          baselineTicks: p.triggerTicks,
        },
      };
    });
  }

  #restore(input: DecideInput, protect: StrategyTarget[], noisy: StrategyTarget[], calmBelowUs: number): StrategyNudge[] {
    const p = this.#policy;
    // With no protect target there is nothing the hold protects. Otherwise a target still busy keeps its step.
    const quiet = (t: StrategyTarget): boolean =>
      protect.length === 0 || streak(input, p.calmTicks, (s) => demandCpus(s, t.name) < p.releaseBelowCpus) >= p.calmTicks;
    const held: StrategyTarget[] = [];
    for (const t of noisy) {
      if (!input.changed(t.name, CPU_WEIGHT_ACTION)) continue;
      if (quiet(t)) held.push(t);
      else if (input.hold !== undefined) input.hold(this.#busyHold(input, t.name));
    }
    held.sort((a, b) => cmp(a.name, b.name));
    if (held.length === 0) return [];

    let worst: { name: string; p99: number } | undefined;
    for (const t of protect) {
      const q = data(input.snapshot, t.name);
      if (q !== undefined && (worst === undefined || q.p99 > worst.p99)) worst = { name: t.name, p99: q.p99 };
    }
    const bar = `${formatUs(calmBelowUs)} (${formatUs(p.p99ThresholdUs)} × ${p.calmFraction})`;
    const why =
      protect.length === 0
        ? 'calm: no protect target configured'
        : `calm: every protect target's run-queue p99 < ${bar} for ${p.calmTicks} ticks` +
          (worst !== undefined ? ` (worst now ${worst.name} ${formatUs(worst.p99)})` : ' (none ran this tick)');
    const released = (name: string, demand: number): string =>
      protect.length === 0 ? '' : ` and ${name} wanted less than ${p.releaseBelowCpus} CPU for as long (${cpus(demand)} now)`;

    return held.map((t) => {
      const demand = demandCpus(input.snapshot, t.name);
      const cur = input.current(t.name, CPU_WEIGHT_ACTION);
      const from = cur?.weight;
      // An idle group has no weight of its own to restore toward: cpu.idle goes back first, then the weight.
      const idle = cur?.idle === 1;
      const original = idle ? undefined : input.original?.(t.name, CPU_WEIGHT_ACTION)?.weight;
      const move = idle
        ? 'cpu.idle 1 and cpu.weight → their journaled originals'
        : original !== undefined
          ? `cpu.weight ${from ?? '?'} → ${original}`
          : `cpu.weight ${from ?? '?'} → its journaled original`;
      const evidence: Record<string, number> = {
        thresholdUs: p.p99ThresholdUs,
        calmBelowUs,
        calmTicks: p.calmTicks,
        releaseBelowCpus: p.releaseBelowCpus,
        demandCpus: demand,
      };
      if (worst !== undefined) evidence.worstP99Us = worst.p99;
      if (from !== undefined) evidence.fromWeight = from;
      if (idle) evidence.fromIdle = 1;
      if (original !== undefined) evidence.toWeight = original;
      return {
        kind: 'restore',
        action: CPU_WEIGHT_ACTION,
        target: t.name,
        ...(original !== undefined ? { desired: { weight: original } } : {}),
        reason: `${why}${released(t.name, demand)}; restoring ${t.name} ${move}`,
        rule: NOISY_NEIGHBOR_RULE,
        evidence,
        expected: `protect targets stay below ${formatUs(p.p99ThresholdUs)} with ${t.name} at its original share`,
      };
    });
  }

  /**
   * A change held although the protect targets are calm: the neighbour still wants the CPU, or has wanted less than
   * releaseBelowCpus for fewer than calmTicks ticks.
   */
  #busyHold(input: DecideInput, name: string): StrategyHold {
    const p = this.#policy;
    const now = demandCpus(input.snapshot, name);
    const quietTicks = streak(input, p.calmTicks, (s) => demandCpus(s, name) < p.releaseBelowCpus);
    const busy =
      quietTicks === 0
        ? `${name} still wants ${cpus(now)} ≥ release_below_cpus ${p.releaseBelowCpus}`
        : `${name} has wanted less than release_below_cpus ${p.releaseBelowCpus} CPU for only ${quietTicks} of ${p.calmTicks} ticks (${cpus(now)} now)`;
    return {
      action: CPU_WEIGHT_ACTION,
      target: name,
      rule: NOISY_NEIGHBOR_RULE,
      cause: 'noisy-busy',
      reason: `protect targets calm for ${p.calmTicks} ticks (calm_ticks), but ${busy}`,
      evidence: { demandCpus: now, releaseBelowCpus: p.releaseBelowCpus, quietTicks, calmTicks: p.calmTicks },
    };
  }
}

/** A hot protect target: its run-queue stats this tick, how many ticks in a row it has been hot, and why now. */
interface Hot {
  name: string;
  stats: Runqlat;
  ticks: number;
  by: 'p99' | 'wait';
}

/** Why a tick is hot: the p99 of the waits over its threshold, else the share of time waiting over its own; or not. */
function hotBy(q: Runqlat | undefined, p: NoisyNeighborPolicy): Hot['by'] | undefined {
  if (q === undefined) return undefined;
  if (q.p99 > p.p99ThresholdUs) return 'p99';
  return waitShare(q) > p.waitShareThreshold ? 'wait' : undefined;
}

function percent(x: number): string {
  return `${String(Number((x * 100).toFixed(1)))}%`;
}

/** A step the rule may take on one noisy target: what to ask for, and the words and numbers that explain it. */
interface Step {
  name: string;
  oncpuUs: number;
  desired: Record<string, number>;
  /** Appended to the reason after the target's rank and on-CPU time. */
  move: string;
  evidence: Record<string, number>;
}

/**
 * The noisy targets that ran this tick, with their on-CPU time. A target the guardrails always refuse would stay the
 * busiest and block every step: it is left out, so the rule picks among the others.
 */
function busy(input: DecideInput, noisy: StrategyTarget[]): { name: string; oncpuUs: number }[] {
  return noisy.flatMap((t) => {
    if (input.mayChange?.(t.name) === false) return [];
    const q = data(input.snapshot, t.name);
    return q === undefined || !(q.oncpuUs > 0) ? [] : [{ name: t.name, oncpuUs: q.oncpuUs }];
  });
}

/**
 * How many CPUs the target wanted in the snapshot's window: its on-CPU time plus its time waiting for a CPU, over the
 * window. A target without run-queue data ran nothing.
 */
function demandCpus(snapshot: TickSnapshot, name: string): number {
  const q = snapshot.targets[name]?.runqlat;
  if (q === undefined || !(snapshot.windowMs > 0)) return 0;
  return (q.oncpuUs + q.waitUs) / (snapshot.windowMs * 1000);
}

function cpus(n: number): string {
  return `${String(Number(n.toFixed(2)))} CPU`;
}

/** The target's run-queue stats in this snapshot, or undefined when it had nothing waiting (see module header). */
function data(snapshot: TickSnapshot, name: string): Runqlat | undefined {
  const q = snapshot.targets[name]?.runqlat;
  return q !== undefined && q.count > 0 ? q : undefined;
}

