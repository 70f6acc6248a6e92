import { describe, expect, it } from 'vitest';
import type { TargetSignals, TickSnapshot } from '../../core/types.js';
import type { Verdict } from '../closed-loop.js';
import { Guardrails, type ActionBounds } from '../guardrails.js';
import { knobValuesOf, type DecideInput, type KnobValues, type StrategyFeedback, type StrategyNudge, type StrategyTarget } from '../strategy.js';
import {
  LearnedStrategy,
  type LearnedNudge,
  type LearnerChoice,
  type LearnerOptions,
  type LearnerOutcome,
} from './learner.js';
import type { LearnerModel } from './model.js';
import { runqlatWindow } from '../../signals/windows.js';
import { ACTION_BOUNDS, ACTIONS } from '../../actions/index.js';
import type { LearnerArm, RegisteredAction } from './candidates.js';

const targets: StrategyTarget[] = [
  { name: 'web', role: 'protect' },
  { name: 'batch', role: 'noisy' },
];

const hot = { p99ThresholdUs: 4000, triggerTicks: 2, calmTicks: 3, calmFraction: 0.5 };

function snap(i: number, p99: number, batchOncpuUs = 2_000_000): TickSnapshot {
  const lat = (p: number, on: number): TargetSignals['runqlat'] => (runqlatWindow({
    count: 100,
    p50: 0,
    p90: 0,
    p99: p,
    mean: 0,
    p99Ewma: p,
    waitUs: 0,
    oncpuUs: on,
  }));
  return {
    time: i * 1000,
    windowMs: 1000,
    targets: {
      web: { name: 'web', role: 'protect', runqlat: lat(p99, 500_000) },
      batch: { name: 'batch', role: 'noisy', runqlat: lat(300, batchOncpuUs) },
    },
  };
}

/** Knob state the way the agent keeps it: current values and journaled originals. */
class Knobs {
  readonly values = new Map<string, KnobValues>([
    ['batch/cpu_weight', { weight: 100 }],
    ['batch/pressure_backoff', { quotaCpus: 4, unlimited: 1 }],
    ['web/cpuset_spread', { cpus: 1 }],
  ]);
  readonly originals = new Map<string, KnobValues>();

  apply(n: StrategyNudge): void {
    const key = `${n.target}/${n.action}`;
    if (!this.originals.has(key)) this.originals.set(key, { ...this.values.get(key)! });
    const v = { ...this.values.get(key)! };
    Object.assign(v, knobValuesOf(n));
    this.values.set(key, v);
    if (n.kind === 'restore') this.originals.delete(key);
  }
}

class Driver {
  readonly history: TickSnapshot[] = [];
  readonly knobs = new Knobs();
  /** The closed loop's penalties, (rule, target) → until. */
  readonly penalties = new Map<string, number>();
  /** The engine's guardrails, which answer DecideInput.refusal. */
  readonly guardrails: Guardrails;
  i = 0;
  constructor(
    readonly learner: LearnedStrategy,
    bounds: ActionBounds = ACTION_BOUNDS,
  ) {
    this.guardrails = new Guardrails({ cooldownMs: 0, maxChangesPerMinute: 1_000, denyCgroups: [] }, bounds, {
      penalties: { penalised: (rule, target, now) => (this.penalties.get(`${rule}\0${target}`) ?? 0) > now },
    });
  }

  tick(p99: number, opts: { apply?: boolean; batchOncpuUs?: number } = {}): StrategyNudge[] {
    this.i++;
    const snapshot = snap(this.i, p99, opts.batchOncpuUs);
    const input: DecideInput = {
      now: snapshot.time,
      snapshot,
      history: this.history.slice(-8),
      targets,
      current: (t, a) => this.knobs.values.get(`${t}/${a}`),
      changed: (t, a) => this.knobs.originals.has(`${t}/${a}`),
      original: (t, a) => this.knobs.originals.get(`${t}/${a}`),
      refusal: (n) => {
        const r = this.guardrails.check(n, snapshot.time, { current: this.knobs.values.get(`${n.target}/${n.action}`) });
        return r.ok ? undefined : r.reason;
      },
    };
    const out = this.learner.decide(input);
    if (opts.apply !== false) for (const n of out) this.knobs.apply(n);
    this.history.push(snapshot);
    return out;
  }

  /** The engine's verdict on `nudge`, with the snapshots around it. */
  verdict(nudge: StrategyNudge, verdict: 'kept' | 'revert', before: number, after: number): void {
    const v: Verdict = {
      decisionId: `d-${this.i}`,
      verdict,
      rule: nudge.rule,
      action: nudge.action,
      target: nudge.target,
      metric: 'runqlat.p99',
      before,
      after,
      improvement: (before - after) / before,
      samples: 3,
      samplesBefore: 3,
      pValue: null,
      low: null,
      high: null,
      confidence: 0.9,
    };
    // The closed loop penalises a reverted (rule, target) for a minute.
    if (verdict === 'revert') this.penalties.set(`${nudge.rule}\0${nudge.target}`, this.history.at(-1)!.time + 60_000);
    const fb: StrategyFeedback = { decisionId: v.decisionId, nudge, verdict: v, snapshotAfter: this.history.at(-1)! };
    this.learner.feedback(fb);
  }
}

/** The registered actions of these names, in the agent's order. */
function registered(...names: string[]): RegisteredAction[] {
  return ACTIONS.filter((a) => names.includes(a.name));
}

/** The actions whose arms these tests drive; ACTIONS may hold more. */
const ARMED = ['cpu_weight', 'cpuset_spread', 'pressure_backoff'];

function learner(extra: Partial<LearnerOptions> = {}): LearnedStrategy {
  return new LearnedStrategy({
    actions: registered(...ARMED),
    hot,
    windowTicks: 3,
    seed: 11,
    ...extra,
  });
}

describe('LearnedStrategy: when it acts', () => {
  it('does nothing and draws nothing while no protect target has been hot for triggerTicks', () => {
    const choices: LearnerChoice[] = [];
    const d = new Driver(learner({ onChoice: (c) => choices.push(c) }));
    for (const p of [1000, 3000, 9000, 1000, 9000]) expect(d.tick(p)).toEqual([]);
    expect(choices).toEqual([]);
    expect(d.learner.model.prng).toEqual(learner().model.prng); // no random number was used
  });

  it('chooses once hot, carrying every arm\'s estimate in evidence and in the learner field', () => {
    const d = new Driver(learner({ actions: registered('cpu_weight'), exploration: { scale: 0 , minScale: 0 } }));
    d.tick(9000);
    const [n] = d.tick(9000) as LearnedNudge[];
    // With no exploration and a fresh model every arm ties at 0; the first arm offered wins, and that is noop.
    expect(n).toBeUndefined();
    const d2 = new Driver(
      learner({ actions: registered('cpu_weight'), model: trained('cpu_weight', 0.4), exploration: { scale: 0, minScale: 0 } }),
    );
    d2.tick(9000);
    const [m] = d2.tick(9000) as LearnedNudge[];
    expect(m).toMatchObject({ action: 'cpu_weight', target: 'batch', desired: { weight: 50 }, rule: 'learned:cpu_weight' });
    expect(m!.objective).toEqual({ targets: ['web'], metric: 'runqlat.p99', better: 'lower', unit: 'us', baselineTicks: 2 });
    expect(Object.keys(m!.evidence)).toEqual(
      expect.arrayContaining(['p99Us', 'thresholdUs', 'est.noop', 'est.cpu_weight', 'sd.noop', 'sd.cpu_weight', 'draw.cpu_weight']),
    );
    expect(Object.values(m!.evidence).every((v) => typeof v === 'number' && Number.isFinite(v))).toBe(true);
    expect(m!.evidence['est.cpu_weight']).toBeCloseTo(0.4, 1);
    expect(m!.learner.estimates.map((e) => e.arm)).toEqual(['noop', 'cpu_weight']);
    expect(m!.reason).toMatch(/^web run-queue p99 9 ms > 4 ms; learner chose cpu_weight: reward estimate 0\.\d\d ± 0\.\d\d/);
    expect(m!.reason).toMatch(/batch cpu.weight 100 → 50$/);
  });

  it('takes its arms from what the registered actions declare, in the order they are registered', () => {
    expect(learner({ actions: registered('cpu_weight') }).arms).toEqual(['noop', 'cpu_weight']);
    expect(learner({ actions: [] }).arms).toEqual(['noop']);
    // numa_rebalance and io_prefetch declare no arm: registered, and never the learner's choice.
    const some = learner({ actions: registered(...ARMED, 'numa_rebalance', 'io_prefetch') });
    expect(some.arms).toEqual(['noop', 'cpu_weight', 'cpuset_spread', 'pressure_backoff']);
    expect(some.actions).toEqual(['cpu_weight', 'cpuset_spread', 'pressure_backoff']);
    expect(learner({ actions: [...registered('pressure_backoff', 'cpu_weight'), { name: 'unrelated' }] }).arms).toEqual([
      'noop',
      'cpu_weight',
      'pressure_backoff',
    ]);
    // Templates given directly (tests) are still offered only for registered actions.
    expect(learner({ actions: registered('cpu_weight'), templates: [NICE_ARM({ step: { stepFraction: 0.5, minWeight: 10 } })] }).arms).toEqual(['noop']);
  });

  it('gains the arm an action declares by registering the action, and proposes and restores its nudges', () => {
    const quiet: RegisteredAction = { name: 'quiet' };
    const nice: RegisteredAction = { name: 'nice_level', learnerArms: [NICE_ARM] };
    const actions = [...registered(...ARMED), quiet, nice];
    const l = learner({ actions, model: trained('nice_up', 0.6, { actions }), exploration: { scale: 0, minScale: 0 } });
    expect(l.arms).toEqual(['noop', 'cpu_weight', 'cpuset_spread', 'pressure_backoff', 'nice_up']);
    const d = new Driver(l, { ...ACTION_BOUNDS, nice_level: { nice: { min: 0, max: 19 } } });
    d.tick(9000);
    const [n] = d.tick(9000);
    expect(n).toMatchObject({ action: 'nice_level', target: 'batch', desired: { nice: 10 }, rule: 'learned:nice_up' });
    const calm = [1, 2, 3, 4].flatMap(() => d.tick(1000));
    expect(calm).toEqual([expect.objectContaining({ kind: 'restore', action: 'nice_level', target: 'batch', rule: 'learned:nice_up' })]);
  });

  it('refuses an arm that names another action than the one declaring it', () => {
    const wrong: RegisteredAction = { name: 'renice', learnerArms: [NICE_ARM] };
    expect(() => learner({ actions: [wrong] })).toThrow(/action renice declares arm nice_up, whose nudges name nice_level/);
  });

  it('runs one experiment at a time: no new choice until the outcome is in', () => {
    const choices: LearnerChoice[] = [];
    const d = new Driver(learner({ model: trained('cpu_weight', 0.5), exploration: { scale: 0, minScale: 0 }, onChoice: (c) => choices.push(c) }));
    d.tick(9000);
    const [n] = d.tick(9000);
    expect(n?.action).toBe('cpu_weight');
    for (let i = 0; i < 3; i++) expect(d.tick(9000)).toEqual([]);
    expect(choices).toHaveLength(1);
    d.verdict(n!, 'kept', 9000, 5000);
    expect(d.tick(9000)).toHaveLength(1);
    expect(choices).toHaveLength(2);
  });

  it('skips templates that have nothing to do and says why', () => {
    const choices: LearnerChoice[] = [];
    const d = new Driver(learner({ onChoice: (c) => choices.push(c) }));
    d.knobs.values.set('batch/cpu_weight', { weight: 10 });
    d.knobs.originals.set('batch/pressure_backoff', { quotaCpus: 4 });
    d.tick(9000);
    d.tick(9000);
    const skips = Object.fromEntries(choices[0]!.estimates.map((e) => [e.arm, e.skip]));
    expect(skips.cpu_weight).toMatch(/weight floor/);
    expect(skips.pressure_backoff).toMatch(/already backed off/);
    expect(skips.cpuset_spread).toBeUndefined();
  });
});

describe('LearnedStrategy: safe exploration', () => {
  it('frees the slot at once when its nudge was not applied, and does not offer that arm on that target for a while', () => {
    const choices: LearnerChoice[] = [];
    const d = new Driver(learner({ actions: registered('cpu_weight'), model: trained('cpu_weight', 0.5), exploration: { scale: 0, minScale: 0 }, onChoice: (c) => choices.push(c) }));
    d.tick(9000);
    expect(d.tick(9000, { apply: false })).toHaveLength(1); // refused by the engine: never applied
    d.tick(9000, { apply: false }); // the learner sees the knob unchanged, frees the slot, backs off
    const last = choices.at(-1)!;
    expect(choices).toHaveLength(2);
    expect(last.arm).toBe('noop');
    expect(last.estimates.find((e) => e.arm === 'cpu_weight')!.skip).toMatch(/not applied on batch last time/);
  });

  it('does not offer an arm on a target while the closed loop penalises it', () => {
    const choices: LearnerChoice[] = [];
    const d = new Driver(learner({ actions: registered('cpu_weight'), model: trained('cpu_weight', 0.5), exploration: { scale: 0, minScale: 0 }, onChoice: (c) => choices.push(c) }));
    d.tick(9000);
    const [n] = d.tick(9000);
    d.tick(9000);
    d.verdict(n!, 'revert', 9000, 9000);
    d.knobs.apply({ ...n!, kind: 'restore', desired: { weight: 100 } });
    d.tick(9000);
    expect(choices.at(-1)!.estimates.find((e) => e.arm === 'cpu_weight')!.skip).toMatch(/guardrails would refuse: learned:cpu_weight on batch is penalised/);
  });

  it('does not offer a candidate the guardrails\' bounds would refuse', () => {
    const choices: LearnerChoice[] = [];
    const bounds = {
      cpu_weight: ACTION_BOUNDS.cpu_weight!,
      pressure_backoff: { quotaCpus: { min: 0.01, max: 64, maxStepFraction: 0.25 } },
    };
    const d = new Driver(learner({ onChoice: (c) => choices.push(c) }), bounds);
    d.tick(9000);
    d.tick(9000);
    const skips = Object.fromEntries(choices[0]!.estimates.map((e) => [e.arm, e.skip]));
    expect(skips.cpu_weight).toBeUndefined(); // 100 → 50 is within cpu_weight's bounds
    expect(skips.cpuset_spread).toMatch(/guardrails would refuse: action cpuset_spread has no declared bounds/);
    expect(skips.pressure_backoff).toMatch(/guardrails would refuse: pressure_backoff.quotaCpus 4 → 1 moves 75%, more than the 25% allowed/);
  });

  it('is driven by a seeded generator: the same inputs give the same choices', () => {
    const run = (seed: number): string[] => {
      const d = new Driver(learner({ seed }));
      const out: string[] = [];
      for (let i = 0; i < 40; i++) {
        for (const n of d.tick(i % 10 < 7 ? 9000 : 1000)) out.push(`${d.i}:${n.rule}:${JSON.stringify(n.desired)}`);
      }
      return out;
    };
    expect(run(5)).toEqual(run(5));
    expect(run(5).length).toBeGreaterThan(0);
  });
});

describe('LearnedStrategy: learning', () => {
  it('learns from feedback: improvement minus what batch lost minus churn', () => {
    const outcomes: LearnerOutcome[] = [];
    const models: LearnerModel[] = [];
    const d = new Driver(learner({ actions: registered('cpu_weight'), model: trained('cpu_weight', 0.5), exploration: { scale: 0, minScale: 0 }, onOutcome: (o) => outcomes.push(o), onModelChange: (m) => models.push(structuredClone(m)) }));
    d.tick(9000);
    const [n] = d.tick(9000);
    for (let i = 0; i < 3; i++) d.tick(5000, { batchOncpuUs: 1_500_000 }); // batch lost a quarter of its CPU
    d.verdict(n!, 'kept', 9000, 5000);
    expect(outcomes).toHaveLength(1);
    const o = outcomes[0]!;
    expect(o).toMatchObject({ arm: 'cpu_weight', target: 'batch', verdict: 'kept', onPolicy: true });
    expect(o.improvement).toBeCloseTo(4 / 9);
    expect(o.lost).toBeCloseTo(0.25);
    expect(o.reward).toBeCloseTo(4 / 9 - 0.5 * 0.25 - 0.02);
    expect(models.at(-1)!.arms.cpu_weight!.n).toBe(11);
    expect(models.at(-1)!.updates).toBe(11);
  });

  it('judges "do nothing" itself over the closed loop\'s window', () => {
    const outcomes: LearnerOutcome[] = [];
    const d = new Driver(learner({ actions: [], onOutcome: (o) => outcomes.push(o) }));
    d.tick(8000);
    expect(d.tick(8000)).toEqual([]); // noop chosen: the only arm
    for (const p of [6000, 6000, 6000]) d.tick(p);
    expect(outcomes).toEqual([
      expect.objectContaining({ arm: 'noop', verdict: 'self', lost: 0, improvement: 0.25, reward: 0.25 }),
    ]);
  });

  it('learns from another strategy\'s verdict on a nudge with the same action (off-policy)', () => {
    const outcomes: LearnerOutcome[] = [];
    const l = learner({ onOutcome: (o) => outcomes.push(o) });
    const before = snap(1, 9000);
    const nudge: StrategyNudge = { kind: 'set', action: 'cpu_weight', target: 'batch', desired: { weight: 50 }, reason: '', rule: 'noisy-neighbor', evidence: {} };
    l.observe({
      decisionId: 'x',
      nudge,
      verdict: { decisionId: 'x', verdict: 'kept', rule: 'noisy-neighbor', action: 'cpu_weight', target: 'batch', metric: 'runqlat.p99', before: 9000, after: 4500, improvement: 0.5, samples: 3, samplesBefore: 3, pValue: null, low: null, high: null, confidence: 0.9 },
      snapshotBefore: before,
      snapshotAfter: snap(5, 4500, 2_000_000),
    });
    expect(outcomes).toEqual([expect.objectContaining({ arm: 'cpu_weight', onPolicy: false, improvement: 0.5, lost: 0 })]);
    expect(l.model.arms.cpu_weight!.n).toBe(1);
    expect(l.estimates(before, targets).find((e) => e.arm === 'cpu_weight')!.mean).toBeGreaterThan(0.1);
  });

  it('continues from a saved model exactly where it left off', () => {
    const a = learner();
    const d = new Driver(a);
    for (let i = 0; i < 30; i++) {
      for (const n of d.tick(i % 6 < 4 ? 9000 : 1000)) if (n.kind === 'set') d.verdict(n, 'kept', 9000, 6000);
    }
    const saved = structuredClone(a.model);
    const b = learner({ model: saved });
    expect(b.estimates(snap(1, 9000), targets)).toEqual(a.estimates(snap(1, 9000), targets));
    expect(b.model.prng).toEqual(a.model.prng);
  });
});

describe('LearnedStrategy: restoring', () => {
  it('restores every held change of its actions once calm, with the journaled original', () => {
    const d = new Driver(learner());
    d.knobs.apply({ kind: 'set', action: 'cpu_weight', target: 'batch', desired: { weight: 50 }, reason: '', rule: 'x', evidence: {} });
    d.knobs.apply({ kind: 'set', action: 'cpuset_spread', target: 'web', desired: { cpus: 2 }, reason: '', rule: 'x', evidence: {} });
    expect(d.tick(1000)).toEqual([]);
    expect(d.tick(1000)).toEqual([]);
    const r = d.tick(1000);
    expect(r.map((n) => [n.kind, n.action, n.target, n.desired, n.rule])).toEqual([
      ['restore', 'cpu_weight', 'batch', { weight: 100 }, 'learned:cpu_weight'],
      ['restore', 'cpuset_spread', 'web', { cpus: 1 }, 'learned:cpuset_spread'],
    ]);
    expect(r[0]!.reason).toMatch(/^calm: every protect target's run-queue p99 < 2 ms for 3 ticks; restoring batch cpu_weight to weight 100/);
    expect(d.tick(1000)).toEqual([]);
  });

  it('holds in the band between calm and hot', () => {
    const d = new Driver(learner());
    d.knobs.apply({ kind: 'set', action: 'cpu_weight', target: 'batch', desired: { weight: 50 }, reason: '', rule: 'x', evidence: {} });
    for (let i = 0; i < 6; i++) expect(d.tick(3000)).toEqual([]);
  });
});

/** A model in which `arm` has learned `reward` in the test's hot situation. */
describe('LearnedStrategy: an outcome is measured against the hot ticks', () => {
  it('charges what the neighbour lost against the ticks it was hot in, not the calm ones before it ran', () => {
    const outcomes: LearnerOutcome[] = [];
    const d = new Driver(
      learner({ actions: registered('pressure_backoff'), windowTicks: 5, model: trained('pressure_backoff', 0.5), exploration: { scale: 0, minScale: 0 }, onOutcome: (o) => outcomes.push(o) }),
    );
    // Calm, the neighbour idle; then it takes 2 CPUs and web is hot.
    for (let i = 0; i < 3; i++) d.tick(1000, { batchOncpuUs: 0 });
    d.tick(9000);
    const [n] = d.tick(9000);
    expect(n?.action).toBe('pressure_backoff');
    // Capped: the neighbour runs half as much.
    for (let i = 0; i < 3; i++) d.tick(5000, { batchOncpuUs: 1_000_000 });
    d.verdict(n!, 'kept', 9000, 5000);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]!.lost).toBeCloseTo(0.5, 9);
  });

  it('judges "do nothing" against the hot ticks too', () => {
    const outcomes: LearnerOutcome[] = [];
    const d = new Driver(learner({ actions: [], windowTicks: 5, onOutcome: (o) => outcomes.push(o) }));
    for (let i = 0; i < 3; i++) d.tick(1000);
    d.tick(9000);
    d.tick(9000);
    for (let i = 0; i < 5; i++) d.tick(9000);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ arm: 'noop', improvement: 0, verdict: 'self' });
  });
});

describe('LearnedStrategy: uniform choices, for an offline replay', () => {
  it('with uniform_share 1 takes every eligible arm about equally often, whatever the model says, and logs how it chose', () => {
    const counts: Record<string, number> = {};
    const outcomes: LearnerOutcome[] = [];
    // A model sure of cpu_weight, with its own random state dropped so each seed draws anew.
    const model = { ...trained('cpu_weight', 0.9), prng: null };
    for (let seed = 1; seed <= 300; seed++) {
      const choices: LearnerChoice[] = [];
      const d = new Driver(learner({ seed, model, exploration: { uniformShare: 1 }, onChoice: (c) => choices.push(c), onOutcome: (o) => outcomes.push(o) }));
      d.tick(9000);
      const [n] = d.tick(9000);
      const c = choices[0]!;
      expect(c.uniform).toBe(true);
      counts[c.arm] = (counts[c.arm] ?? 0) + 1;
      if (n !== undefined && seed <= 5) d.verdict(n, 'kept', 9000, 6000);
      if (n === undefined && seed <= 5) for (let i = 0; i < 3; i++) d.tick(9000);
    }
    // web/cpuset_spread is at 1 CPU with nothing known about placement, so all four arms apply.
    expect(Object.keys(counts).sort()).toEqual(['cpu_weight', 'cpuset_spread', 'noop', 'pressure_backoff']);
    for (const n of Object.values(counts)) expect(n).toBeGreaterThan(45);
    expect(outcomes.length).toBeGreaterThan(0);
    for (const o of outcomes) {
      expect(o.uniform).toBe(true);
      expect(o.chosenAt).toBeLessThanOrEqual(o.time);
      expect(o.eligible).toEqual(['noop', 'cpu_weight', 'cpuset_spread', 'pressure_backoff']);
      expect(o.features).toHaveProperty(['runqlat.present']);
    }
  });

  it('without a uniform share draws exactly as before (no extra random number), and says the choice was the model\'s', () => {
    const a: LearnerChoice[] = [];
    const b: LearnerChoice[] = [];
    const da = new Driver(learner({ onChoice: (c) => a.push(c) }));
    const db = new Driver(learner({ exploration: { uniformShare: 0 }, onChoice: (c) => b.push(c) }));
    for (const d of [da, db]) for (let i = 0; i < 2; i++) d.tick(9000);
    expect(a[0]!.uniform).toBe(false);
    expect(b[0]!.arm).toBe(a[0]!.arm);
    expect(db.learner.model.prng).toEqual(da.learner.model.prng);
  });

  it('chooses and learns from a logged context, the way an offline replay asks', () => {
    const l = learner({ exploration: { scale: 0, minScale: 0 } });
    const features = { 'runqlat.present': 1 };
    for (let i = 0; i < 10; i++) l.learnArm('pressure_backoff', features, 0.8);
    expect(l.chooseArm(features, ['noop', 'cpu_weight', 'pressure_backoff'])).toBe('pressure_backoff');
    expect(l.chooseArm(features, ['noop', 'cpu_weight'])).not.toBe('pressure_backoff');
    expect(() => l.chooseArm(features, ['elsewhere'])).toThrow(/none of elsewhere is one of this learner's arms/);
    expect(() => l.learnArm('elsewhere', features, 1)).toThrow(/elsewhere is not one of this learner's arms/);
  });
});

/** An arm of an action the learner's folder has never heard of: raise the first noisy target's nice level to 10. */
const NICE_ARM: LearnerArm = () => ({
  name: 'nice_up',
  action: 'nice_level',
  propose: (ctx) => {
    const t = ctx.noisy[0];
    return t === undefined ? { skip: 'no noisy target' } : { target: t.name, desired: { nice: 10 }, move: `${t.name} nice 0 → 10` };
  },
});

function trained(arm: string, reward: number, extra: Partial<LearnerOptions> = {}): LearnerModel {
  const l = learner(extra);
  const s = snap(1, 9000);
  const nudge: StrategyNudge = { kind: 'set', action: arm, target: 'batch', desired: {}, reason: '', rule: `learned:${arm}`, evidence: {} };
  for (let i = 0; i < 10; i++) {
    l.observe({
      decisionId: `t${i}`,
      nudge,
      verdict: { decisionId: `t${i}`, verdict: 'kept', rule: nudge.rule, action: arm, target: 'batch', metric: 'runqlat.p99', before: 1, after: 1, improvement: reward + 0.02, samples: 3, samplesBefore: 3, pValue: null, low: null, high: null, confidence: 0.9 },
      snapshotBefore: s,
      snapshotAfter: s,
    });
  }
  return structuredClone(l.model);
}
