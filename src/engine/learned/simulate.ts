/**
 * A small synthetic host for judging strategies without a kernel: one protect target ("web") and one noisy target
 * ("batch") on four CPUs, in one of three kinds of trouble where a different nudge is the right one:
 *
 *   - noisy-neighbor: batch hogs the CPUs web needs. Lowering batch's cpu.weight fixes most of it for a small
 *     share of batch's CPU; capping batch's quota fixes a little more but takes half its CPU.
 *   - cpu-pileup: web's threads queue on one CPU while others idle. Spreading web fixes it and costs nobody.
 *   - memory-pressure: batch drives memory pressure (reclaim stalls web). Only capping batch helps much.
 *
 * It drives the real DecisionEngine, ClosedLoop and Guardrails, playing the agent: it applies every proposed and
 * revert decision to its own knobs and reports them, and the signals it produces respond to those knobs with
 * seeded noise. One episode is one incident: calm until every change is restored, then trouble until the first
 * change made in it is judged by the closed loop (or nothing was done for a whole window, which counts as "do
 * nothing"). Every outcome is scored with the learner's own reward, so strategies are compared on one scale.
 */
import type { NoisyNeighborPolicy } from '../../config/types.js';
import type { Nudge, TargetSignals, TickSnapshot } from '../../core/types.js';
import { ClosedLoop, improvementOf, median, metricValue } from '../closed-loop.js';
import { DecisionEngine, type Decision } from '../engine.js';
import { Guardrails, type ActionBounds } from '../guardrails.js';
import { NoisyNeighborRule } from '../heuristic/noisy-neighbor.js';
import { knobValuesOf, type KnobValues, type Strategy, type StrategyTarget } from '../strategy.js';
import { NOOP_ARM, type RegisteredAction } from './candidates.js';
import { LEARNED_RULE_PREFIX, LearnedStrategy, type LearnerOptions } from './learner.js';
import { Prng } from './prng.js';
import { futexWindow, placementStats, psiResource, runqlatWindow } from '../../signals/windows.js';
import { DEFAULT_REWARD, lostFraction, rewardOf, type RewardOptions } from './reward.js';

export type ScenarioName = 'noisy-neighbor' | 'cpu-pileup' | 'memory-pressure';
export const SCENARIOS: readonly ScenarioName[] = ['noisy-neighbor', 'cpu-pileup', 'memory-pressure'];

export const SIM_ACTIONS = ['cpu_weight', 'cpuset_spread', 'pressure_backoff'] as const;
export type SimAction = (typeof SIM_ACTIONS)[number];

/** What one full step of an action does here: the fraction of web's p99 it removes and of batch's CPU it takes. */
export interface Effect {
  improvement: number;
  lost: number;
}

export interface Scenario {
  name: ScenarioName;
  /** web's run-queue p99 with nothing done, µs. */
  p99Us: number;
  effects: Record<SimAction, Effect>;
  /** What the signals show in this kind of trouble. */
  psi: { cpu: number; memory: number; io: number };
  /** Busy fraction per CPU. */
  cpusBusy: number[];
  /** web's runnable threads and the most on one CPU. */
  runnable: number;
  pileup: number;
  /** CPUs web's threads may use when the incident starts. */
  webCpus: number;
  /** batch's CPU use with nothing done, in CPUs. */
  batchCpus: number;
  /** web's futex wait per second, µs. */
  futexUs: number;
}

export const SCENARIO_TABLE: Record<ScenarioName, Scenario> = {
  'noisy-neighbor': {
    name: 'noisy-neighbor',
    p99Us: 12_000,
    effects: {
      cpu_weight: { improvement: 0.5, lost: 0.15 },
      cpuset_spread: { improvement: 0.1, lost: 0.05 },
      pressure_backoff: { improvement: 0.55, lost: 0.5 },
    },
    psi: { cpu: 35, memory: 2, io: 1 },
    cpusBusy: [0.97, 0.95, 0.96, 0.94],
    runnable: 3,
    pileup: 1,
    webCpus: 2,
    batchCpus: 3.2,
    futexUs: 20_000,
  },
  'cpu-pileup': {
    name: 'cpu-pileup',
    p99Us: 15_000,
    effects: {
      cpu_weight: { improvement: 0.05, lost: 0.15 },
      cpuset_spread: { improvement: 0.65, lost: 0.02 },
      pressure_backoff: { improvement: 0.1, lost: 0.5 },
    },
    psi: { cpu: 18, memory: 2, io: 1 },
    cpusBusy: [1, 0.35, 0.2, 0.3],
    runnable: 4,
    pileup: 4,
    webCpus: 1,
    batchCpus: 0.8,
    futexUs: 30_000,
  },
  'memory-pressure': {
    name: 'memory-pressure',
    p99Us: 10_000,
    effects: {
      cpu_weight: { improvement: 0.1, lost: 0.15 },
      cpuset_spread: { improvement: 0.05, lost: 0 },
      pressure_backoff: { improvement: 0.6, lost: 0.35 },
    },
    psi: { cpu: 8, memory: 45, io: 12 },
    cpusBusy: [0.6, 0.55, 0.65, 0.5],
    runnable: 2,
    pileup: 1,
    webCpus: 2,
    batchCpus: 1.6,
    futexUs: 10_000,
  },
};

export const SIM_TARGETS: readonly StrategyTarget[] = [
  { name: 'web', role: 'protect' },
  { name: 'batch', role: 'noisy' },
];

const CPUS = 4;
const TICK_MS = 1000;

/** Thresholds both strategies use here; short streaks and windows keep episodes short. */
export const SIM_POLICY: NoisyNeighborPolicy = {
  enabled: true,
  p99ThresholdUs: 4000,
  waitShareThreshold: 1,
  triggerTicks: 2,
  eventDriven: false,
  calmTicks: 3,
  calmFraction: 0.5,
  // The calm scenario stands for the trouble gone with the batch target still at its demand: restore on calm alone.
  releaseBelowCpus: 1024,
  stepFraction: 0.5,
  minWeight: 10,
  idleAtFloor: false,
  maxNoisyPerStep: 1,
};

// Two trouble ticks before against three after: 0.1 is the smallest p-value such windows can reach (1 in C(5, 2)).
export const SIM_CLOSED_LOOP = { windowTicks: 3, margin: 0.1, penaltyMs: 30_000, significance: 0.1, warmupTicks: 0 };
export const SIM_GUARDRAILS = { cooldownMs: 3000, maxChangesPerMinute: 30, denyCgroups: [] as string[] };

/** Bounds for the three actions as the simulated agent declares them (cpu_weight's are the real action's). */
export const SIM_BOUNDS: ActionBounds = {
  cpu_weight: { weight: { min: 1, max: 10_000, maxStepFraction: 0.5 }, idle: { min: 0, max: 1 } },
  cpuset_spread: { cpus: { min: 1, max: CPUS } },
  pressure_backoff: { quotaCpus: { min: 0.01, max: CPUS } },
};

/** The reward one full step of `arm` earns in `scenario`, without noise; 0 for doing nothing. */
export function expectedReward(scenario: ScenarioName, arm: string, reward: RewardOptions = DEFAULT_REWARD): number {
  if (arm === NOOP_ARM) return 0;
  const e = SCENARIO_TABLE[scenario].effects[arm as SimAction];
  if (e === undefined) return 0;
  return rewardOf({ improvement: e.improvement, lost: e.lost, changes: 1 }, reward);
}

/** The arm with the highest expected reward among `arms`, and that reward. */
export function bestArm(scenario: ScenarioName, arms: readonly string[], reward: RewardOptions = DEFAULT_REWARD): { arm: string; reward: number } {
  let best = { arm: NOOP_ARM, reward: 0 };
  for (const a of arms) {
    const r = expectedReward(scenario, a, reward);
    if (r > best.reward) best = { arm: a, reward: r };
  }
  return best;
}

interface Knob {
  value: KnobValues;
  original?: KnobValues;
}

/** The simulated host: knob state, and signals that respond to it. */
export class SimHost {
  scenario: ScenarioName | 'calm' = 'calm';
  /** The trouble the calm phase follows; sets what "calm" looks like for placement. */
  last: ScenarioName = 'noisy-neighbor';
  readonly #knobs = new Map<string, Knob>();
  readonly #prng: Prng;
  readonly #actions: ReadonlySet<string>;

  constructor(seed: number, actions: readonly string[] = SIM_ACTIONS) {
    this.#prng = Prng.fromSeed(seed);
    this.#actions = new Set(actions);
  }

  /** Start an incident: knobs at their defaults for it (nothing may be held). */
  begin(scenario: ScenarioName): void {
    this.scenario = scenario;
    this.last = scenario;
    this.#knobs.clear();
  }

  calm(): void {
    this.scenario = 'calm';
  }

  held(): boolean {
    for (const k of this.#knobs.values()) if (k.original !== undefined) return true;
    return false;
  }

  current(target: string, action: string): KnobValues | undefined {
    if (!this.#actions.has(action)) return undefined;
    return { ...this.#knob(target, action).value };
  }

  changed(target: string, action: string): boolean {
    return this.#actions.has(action) && this.#knob(target, action).original !== undefined;
  }

  original(target: string, action: string): KnobValues | undefined {
    const o = this.#actions.has(action) ? this.#knob(target, action).original : undefined;
    return o !== undefined ? { ...o } : undefined;
  }

  /** Apply a proposed or revert decision the way the agent would; returns (from, to). */
  apply(nudge: Nudge): { from: KnobValues; to: KnobValues } {
    const k = this.#knob(nudge.target, nudge.action);
    const from = { ...k.value };
    const restore = nudge.kind === 'restore';
    if (restore && nudge.desired === undefined) {
      if (k.original !== undefined) k.value = { ...k.original };
    } else {
      if (!restore && k.original === undefined) k.original = { ...k.value };
      Object.assign(k.value, knobValuesOf(nudge));
    }
    if (restore && k.original !== undefined && sameValues(k.value, k.original)) delete k.original;
    return { from, to: { ...k.value } };
  }

  /** How far each action has been pushed: 1 for one full step from where the incident started. */
  depth(action: SimAction): number {
    const s = SCENARIO_TABLE[this.scenario === 'calm' ? this.last : this.scenario];
    switch (action) {
      case 'cpu_weight': {
        const w = this.#knob('batch', action).value.weight!;
        return clamp((100 - w) / 50, 0, 2);
      }
      case 'cpuset_spread': {
        const c = this.#knob('web', action).value.cpus!;
        return clamp((c - s.webCpus) / s.webCpus, 0, 1);
      }
      case 'pressure_backoff': {
        const q = this.#knob('batch', action).value.quotaCpus!;
        return clamp((1 - Math.min(1, q / s.batchCpus)) / 0.5, 0, 2);
      }
    }
  }

  snapshot(now: number): TickSnapshot {
    const sc = this.scenario;
    const calm = sc === 'calm';
    const s = SCENARIO_TABLE[sc === 'calm' ? this.last : sc];
    const n = (sd: number): number => Math.exp(sd * this.#prng.normal());
    let p99 = calm ? 1_200 : s.p99Us;
    let batch = s.batchCpus;
    for (const a of SIM_ACTIONS) {
      const d = this.depth(a);
      if (d === 0) continue;
      if (!calm) p99 *= (1 - s.effects[a].improvement) ** d;
      batch *= (1 - s.effects[a].lost) ** d;
    }
    p99 *= n(0.12);
    batch *= n(0.05);
    const webUse = calm ? 0.4 : 0.9; // CPUs web keeps busy
    const lat = (p: number, oncpuUs: number) =>
      runqlatWindow({ count: 400, p50: p / 8, p90: p / 2, p99: p, mean: p / 6, p99Ewma: p, waitUs: p * 40, oncpuUs });
    const web: TargetSignals = {
      name: 'web',
      role: 'protect',
      runqlat: lat(p99, webUse * TICK_MS * 1000 * n(0.05)),
      futex: futexWindow({ count: 200, waitUs: (calm ? 2_000 : s.futexUs) * n(0.2) }),
      placement: calm
        ? placementStats({ threads: 8, runnable: 1, cpusUsed: 1, pileup: 1, allowedCpus: CPUS, idleCpus: 2 })
        : placementStats({
            threads: 8,
            runnable: s.runnable,
            cpusUsed: Math.max(1, s.runnable - s.pileup + 1),
            pileup: this.depth('cpuset_spread') > 0 ? 1 : s.pileup,
            allowedCpus: CPUS,
            idleCpus: s.cpusBusy.filter((b) => b < 0.5).length,
          }),
    };
    const batchSig: TargetSignals = { name: 'batch', role: 'noisy', runqlat: lat(300 * n(0.1), batch * TICK_MS * 1000) };
    const psi = (v: number) => psiResource({ someAvg10: clamp(v * n(0.15), 0, 100) });
    return {
      time: now,
      windowMs: TICK_MS,
      targets: { web, batch: batchSig },
      host: {
        psi: calm
          ? { cpu: psi(3), memory: psi(1), io: psi(1) }
          : {
              cpu: psi(s.psi.cpu),
              memory: psi(s.psi.memory * (1 - 0.6 * Math.min(1, this.depth('pressure_backoff')))),
              io: psi(s.psi.io),
            },
        placement: { cpus: (calm ? [0.3, 0.2, 0.25, 0.2] : s.cpusBusy).map((b) => clamp(b + 0.03 * this.#prng.normal(), 0, 1)) },
      },
    };
  }

  #knob(target: string, action: string): Knob {
    const key = `${target}\u0000${action}`;
    let k = this.#knobs.get(key);
    if (k === undefined) {
      const s = SCENARIO_TABLE[this.scenario === 'calm' ? this.last : this.scenario];
      const value: KnobValues =
        action === 'cpu_weight'
          ? { weight: 100 }
          : action === 'cpuset_spread'
            ? { cpus: target === 'web' ? s.webCpus : CPUS }
            : action === 'pressure_backoff'
              ? { quotaCpus: CPUS, unlimited: 1 }
              : {};
      k = { value };
      this.#knobs.set(key, k);
    }
    return k;
  }
}

/** One incident's result for one strategy. */
export interface EpisodeOutcome {
  scenario: ScenarioName;
  episode: number;
  /** The arm acted on (the template or action name), or 'noop'. */
  arm: string;
  /** The reward measured in this episode (noisy). */
  reward: number;
  /** The noiseless reward of that arm in this scenario. */
  expected: number;
  /** The noiseless reward of the best arm available. */
  best: number;
  improvement: number | null;
  lost: number;
  verdict: 'kept' | 'revert' | 'none';
}

export interface SimulationOptions {
  seed: number;
  actions?: readonly string[];
  reward?: RewardOptions;
}

/** A strategy, the engine around it, and the simulated host; run one episode at a time. */
export class Simulation {
  readonly host: SimHost;
  readonly engine: DecisionEngine;
  readonly decisions: Decision[] = [];
  readonly #reward: RewardOptions;
  readonly #actions: readonly string[];
  #now = 0;
  #episode = 0;
  readonly #snapshots: TickSnapshot[] = [];

  constructor(strategies: readonly Strategy[], opts: SimulationOptions) {
    this.#actions = opts.actions ?? SIM_ACTIONS;
    this.host = new SimHost(opts.seed ^ 0x5eed, this.#actions);
    this.#reward = opts.reward ?? DEFAULT_REWARD;
    const loop = new ClosedLoop(SIM_CLOSED_LOOP);
    const guardrails = new Guardrails(SIM_GUARDRAILS, SIM_BOUNDS, { penalties: loop });
    this.engine = new DecisionEngine({ strategies, guardrails, closedLoop: loop, idPrefix: 'sim' });
  }

  runEpisode(scenario: ScenarioName): EpisodeOutcome {
    const w = SIM_CLOSED_LOOP.windowTicks;
    // Calm until every change of the last incident is restored and nothing is pending.
    this.host.calm();
    for (let i = 0; i < 40; i++) {
      this.#tick();
      if (i >= SIM_POLICY.calmTicks && !this.host.held() && this.engine.pending.length === 0) break;
    }
    // A long quiet gap: penalties and cooldowns from the last incident expire, as between real incidents.
    this.#now += SIM_CLOSED_LOOP.penaltyMs + 60_000;
    this.host.begin(scenario);
    // Only this incident's snapshots are measured; indices below are into the trimmed list.
    this.#snapshots.length = 0;
    const start = 0;

    let acted: { id: string; arm: string; at: number } | undefined;
    const decideBy = SIM_POLICY.triggerTicks + w;
    for (let t = 1; t <= decideBy + 3 * w + 10; t++) {
      const ds = this.#tick();
      if (acted === undefined) {
        const p = ds.find((d) => d.kind === 'proposed' && d.nudge.kind === 'set');
        if (p !== undefined) acted = { id: p.id, arm: armOf(p), at: this.#snapshots.length - 1 };
        else if (t >= decideBy) return this.#noop(scenario, start, w);
        continue;
      }
      const v = ds.find((d) => d.verdict?.decisionId === acted!.id);
      if (v === undefined) continue;
      const before = this.#snapshots.slice(Math.max(start, acted.at - w + 1), acted.at + 1);
      const after = this.#snapshots.slice(acted.at + 1);
      const lost = lostFraction(before, after.slice(-w), ['batch']);
      const improvement = v.verdict!.improvement;
      return this.#outcome(scenario, acted.arm, rewardOf({ improvement, lost, changes: 1 }, this.#reward), improvement, lost, v.verdict!.verdict);
    }
    // The change was never judged (cancelled by a restore): no evidence it helped.
    return this.#outcome(scenario, acted?.arm ?? NOOP_ARM, 0, null, 0, 'none');
  }

  #noop(scenario: ScenarioName, start: number, w: number): EpisodeOutcome {
    const objective = { metric: 'runqlat.p99', better: 'lower' as const };
    const vals = this.#snapshots.slice(start).map((s) => metricValue(s, objective)!);
    const trigger = SIM_POLICY.triggerTicks;
    const before = vals.slice(Math.max(0, trigger - w), trigger);
    const after = vals.slice(trigger, trigger + w);
    const improvement = improvementOf(median(before), median(after), 'lower');
    return this.#outcome(scenario, NOOP_ARM, rewardOf({ improvement, lost: 0, changes: 0 }, this.#reward), improvement, 0, 'none');
  }

  #outcome(
    scenario: ScenarioName,
    arm: string,
    reward: number,
    improvement: number | null,
    lost: number,
    verdict: EpisodeOutcome['verdict'],
  ): EpisodeOutcome {
    this.#episode++;
    return {
      scenario,
      episode: this.#episode,
      arm,
      reward,
      expected: expectedReward(scenario, arm, this.#reward),
      best: bestArm(scenario, this.#actions, this.#reward).reward,
      improvement,
      lost,
      verdict,
    };
  }

  #tick(): Decision[] {
    this.#now += TICK_MS;
    const now = this.#now;
    const snapshot = this.host.snapshot(now);
    this.#snapshots.push(snapshot);
    const ds = this.engine.tick({
      now,
      snapshot,
      targets: SIM_TARGETS,
      current: (t, a) => this.host.current(t, a),
      changed: (t, a) => this.host.changed(t, a),
      original: (t, a) => this.host.original(t, a),
    });
    for (const d of ds) {
      if (d.kind !== 'proposed' && d.kind !== 'revert') continue;
      const { from, to } = this.host.apply(d.nudge);
      this.engine.applied(d.id, from, to, now);
    }
    this.decisions.push(...ds);
    if (this.decisions.length > 1000) this.decisions.splice(0, 500);
    return ds;
  }
}

/**
 * A learner set up for the simulated host, built as the agent builds one: from the arms the registered actions
 * declare (the caller's list, e.g. ACTIONS; the engine does not know the actions), of those this host simulates.
 */
export function simLearner(seed: number, actions: readonly RegisteredAction[], extra: Partial<LearnerOptions> = {}): LearnedStrategy {
  const simulated: readonly string[] = SIM_ACTIONS;
  return new LearnedStrategy({
    actions: actions.filter((a) => simulated.includes(a.name)),
    hot: SIM_POLICY,
    step: SIM_POLICY,
    windowTicks: SIM_CLOSED_LOOP.windowTicks,
    seed,
    ...extra,
  });
}

/** The default rule as the comparison: it only knows cpu_weight. */
export function simHeuristic(): NoisyNeighborRule {
  return new NoisyNeighborRule(SIM_POLICY);
}

/** Runs `episodes` incidents, the scenario of each chosen by `pick`, for one strategy. */
export function runEpisodes(
  strategy: Strategy,
  pick: (episode: number) => ScenarioName,
  episodes: number,
  opts: SimulationOptions,
): EpisodeOutcome[] {
  const sim = new Simulation([strategy], opts);
  const out: EpisodeOutcome[] = [];
  for (let i = 0; i < episodes; i++) out.push(sim.runEpisode(pick(i)));
  return out;
}

function armOf(d: Decision): string {
  return d.nudge.rule.startsWith(LEARNED_RULE_PREFIX) ? d.nudge.rule.slice(LEARNED_RULE_PREFIX.length) : d.nudge.action;
}

function sameValues(a: KnobValues, b: KnobValues): boolean {
  return Object.keys(b).every((k) => a[k] === b[k]);
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
