import { describe, expect, it } from 'vitest';
import type { NoisyNeighborPolicy } from '../config/types.js';
import { isTunerError } from '../core/errors.js';
import type { TargetSignals, TickSnapshot } from '../core/types.js';
import { ClosedLoop } from './closed-loop.js';
import { DecisionEngine, type Decision } from './engine.js';
import { Guardrails } from './guardrails.js';
import { NoisyNeighborRule } from './heuristic/noisy-neighbor.js';
import type { DecideInput, KnobValues, Strategy, StrategyFeedback, StrategyNudge, StrategyTarget } from './strategy.js';
import { NOISY_NEIGHBOR_POLICY } from '../testing/nudges.js';
import { runqlatWindow } from '../signals/windows.js';
import { ACTION_BOUNDS } from '../actions/index.js';

const policy: NoisyNeighborPolicy = { ...NOISY_NEIGHBOR_POLICY, calmTicks: 3 };

const targets: StrategyTarget[] = [
  { name: 'web', role: 'protect' },
  { name: 'batch', role: 'noisy' },
];

/**
 * A small simulated host: web's run-queue p99 depends on batch's weight through `load`, and the "agent" applies
 * every proposed or revert decision at once, journaling the original before the first change.
 */
class World {
  weight = 100;
  original: number | undefined;
  readonly log: Decision[] = [];
  readonly loop = new ClosedLoop({ windowTicks: 3, margin: 0.1, penaltyMs: 20_000, significance: 0.05, warmupTicks: 0 });
  readonly guardrails = new Guardrails({ cooldownMs: 5_000, maxChangesPerMinute: 10, denyCgroups: [] }, ACTION_BOUNDS, {
    penalties: this.loop,
  });
  readonly engine: DecisionEngine;

  constructor(
    readonly load: Load,
    strategies: Strategy[] = [new NoisyNeighborRule(policy)],
    onStrategyError?: (strategy: string, error: unknown) => void,
  ) {
    this.engine = new DecisionEngine({
      strategies,
      guardrails: this.guardrails,
      closedLoop: this.loop,
      idPrefix: 'boot1',
      ...(onStrategyError !== undefined ? { onStrategyError } : {}),
    });
  }

  run(ticks: number, from = 0): Decision[] {
    const out: Decision[] = [];
    for (let i = from; i < from + ticks; i++) {
      const now = 1_000 * (i + 1);
      const decisions = this.engine.tick({
        now,
        snapshot: this.snapshot(i, now),
        targets,
        current: (t) => (t === 'batch' ? { weight: this.weight } : undefined),
        changed: (t) => t === 'batch' && this.original !== undefined,
        original: (t) => (t === 'batch' && this.original !== undefined ? { weight: this.original } : undefined),
      });
      for (const d of decisions) if (d.kind === 'proposed' || d.kind === 'revert') this.apply(d, now);
      out.push(...decisions);
    }
    this.log.push(...out);
    return out;
  }

  apply(d: Decision, now: number): void {
    const from: KnobValues = { weight: this.weight };
    const restore = d.nudge.kind === 'restore';
    if (!restore && this.original === undefined) this.original = this.weight;
    this.weight = Number(d.nudge.desired?.weight ?? this.original);
    if (restore && this.weight === this.original) this.original = undefined;
    this.engine.applied(d.id, from, { weight: this.weight }, now);
  }

  snapshot(i: number, now: number): TickSnapshot {
    const p99 = this.load.p99(this.weight, i);
    const web: TargetSignals = {
      name: 'web',
      role: 'protect',
      runqlat: runqlatWindow({ count: p99 === null ? 0 : 80, p50: 0, p90: 0, p99: p99 ?? 0, mean: 0, p99Ewma: p99 ?? 0, waitUs: 0, oncpuUs: 0 }),
    };
    const batch: TargetSignals = {
      name: 'batch',
      role: 'noisy',
      // Once batch has finished, and only then, may a calm restore give its weight back.
      runqlat: runqlatWindow({ count: 500, p50: 0, p90: 0, p99: 300, mean: 0, p99Ewma: 300, waitUs: 0, oncpuUs: i >= (this.load.batchUntil ?? Infinity) ? 0 : 1_900_000 }),
    };
    return { time: now, windowMs: 1_000, targets: { web, batch } };
  }
}

/** Web's run-queue p99 for batch's weight in a tick (null: web ran nothing), and the tick batch stops at, if it does. */
interface Load {
  p99(weight: number, tick: number): number | null;
  batchUntil?: number;
}

/** Lowering batch helps web; at tick 20 batch stops and the load goes away altogether. */
const helps: Load = {
  p99: (w, tick) => (tick >= 20 ? 1_000 : w >= 100 ? 7_200 : w >= 75 ? 5_000 : w >= 56 ? 3_500 : 2_000),
  batchUntil: 20,
};
/** Lowering batch makes no difference. */
const useless: Load = { p99: () => 7_200 };

const brief = (ds: Decision[]): string[] =>
  ds.map((d) => `${d.time / 1_000}:${d.kind}${d.refusal ? `:${d.refusal.code}` : ''}:${d.nudge.kind}${JSON.stringify(d.nudge.desired)}`);

describe('DecisionEngine flow', () => {
  it('steps, keeps a change that helps, steps again, holds in the band, and restores when calm', () => {
    const w = new World(helps);
    const ds = w.run(30);
    expect(brief(ds)).toEqual([
      '3:proposed:set{"weight":75}',
      '4:refused:EVALUATING:set{"weight":56}',
      '5:refused:EVALUATING:set{"weight":56}',
      '6:kept:set{"weight":75}', // 7.2 ms → 5 ms over the 3 ticks after
      '6:refused:COOLDOWN:set{"weight":56}', // verdicts come first, so the knob is free, but it changed at t=3 s
      '7:refused:COOLDOWN:set{"weight":56}',
      '8:proposed:set{"weight":56}',
      '11:kept:set{"weight":56}', // 5 ms → 3.5 ms, now inside the band: nothing more to do until the load goes
      '23:proposed:restore{"weight":100}', // calm for 3 ticks (t = 21, 22, 23 s)
    ]);
    expect(w.weight).toBe(100);
    expect(w.original).toBeUndefined();
    expect(ds.find((d) => d.kind === 'kept')!.verdict).toMatchObject({ decisionId: ds[0]!.id, before: 7_200, after: 5_000 });
  });

  it('reverts a change that did not help, then refuses the pair while penalised', () => {
    const w = new World(useless);
    const ds = w.run(30);
    const revert = ds.find((d) => d.kind === 'revert')!;
    expect(revert).toMatchObject({
      time: 6_000,
      source: 'closed-loop',
      nudge: { kind: 'restore', target: 'batch', desired: { weight: 100 }, rule: 'noisy-neighbor' },
      verdict: { decisionId: ds[0]!.id, verdict: 'revert', before: 7_200, after: 7_200, improvement: 0 },
    });
    expect(revert.nudge.reason).toBe(
      'closed loop: web run-queue p99 median 7.2 ms before, 7.2 ms after: 0% better (90% CI 0% to 0%, p = 1.000; ' +
        '3 ticks before, 3 after); keeping needs p ≤ 0.05 and ≥ 10% better; ' +
        'putting batch cpu_weight back (weight 75 → 100)',
    );
    expect(w.weight).toBe(100);
    // Penalty runs from t=6 s for 20 s: the same experiment is refused until then, and tried again after.
    const after = ds.filter((d) => d.time > 6_000);
    expect(after.filter((d) => d.time < 26_000).every((d) => d.kind === 'refused' && d.refusal!.code === 'PENALISED')).toBe(true);
    expect(after.find((d) => d.kind === 'proposed')!.time).toBe(26_000);
  });

  it('refuses forward changes while paused but lets a restore through', () => {
    const w = new World(helps);
    w.run(4);
    expect(w.weight).toBe(75);
    w.guardrails.pause('maintenance');
    const paused = w.run(10, 4);
    expect(paused.filter((d) => d.kind === 'proposed')).toEqual([]);
    expect(paused.some((d) => d.refusal?.code === 'PAUSED')).toBe(true);
    const calm = w.run(3, 20);
    expect(brief(calm)).toEqual(['23:proposed:restore{"weight":100}']);
    expect(w.weight).toBe(100);
  });
});

describe('DecisionEngine determinism and ids', () => {
  it('gives the same decisions for the same inputs', () => {
    const a = new World(helps).run(30);
    const b = new World(helps).run(30);
    expect(a).toEqual(b);
    const c = new World(useless).run(40);
    const d = new World(useless).run(40);
    expect(c).toEqual(d);
  });

  it('numbers decisions with the prefix, strictly increasing in sort order', () => {
    const ds = new World(useless).run(40);
    expect(ds[0]!.id).toBe('boot1-00000001');
    const ids = ds.map((d) => d.id);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

/** A strategy that proposes whatever it is given, for exercising the engine alone. */
function fixed(name: string, nudges: StrategyNudge[], seen?: number[]): Strategy {
  return {
    name,
    historyTicks: 2,
    decide: (input) => {
      seen?.push(input.history.length);
      return nudges;
    },
  };
}

const step = (target: string, weight: number): StrategyNudge => ({
  kind: 'set',
  action: 'cpu_weight',
  target,
  desired: { weight },
  reason: 'test',
  rule: 'fixed',
  evidence: {},
  // One tick of baseline, so a step may be proposed from the first tick on.
  objective: { metric: 'runqlat.p99', better: 'lower', baselineTicks: 1 },
});

function engineWith(
  strategies: Strategy[],
  onStrategyError?: (strategy: string, error: unknown) => void,
): { engine: DecisionEngine; tick: (i: number) => Decision[] } {
  const loop = new ClosedLoop({ windowTicks: 3, margin: 0.1, penaltyMs: 0, significance: 0.05, warmupTicks: 0 });
  const guardrails = new Guardrails({ cooldownMs: 0, maxChangesPerMinute: 100, denyCgroups: [] }, ACTION_BOUNDS, { penalties: loop });
  const engine = new DecisionEngine({
    strategies,
    guardrails,
    closedLoop: loop,
    ...(onStrategyError !== undefined ? { onStrategyError } : {}),
  });
  const tick = (i: number): Decision[] =>
    engine.tick({
      now: i * 1_000,
      snapshot: { time: i * 1_000, windowMs: 1_000, targets: {} },
      targets,
      current: () => ({ weight: 100 }),
      changed: () => false,
    });
  return { engine, tick };
}

describe('DecisionEngine bookkeeping', () => {
  it('refuses a second proposal on a knob with an unreported decision, until it is reported', () => {
    const { engine, tick } = engineWith([fixed('a', [step('batch', 80)]), fixed('b', [step('batch', 90)])]);
    const first = tick(1);
    expect(first.map((d) => [d.source, d.kind, d.refusal?.code])).toEqual([
      ['a', 'proposed', undefined],
      ['b', 'refused', 'PENDING'],
    ]);
    expect(engine.pending).toEqual([first[0]!.id]);
    expect(tick(2).map((d) => d.refusal?.code)).toEqual(['PENDING', 'PENDING']);
    engine.failed(first[0]!.id, new Error('EACCES'));
    expect(engine.pending).toEqual([]);
    expect(tick(3).map((d) => d.kind)).toEqual(['proposed', 'refused']);
  });

  it('refuses targets that are not configured', () => {
    const { tick } = engineWith([fixed('a', [step('ghost', 80)])]);
    expect(tick(1)[0]!.refusal).toEqual({ code: 'UNKNOWN_TARGET', reason: 'ghost is not a configured target' });
  });

  it('throws on a report for a decision that is not pending', () => {
    const { engine, tick } = engineWith([fixed('a', [step('batch', 80)])]);
    const [d] = tick(1);
    engine.applied(d!.id, { weight: 100 }, { weight: 80 }, 1_000);
    let err: unknown;
    try {
      engine.applied(d!.id, { weight: 100 }, { weight: 80 }, 1_000);
    } catch (e) {
      err = e;
    }
    expect(isTunerError(err, 'INTERNAL')).toBe(true);
    expect(() => engine.failed('nope', null)).toThrow(/not a pending/);
  });

  it('keeps a bounded history, excluding the current snapshot', () => {
    const seen: number[] = [];
    const { tick } = engineWith([fixed('a', [], seen)]);
    for (let i = 1; i <= 6; i++) tick(i);
    // historyTicks 2, but the closed loop's window of 3 needs more for baselines.
    expect(seen).toEqual([0, 1, 2, 3, 3, 3]);
  });

  it('gives a strategy with a recall only what it recalled, for its own historyTicks, and the others whole snapshots', () => {
    const got: { recalled: unknown[][] } = { recalled: [] };
    const recalling: Strategy = {
      name: 'r',
      historyTicks: 4,
      recall: (s) => ({ time: s.time, windowMs: s.windowMs, targets: {} }),
      decide: (input) => {
        got.recalled.push(input.history.map((h) => [h.time, Object.keys(h.targets).length]));
        return [];
      },
    };
    const seen: number[] = [];
    const { tick } = engineWith([recalling, fixed('a', [], seen)]);
    for (let i = 1; i <= 6; i++) tick(i);
    // Its own four ticks, beyond the closed loop's window of 3 the engine keeps whole; each as its recall made it.
    expect(got.recalled.at(-1)).toEqual([2, 3, 4, 5].map((i) => [i * 1_000, 0]));
    expect(got.recalled.map((h) => h.length)).toEqual([0, 1, 2, 3, 4, 4]);
    expect(seen).toEqual([0, 1, 2, 3, 3, 3]);
  });

  it('a recall that throws is reported like a failing decide and costs only its own strategy that tick', () => {
    const errors: string[] = [];
    let n = 0;
    const lengths: number[] = [];
    const flaky: Strategy = {
      name: 'flaky',
      historyTicks: 3,
      recall: (s) => {
        if (++n === 2) throw new Error('bad tick');
        return s;
      },
      decide: (input) => {
        lengths.push(input.history.length);
        return [];
      },
    };
    const seen: number[] = [];
    const { tick } = engineWith([flaky, fixed('a', [], seen)], (name, e) => errors.push(`${name}: ${String(e)}`));
    for (let i = 1; i <= 4; i++) tick(i);
    expect(errors).toEqual(['flaky: Error: bad tick']);
    expect(lengths).toEqual([0, 1, 1, 2]);
    expect(seen).toEqual([0, 1, 2, 3]);
  });

  it('without a handler, a recall that throws throws, as a failing decide does', () => {
    const broken: Strategy = { name: 'broken', historyTicks: 1, recall: () => { throw new Error('bad tick'); }, decide: () => [] };
    const { tick } = engineWith([broken]);
    expect(() => tick(1)).toThrow('bad tick');
  });
});

describe('DecisionEngine baseline', () => {
  it('refuses a forward change until a whole window after the warm-up exists, and never uses warm-up ticks as a baseline', () => {
    const loop = new ClosedLoop({ windowTicks: 3, margin: 0.1, penaltyMs: 0, significance: 0.05, warmupTicks: 2 });
    const guardrails = new Guardrails({ cooldownMs: 0, maxChangesPerMinute: 100, denyCgroups: [] }, ACTION_BOUNDS, { penalties: loop });
    const nudge = { ...step('batch', 80), objective: { metric: 'runqlat.p99', better: 'lower' as const, targets: ['web'] } };
    const engine = new DecisionEngine({ strategies: [fixed('a', [nudge])], guardrails, closedLoop: loop });
    // Start-up ticks read 50 ms (a cold cache, the agent's own load); the steady state is 8 ms.
    const p99 = (i: number) => (i <= 2 ? 50_000 : 8_000);
    const kinds: string[] = [];
    for (let i = 1; i <= 6; i++) {
      const snapshot: TickSnapshot = {
        time: i * 1_000,
        windowMs: 1_000,
        targets: { web: { name: 'web', role: 'protect', runqlat: runqlatWindow({ count: 9, p50: 0, p90: 0, p99: p99(i), mean: 0, p99Ewma: 0, waitUs: 0, oncpuUs: 0 }) } },
      };
      const ds = engine.tick({ now: i * 1_000, snapshot, targets, current: () => ({ weight: 100 }), changed: () => false });
      for (const d of ds) {
        kinds.push(`${i}:${d.kind}${d.refusal ? `:${d.refusal.code}` : ''}`);
        if (d.kind === 'refused' && i === 4) expect(d.refusal!.reason).toMatch(/has 2 of the 3 ticks it needs as a baseline \(after a warm-up of 2 ticks\)/);
        if (d.kind === 'proposed') engine.applied(d.id, { weight: 100 }, { weight: 80 }, i * 1_000);
      }
    }
    expect(kinds.slice(0, 5)).toEqual(['1:refused:BASELINE', '2:refused:BASELINE', '3:refused:BASELINE', '4:refused:BASELINE', '5:proposed']);
    // Proposed at tick 5: baseline ticks 3, 4, 5 — none of the 50 ms start-up ticks.
    const [v] = [7, 8, 9].flatMap((i) => loop.observe({ time: i * 1_000, windowMs: 1_000, targets: { web: { name: 'web', role: 'protect', runqlat: runqlatWindow({ count: 9, p50: 0, p90: 0, p99: 8_000, mean: 0, p99Ewma: 0, waitUs: 0, oncpuUs: 0 }) } } }, i * 1_000));
    expect(v).toMatchObject({ verdict: 'revert', before: 8_000, samplesBefore: 3 });
  });

  it('does not judge a dry-run decision: no evaluation, no verdict', () => {
    const { engine, tick } = engineWith([fixed('a', [step('batch', 80)])]);
    const [d] = tick(1);
    engine.dryRan(d!.id, 1_000);
    expect(engine.pending).toEqual([]);
    const later = [2, 3, 4, 5, 6].flatMap((i) => tick(i));
    expect(later.filter((x) => x.kind === 'kept' || x.kind === 'revert' || x.refusal?.code === 'EVALUATING')).toEqual([]);
  });
});

describe('DecisionEngine and a strategy that throws', () => {
  const broken: Strategy = {
    name: 'broken',
    decide: () => {
      throw new Error('model file missing');
    },
  };

  it('propagates before anything is decided when no handler is given', () => {
    const { engine, tick } = engineWith([fixed('a', [step('batch', 80)]), broken]);
    expect(() => tick(1)).toThrow('model file missing');
    expect(engine.pending).toEqual([]);
  });

  it('skips only that strategy when a handler is given', () => {
    const errors: string[] = [];
    const { tick } = engineWith([broken, fixed('a', [step('batch', 80)])], (name, e) => errors.push(`${name}: ${String(e)}`));
    expect(tick(1).map((d) => [d.source, d.kind])).toEqual([['a', 'proposed']]);
    expect(errors).toEqual(['broken: Error: model file missing']);
  });
});

describe('DecisionEngine feedback to the proposing strategy', () => {
  /** The noisy-neighbor rule with a feedback hook, so the engine's routing can be watched. */
  function listening(name: string, outcomes: StrategyFeedback[], fail = false): Strategy {
    const rule = new NoisyNeighborRule(policy);
    return {
      name,
      historyTicks: rule.historyTicks,
      decide: (input) => rule.decide(input),
      feedback: (o) => {
        outcomes.push(o);
        if (fail) throw new Error('model store full');
      },
    };
  }

  it('hands every verdict to the strategy that proposed the change, with the snapshots around it', () => {
    const outcomes: StrategyFeedback[] = [];
    const w = new World(helps, [listening('learner', outcomes)]);
    const ds = w.run(12);
    const verdicts = ds.filter((d) => d.verdict !== undefined);
    expect(verdicts.map((d) => d.kind)).toEqual(['kept', 'kept']);
    expect(outcomes.map((o) => [o.decisionId, o.verdict.verdict])).toEqual(verdicts.map((d) => [d.verdict!.decisionId, 'kept']));
    const first = ds.find((d) => d.kind === 'proposed')!;
    expect(outcomes[0]!.nudge).toBe(first.nudge);
    expect(outcomes[0]!.snapshotBefore!.time).toBe(first.time);
    expect(outcomes[0]!.snapshotAfter!.time).toBe(verdicts[0]!.time);
  });

  it('reports a revert verdict too, and none for refused nudges or other strategies', () => {
    const mine: StrategyFeedback[] = [];
    const theirs: StrategyFeedback[] = [];
    const w = new World(useless, [listening('first', mine), listening('second', theirs)]);
    const ds = w.run(12);
    expect(ds.some((d) => d.source === 'second' && d.kind === 'refused')).toBe(true);
    expect(mine.map((o) => o.verdict.verdict)).toEqual(['revert']);
    expect(theirs).toEqual([]);
  });

  it('still hands out the revert when feedback throws, and reports the error', () => {
    const outcomes: StrategyFeedback[] = [];
    const errors: string[] = [];
    const w = new World(useless, [listening('learner', outcomes, true)], (name, e) => errors.push(`${name}: ${String(e)}`));
    const ds = w.run(8);
    expect(ds.filter((d) => d.kind === 'revert')).toHaveLength(1);
    expect(w.weight).toBe(100);
    expect(errors).toEqual(['learner: Error: model store full']);
  });
});

describe('closed-loop baseline', () => {
  it('judges a change against the ticks its objective names, not calm ticks before the trouble began', async () => {
    const { ClosedLoop } = await import('./closed-loop.js');
    const { Guardrails } = await import('./guardrails.js');
    const { DecisionEngine } = await import('./engine.js');
    const cfg = { cooldownMs: 0, maxChangesPerMinute: 100, denyCgroups: [] };
    const loop = new ClosedLoop({ windowTicks: 5, margin: 0.1, penaltyMs: 60_000, significance: 0.05, warmupTicks: 0 });
    let fire = false;
    const strategy = {
      name: 'r',
      decide: () =>
        fire
          ? [{ kind: 'set' as const, action: 'cpu_weight', target: 'b', desired: { weight: 50 }, reason: 'hot', rule: 'r', evidence: {}, objective: { metric: 'runqlat.p99', better: 'lower' as const, targets: ['a'], baselineTicks: 2 } }]
          : [],
    };
    const engine = new DecisionEngine({ strategies: [strategy], guardrails: new Guardrails(cfg, ACTION_BOUNDS, { penalties: loop }), closedLoop: loop });
    const snap = (t: number, p99: number) => ({ time: t, windowMs: 1000, targets: { a: { name: 'a', role: 'protect' as const, runqlat: runqlatWindow({ count: 100, p50: 1, p90: 1, p99, mean: 1, p99Ewma: p99, waitUs: 1, oncpuUs: 1 }) }, b: { name: 'b', role: 'noisy' as const } } });
    const input = (t: number, p99: number) => ({ now: t, snapshot: snap(t, p99), targets: [{ name: 'a', role: 'protect' as const }, { name: 'b', role: 'noisy' as const }], current: () => ({ weight: 100 }), changed: () => false });
    // Calm, calm, calm, then contention: the rule fires on the second hot tick.
    let t = 0;
    for (const p of [100, 100, 100, 8000]) engine.tick(input((t += 1000), p));
    fire = true;
    const [d] = engine.tick(input((t += 1000), 8000));
    fire = false;
    engine.applied(d.id, { weight: 100 }, { weight: 50 }, t);
    // After the change the victim is at 4000: twice better than the hot streak, far worse than the calm ticks.
    const verdicts = [];
    for (let i = 0; i < 5; i++) verdicts.push(...engine.tick(input((t += 1000), 4000)));
    expect(verdicts.find((v) => v.kind === 'kept' || v.kind === 'revert')?.kind).toBe('kept');
  });
});

describe('DecisionEngine holds', () => {
  /** Reports a hold on batch while `holding` says so, and throws while `throwing` does. */
  class Holder implements Strategy {
    readonly name = 'holder';
    holding = (_now: number): string | undefined => undefined;
    throwing = false;
    decide(input: DecideInput): StrategyNudge[] {
      if (this.throwing) throw new Error('broken');
      const cause = this.holding(input.now);
      if (cause !== undefined) {
        input.hold?.({ action: 'cpu_weight', target: 'batch', rule: 'holder-rule', cause, reason: `${cause} at ${input.now}` });
      }
      return [];
    }
  }

  it('keeps what strategies hold with since when, and tells of each change of state once', () => {
    const holder = new Holder();
    const world = new World(useless, [holder], () => {});
    const changes: string[] = [];
    const step = (from: number, n: number): void => {
      for (let i = from; i < from + n; i++) {
        world.run(1, i);
        for (const c of world.engine.holdChanges) changes.push(`${c.kind} ${c.hold.cause} since ${c.hold.since}`);
      }
    };
    step(0, 2);
    expect(world.engine.holds()).toEqual([]);
    expect(world.engine.heldCount).toBe(0);
    holder.holding = (now) => (now < 6_000 ? 'busy' : 'not-calm');
    step(2, 2);
    expect(world.engine.holds()).toEqual([
      { action: 'cpu_weight', target: 'batch', rule: 'holder-rule', cause: 'busy', reason: 'busy at 4000', since: 3_000, time: 4_000 },
    ]);
    // A strategy that throws said nothing: its holds stand as they were.
    holder.throwing = true;
    step(4, 1);
    expect(world.engine.holds().map((h) => h.time)).toEqual([4_000]);
    holder.throwing = false;
    step(5, 3);
    holder.holding = () => undefined;
    step(8, 2);
    expect(changes).toEqual(['held busy since 3000', 'held not-calm since 6000', 'released not-calm since 6000']);
    expect(world.engine.holds()).toEqual([]);
    expect(world.engine.heldCount).toBe(0);
  });
});
