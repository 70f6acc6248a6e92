import { describe, expect, it } from 'vitest';
import type { NoisyNeighborPolicy } from '../../config/types.js';
import type { TargetSignals, TickSnapshot } from '../../core/types.js';
import type { StrategyHold } from '../holds.js';
import type { DecideInput, StrategyNudge, StrategyTarget } from '../strategy.js';
import { CPU_WEIGHT_ACTION, NoisyNeighborRule, stepWeight } from './noisy-neighbor.js';
import { NOISY_NEIGHBOR_POLICY } from '../../testing/nudges.js';
import { runqlatWindow } from '../../signals/windows.js';

const policy = NOISY_NEIGHBOR_POLICY;

const targets: StrategyTarget[] = [
  { name: 'web', role: 'protect' },
  { name: 'batch', role: 'noisy' },
  { name: 'backup', role: 'noisy' },
];

/** p99 in µs for a protect target, or null for a tick in which it had no run-queue data. */
type P99 = number | null;
const HOT = 7_200;
const BAND = 3_500; // between calm (3 ms) and hot (4 ms)
const CALM = 1_000;

function runqlat(p99: number, oncpuUs = 0): NonNullable<TargetSignals['runqlat']> {
  return runqlatWindow({ count: 100, p50: p99 / 4, p90: p99 / 2, p99, mean: p99 / 3, p99Ewma: p99, waitUs: 10_000, oncpuUs });
}

function snapshot(i: number, protect: Record<string, P99>, oncpu: Record<string, number> = { batch: 1_900_000, backup: 300_000 }): TickSnapshot {
  const t: Record<string, TargetSignals> = {};
  for (const [name, p99] of Object.entries(protect)) {
    t[name] = p99 === null ? { name, role: 'protect', runqlat: { ...runqlat(0), count: 0 } } : { name, role: 'protect', runqlat: runqlat(p99) };
  }
  for (const [name, us] of Object.entries(oncpu)) t[name] = { name, role: 'noisy', runqlat: runqlat(200, us) };
  return { time: 1_000 * (i + 1), windowMs: 1_000, targets: t };
}

interface Knobs {
  weights?: Record<string, number | undefined>;
  /** cpu.idle per target; a target missing here reports no idle knob (a kernel without cpu.idle). */
  idle?: Record<string, number>;
  /** Targets the guardrails always refuse. */
  denied?: string[];
  changed?: string[];
  originals?: Record<string, number>;
}

function input(snap: TickSnapshot, history: TickSnapshot[], tgts: StrategyTarget[], k: Knobs = {}): DecideInput {
  const weights = k.weights ?? { batch: 100, backup: 100 };
  return {
    now: snap.time,
    snapshot: snap,
    history,
    targets: tgts,
    current: (t, a) => {
      const w = a === CPU_WEIGHT_ACTION ? weights[t] : undefined;
      if (w === undefined) return undefined;
      const idle = k.idle?.[t];
      const values: Record<string, number> = { weight: w };
      if (idle !== undefined) values.idle = idle;
      return values;
    },
    changed: (t) => (k.changed ?? []).includes(t),
    original: (t) => (k.originals?.[t] !== undefined ? { weight: k.originals[t]! } : undefined),
    mayChange: (t) => !(k.denied ?? []).includes(t),
  };
}

/** The noisy targets' on-CPU µs in tick i: by default both busy (batch 1.9 CPU, backup 0.3). */
type OnCpu = (i: number) => Record<string, number>;
/** Both neighbours nearly idle: 0.06 and 0.01 CPU with their 10 ms of waiting, below release_below_cpus (0.1). */
const QUIET: OnCpu = () => ({ batch: 50_000, backup: 0 });

/** Feeds the ticks in order and returns the nudges of the last one. */
function lastTickOf(seq: P99[], k: Knobs = {}, p: NoisyNeighborPolicy = policy, tgts = targets, oncpu?: OnCpu): StrategyNudge[] {
  const rule = new NoisyNeighborRule(p);
  const snaps = seq.map((v, i) => snapshot(i, { web: v }, oncpu?.(i)));
  const history = snaps.slice(0, -1).slice(-rule.historyTicks).map((h) => rule.recall(h));
  return rule.decide(input(snaps.at(-1)!, history, tgts, k));
}

const lastTick = lastTickOf;

/** Like lastTickOf, with the holds the last tick reported beside its nudges. */
function holdsOf(seq: P99[], k: Knobs = {}, p: NoisyNeighborPolicy = policy, oncpu?: OnCpu): { nudges: StrategyNudge[]; holds: StrategyHold[] } {
  const rule = new NoisyNeighborRule(p);
  const snaps = seq.map((v, i) => snapshot(i, { web: v }, oncpu?.(i)));
  const history = snaps.slice(0, -1).slice(-rule.historyTicks).map((h) => rule.recall(h));
  const holds: StrategyHold[] = [];
  const nudges = rule.decide({ ...input(snaps.at(-1)!, history, targets, k), hold: (h) => holds.push(h) });
  return { nudges, holds };
}

describe('NoisyNeighborRule trigger', () => {
  it.each<[string, P99[], boolean]>([
    ['one hot tick', [HOT], false],
    ['two hot ticks', [CALM, HOT, HOT], false],
    ['three hot ticks', [HOT, HOT, HOT], true],
    ['still hot after more ticks', [HOT, HOT, HOT, HOT, HOT, HOT], true],
    ['streak broken by a band tick', [HOT, HOT, BAND, HOT, HOT], false],
    ['streak broken by a calm tick', [HOT, CALM, HOT, HOT], false],
    ['streak broken by a tick without data', [HOT, HOT, null, HOT, HOT], false],
    ['exactly at the threshold is not hot', [4_000, 4_000, 4_000], false],
    ['three hot ticks after a gap without data', [null, HOT, HOT, HOT], true],
  ])('%s → step: %s', (_name, seq, steps) => {
    const nudges = lastTick(seq);
    expect(nudges.length > 0).toBe(steps);
    if (steps) expect(nudges[0]).toMatchObject({ kind: 'set', action: 'cpu_weight', target: 'batch', desired: { weight: 75 } });
  });

  it('any protect target being hot triggers, naming the worst', () => {
    const rule = new NoisyNeighborRule(policy);
    const tgts: StrategyTarget[] = [{ name: 'api', role: 'protect' }, ...targets];
    const snaps = [0, 1, 2].map((i) => snapshot(i, { web: HOT, api: 5_000 }));
    const [n] = rule.decide(input(snaps[2]!, snaps.slice(0, 2).map((h) => rule.recall(h)), tgts));
    expect(n!.reason).toMatch(/^web run-queue p99 7\.2 ms > 4 ms for 3 ticks \(also hot: api\);/);
    expect(n!.objective).toEqual({ targets: ['api', 'web'], metric: 'runqlat.p99', better: 'lower', unit: 'us', baselineTicks: 3 });
  });

  it('says why in words with the numbers, and keeps the numbers as evidence', () => {
    const [n] = lastTick([HOT, HOT, HOT]);
    expect(n!.reason).toBe(
      'web run-queue p99 7.2 ms > 4 ms for 3 ticks; batch is the busiest noisy target (1.9 s on-CPU/s); cpu.weight 100 → 75',
    );
    expect(n!.rule).toBe('noisy-neighbor');
    expect(n!.evidence).toMatchObject({
      p99Us: 7_200,
      thresholdUs: 4_000,
      hotTicks: 3,
      oncpuUsPerS: 1_900_000,
      fromWeight: 100,
      toWeight: 75,
    });
  });

  it('does nothing when disabled', () => {
    expect(lastTick([HOT, HOT, HOT], {}, { ...policy, enabled: false })).toEqual([]);
  });
});

describe('NoisyNeighborRule choice of noisy targets', () => {
  const hot = [0, 1, 2].map((i) => ({ web: HOT }) as Record<string, P99>);

  function decide(oncpu: Record<string, number>, k: Knobs = {}, p = policy): StrategyNudge[] {
    const rule = new NoisyNeighborRule(p);
    const snaps = hot.map((w, i) => snapshot(i, w, oncpu));
    const tgts: StrategyTarget[] = [
      { name: 'web', role: 'protect' },
      ...Object.keys(oncpu).map((name) => ({ name, role: 'noisy' as const })),
    ];
    return rule.decide(input(snaps[2]!, snaps.slice(0, 2).map((h) => rule.recall(h)), tgts, k));
  }

  it.each<[string, Record<string, number>, Knobs, number, string[]]>([
    ['busiest wins', { batch: 1_900_000, backup: 300_000 }, {}, 1, ['batch']],
    ['busiest wins regardless of order', { backup: 300_000, batch: 1_900_000 }, {}, 1, ['batch']],
    ['two per step, busiest first', { backup: 300_000, batch: 1_900_000, idle: 1_000 }, {}, 2, ['batch', 'backup']],
    ['ties broken by name', { b: 500_000, a: 500_000 }, {}, 1, ['a']],
    ['a target that did not run is not lowered', { batch: 0 }, {}, 1, []],
    ['a target at the floor is skipped for the next busiest', { batch: 1_900_000, backup: 300_000 }, { weights: { batch: 10, backup: 100 } }, 1, ['backup']],
    ['a target with unknown weight is skipped', { batch: 1_900_000, backup: 300_000 }, { weights: { backup: 100 } }, 1, ['backup']],
    ['a denied busiest target is skipped for the busiest allowed one', { batch: 1_900_000, backup: 300_000 }, { denied: ['batch'] }, 1, ['backup']],
  ])('%s', (_name, oncpu, k, maxNoisy, expected) => {
    const weights = k.weights ?? Object.fromEntries(Object.keys(oncpu).map((n) => [n, 100]));
    const nudges = decide(oncpu, { ...k, weights }, { ...policy, maxNoisyPerStep: maxNoisy });
    expect(nudges.map((n) => n.target)).toEqual(expected);
  });

  it('names the rank of a second target', () => {
    const nudges = decide({ batch: 1_900_000, backup: 300_000 }, { weights: { batch: 100, backup: 100 } }, { ...policy, maxNoisyPerStep: 2 });
    expect(nudges[1]!.reason).toContain('backup is the 2nd busiest noisy target (300 ms on-CPU/s)');
  });

  it.each<[number, number, number, number]>([
    // current, stepFraction, minWeight, expected
    [100, 0.25, 10, 75],
    [75, 0.25, 10, 56],
    [12, 0.25, 10, 10],
    [11, 0.5, 10, 10],
    [2, 0.25, 1, 1], // rounding alone would stay at 2
    [10_000, 0.1, 1, 9_000],
  ])('stepWeight(%i, step %f, floor %i) = %i', (current, stepFraction, minWeight, expected) => {
    expect(stepWeight(current, { stepFraction, minWeight })).toBe(expected);
  });

  it('never goes below the floor while stepping repeatedly', () => {
    let w = 100;
    for (let i = 0; i < 50; i++) w = stepWeight(w, policy);
    expect(w).toBe(policy.minWeight);
  });
});

describe('NoisyNeighborRule restore and hysteresis', () => {
  const held: Knobs = { weights: { batch: 42, backup: 100 }, changed: ['batch'], originals: { batch: 100 } };
  /** The neighbour has gone quiet, so the protect targets' calm alone decides. */
  const lastTick = (seq: P99[], k: Knobs = {}, p: NoisyNeighborPolicy = policy) => lastTickOf(seq, k, p, targets, QUIET);

  it.each<[string, P99[], boolean]>([
    ['four calm ticks are not enough', [CALM, CALM, CALM, CALM], false],
    ['five calm ticks restore', [CALM, CALM, CALM, CALM, CALM], true],
    ['a band tick breaks calm', [CALM, CALM, BAND, CALM, CALM], false],
    ['a hot tick breaks calm', [CALM, HOT, CALM, CALM, CALM], false],
    ['ticks without data do not break calm', [CALM, null, CALM, null, CALM], true],
    ['a protect target idle throughout counts as calm', [null, null, null, null, null], true],
    ['the band holds forever', Array<P99>(20).fill(BAND), false],
    ['the band after a step neither steps nor restores', [HOT, HOT, HOT, BAND, BAND, BAND, BAND, BAND, BAND], false],
  ])('%s → restore: %s', (_name, seq, restores) => {
    const nudges = lastTick(seq, held);
    expect(nudges.length > 0).toBe(restores);
    if (restores) {
      expect(nudges).toHaveLength(1);
      expect(nudges[0]).toMatchObject({ kind: 'restore', target: 'batch', desired: { weight: 100 } });
      expect(nudges[0]!.reason).toMatch(/^calm: /);
    }
  });

  it('explains the restore with the numbers', () => {
    const [n] = lastTick([CALM, CALM, CALM, CALM, CALM], held);
    expect(n!.reason).toBe(
      "calm: every protect target's run-queue p99 < 3 ms (4 ms × 0.75) for 5 ticks (worst now web 1 ms) and batch wanted less than 0.1 CPU for as long (0.06 CPU now); restoring batch cpu.weight 42 → 100",
    );
    expect(n!.evidence).toMatchObject({ calmBelowUs: 3_000, calmTicks: 5, worstP99Us: 1_000, fromWeight: 42, toWeight: 100, releaseBelowCpus: 0.1, demandCpus: 0.06 });
  });

  it('holds a step while the neighbour still wants the CPU: the calm is the step working', () => {
    const calm = Array<P99>(20).fill(CALM);
    expect(lastTickOf(calm, held)).toEqual([]);
    // Quiet for four ticks of five: still held; for five: given back.
    const quietFrom = (first: number): OnCpu => (i) => (i >= first ? QUIET(i) : { batch: 1_900_000, backup: 300_000 });
    expect(lastTickOf(calm, held, policy, targets, quietFrom(16))).toEqual([]);
    expect(lastTickOf(calm, held, policy, targets, quietFrom(15))).toMatchObject([{ target: 'batch', kind: 'restore', desired: { weight: 100 } }]);
  });

  it('gives back the neighbour that went quiet and holds the one still busy', () => {
    const both: Knobs = { weights: { batch: 42, backup: 50 }, changed: ['batch', 'backup'], originals: { batch: 100, backup: 100 } };
    const nudges = lastTickOf(Array<P99>(5).fill(CALM), both, policy, targets, () => ({ batch: 1_900_000, backup: 0 }));
    expect(nudges).toMatchObject([{ target: 'backup', kind: 'restore', desired: { weight: 100 } }]);
  });

  it('restores on calm alone with release_below_cpus above the CPU count, and with no protect target', () => {
    expect(lastTickOf(Array<P99>(5).fill(CALM), held, { ...policy, releaseBelowCpus: 1024 })).toMatchObject([{ target: 'batch', desired: { weight: 100 } }]);
    const noProtect = targets.filter((t) => t.role === 'noisy');
    const [n] = lastTickOf([null], held, policy, noProtect);
    expect(n).toMatchObject({ target: 'batch', kind: 'restore', desired: { weight: 100 } });
    expect(n!.reason).toBe('calm: no protect target configured; restoring batch cpu.weight 42 → 100');
  });

  it('restores only what is held', () => {
    expect(lastTick([CALM, CALM, CALM, CALM, CALM], { weights: { batch: 100, backup: 100 } })).toEqual([]);
  });

  it('asks the action to restore its journaled original when the original is not known here', () => {
    const [n] = lastTick([CALM, CALM, CALM, CALM, CALM], { weights: { batch: 42 }, changed: ['batch'] });
    expect(n).toMatchObject({ kind: 'restore', target: 'batch' });
    expect(n!.desired).toBeUndefined();
    expect(n!.reason).toContain('cpu.weight 42 → its journaled original');
  });

  it('keeps stepping while still hot even when a change is held', () => {
    const nudges = lastTick([HOT, HOT, HOT, HOT], held);
    expect(nudges).toMatchObject([{ target: 'batch', desired: { weight: 32 } }]);
  });
});

describe('NoisyNeighborRule below the weight floor: cpu.idle', () => {
  const floor = policy.minWeight;
  const atFloor: Knobs = { weights: { batch: floor, backup: floor }, idle: { batch: 0, backup: 0 }, changed: ['batch', 'backup'] };

  it('sets cpu.idle on the busiest noisy target once every busy one is at min_weight', () => {
    const nudges = lastTick([HOT, HOT, HOT], atFloor);
    expect(nudges).toMatchObject([{ action: 'cpu_weight', target: 'batch', desired: { idle: 1 } }]);
    expect(nudges[0]!.reason).toBe(
      `web run-queue p99 7.2 ms > 4 ms for 3 ticks; batch is the busiest noisy target (1.9 s on-CPU/s) and at the weight floor (${floor}, min_weight ${floor}); cpu.idle 0 → 1`,
    );
    expect(nudges[0]!.evidence).toMatchObject({ fromWeight: floor, fromIdle: 0, toIdle: 1 });
  });

  it('moves to the next busiest once the busiest is idle', () => {
    const nudges = lastTick([HOT, HOT, HOT], { ...atFloor, idle: { batch: 1, backup: 0 } });
    expect(nudges).toMatchObject([{ target: 'backup', desired: { idle: 1 } }]);
  });

  it.each<[string, Knobs, NoisyNeighborPolicy]>([
    ['idle_at_floor false', atFloor, { ...policy, idleAtFloor: false }],
    ['a kernel without cpu.idle', { ...atFloor, idle: {} }, policy],
    ['every busy target already idle', { ...atFloor, idle: { batch: 1, backup: 1 } }, policy],
    ['the guardrails refuse both', { ...atFloor, denied: ['batch', 'backup'] }, policy],
  ])('does nothing with %s', (_name, k, p) => {
    expect(lastTick([HOT, HOT, HOT], k, p)).toEqual([]);
  });

  it('steps a weight before any idle: a target above the floor goes first', () => {
    const nudges = lastTick([HOT, HOT, HOT], { ...atFloor, weights: { batch: floor, backup: 100 } });
    expect(nudges).toMatchObject([{ target: 'backup', desired: { weight: 75 } }]);
  });

  it('gives an idle target back with a pure restore: the action undoes cpu.idle, then the weight', () => {
    const [n] = lastTick([CALM, CALM, CALM, CALM, CALM], { ...atFloor, idle: { batch: 1, backup: 0 }, changed: ['batch'], originals: { batch: 100 } }, policy, targets, QUIET);
    expect(n).toMatchObject({ kind: 'restore', target: 'batch' });
    expect(n!.desired).toBeUndefined();
    expect(n!.reason).toContain('restoring batch cpu.idle 1 and cpu.weight → their journaled originals');
    expect(n!.evidence).toMatchObject({ fromWeight: floor, fromIdle: 1 });
  });
});

describe('NoisyNeighborRule on the share of time waiting', () => {
  const p: NoisyNeighborPolicy = { ...policy, waitShareThreshold: 0.1 };
  /** A protect target whose waits are short (p99 1 ms) but which spent `share` of its runnable time waiting. */
  const waiting = (i: number, share: number): TickSnapshot => {
    const s = snapshot(i, { web: CALM }, QUIET(i));
    s.targets.web!.runqlat = { ...s.targets.web!.runqlat!, oncpuRatio: 1 - share };
    return s;
  };
  const run = (shares: number[], k: Knobs = {}, pol = p): StrategyNudge[] => {
    const rule = new NoisyNeighborRule(pol);
    const snaps = shares.map((x, i) => waiting(i, x));
    return rule.decide(input(snaps.at(-1)!, snaps.slice(0, -1).map((h) => rule.recall(h)), targets, k));
  };

  it('steps when a protect target waits more than the share for trigger_ticks, though its p99 is low, and is judged by its time spent waiting', () => {
    const [n] = run([0.3, 0.3, 0.3]);
    expect(n).toMatchObject({ target: 'batch', desired: { weight: 75 } });
    expect(n!.reason).toMatch(/^web waited for a CPU 30% of its runnable time > 10% \(run-queue p99 1(\.0)? ms\) for 3 ticks;/);
    expect(n!.evidence).toMatchObject({ waitShare: expect.closeTo(0.3, 9), waitShareThreshold: 0.1 });
    expect(n!.objective).toEqual({ targets: ['web'], metric: 'runqlat.waitUs', better: 'lower', unit: 'us', baselineTicks: 3 });
    expect(run([0.05, 0.3, 0.3])).toEqual([]);
  });

  it('is off at the default of 1', () => {
    expect(run([0.9, 0.9, 0.9], {}, policy)).toEqual([]);
  });

  it('restores only once the share has stayed below threshold × calm_fraction for calm_ticks', () => {
    const held: Knobs = { changed: ['batch'], weights: { batch: 50, backup: 100 }, originals: { batch: 100 } };
    // 8%: below the hot line (10%), above calm (5%): hold.
    expect(run(Array(10).fill(0.08), held)).toEqual([]);
    const [n] = run(Array(10).fill(0.01), held);
    expect(n).toMatchObject({ kind: 'restore', target: 'batch', desired: { weight: 100 } });
  });
});

describe('NoisyNeighborRule reports what it holds, and why', () => {
  const held: Knobs = { weights: { batch: 42, backup: 100 }, changed: ['batch'], originals: { batch: 100 } };
  const calm = Array<P99>(20).fill(CALM);

  it('while the protect targets are calm and the neighbour still wants the CPU', () => {
    const { nudges, holds } = holdsOf(calm, held);
    expect(nudges).toEqual([]);
    expect(holds).toEqual([
      {
        action: CPU_WEIGHT_ACTION,
        target: 'batch',
        rule: 'noisy-neighbor',
        cause: 'noisy-busy',
        reason: 'protect targets calm for 5 ticks (calm_ticks), but batch still wants 1.91 CPU ≥ release_below_cpus 0.1',
        evidence: { demandCpus: 1.91, releaseBelowCpus: 0.1, quietTicks: 0, calmTicks: 5 },
      },
    ]);
  });

  it('while the neighbour has been quiet for fewer than calm_ticks', () => {
    const quietFrom16: OnCpu = (i) => (i >= 16 ? QUIET(i) : { batch: 1_900_000, backup: 300_000 });
    const { holds } = holdsOf(calm, held, policy, quietFrom16);
    expect(holds.map((h) => [h.cause, h.reason])).toEqual([
      ['noisy-busy', 'protect targets calm for 5 ticks (calm_ticks), but batch has wanted less than release_below_cpus 0.1 CPU for only 4 of 5 ticks (0.06 CPU now)'],
    ]);
  });

  it('while a protect target has not been calm for calm_ticks yet, naming how far it is', () => {
    const { nudges, holds } = holdsOf([HOT, HOT, HOT, BAND, CALM, CALM], held);
    expect(nudges).toEqual([]);
    expect(holds).toMatchObject([
      {
        target: 'batch',
        cause: 'protect-not-calm',
        reason: 'protect target web calm for 2 of the 5 ticks a restore needs (calm_ticks; calm is run-queue p99 < 3 ms; now p99 1 ms)',
        evidence: { calmTicks: 2, calmTicksNeeded: 5, calmBelowUs: 3_000, p99Us: 1_000 },
      },
    ]);
    const band = holdsOf([HOT, HOT, HOT, BAND], held).holds[0]!;
    expect(band.reason).toBe('protect target web calm for 0 of the 5 ticks a restore needs (calm_ticks; calm is run-queue p99 < 3 ms; now p99 3.5 ms)');
  });

  it('names the share of waiting when it counts toward calm', () => {
    const p = { ...policy, waitShareThreshold: 0.5 };
    const { holds } = holdsOf([HOT, HOT, HOT, BAND], held, p);
    expect(holds[0]!.reason).toMatch(/calm is run-queue p99 < 3 ms, waits < 37\.5%; now p99 3\.5 ms, waited 0%\)$/);
  });

  it('reports nothing when nothing is changed, or when it restores', () => {
    expect(holdsOf(calm, { weights: { batch: 100, backup: 100 } }).holds).toEqual([]);
    expect(holdsOf([HOT, HOT, HOT, BAND], { weights: { batch: 100, backup: 100 } }).holds).toEqual([]);
    const restored = holdsOf(Array<P99>(5).fill(CALM), held, policy, QUIET);
    expect(restored.nudges).toMatchObject([{ kind: 'restore', target: 'batch' }]);
    expect(restored.holds).toEqual([]);
  });

  it('keeps holding under the same cause while hot, so an incident swinging between hot and the band is one hold', () => {
    const hot = holdsOf([HOT, HOT, HOT, HOT], held);
    expect(hot.nudges).toMatchObject([{ kind: 'set', target: 'batch' }]);
    expect(hot.holds).toMatchObject([{ target: 'batch', cause: 'protect-not-calm', evidence: { calmTicks: 0, p99Us: HOT } }]);
    const band = holdsOf([HOT, HOT, HOT, HOT, BAND], held);
    expect(band.holds.map((h) => [h.target, h.cause])).toEqual([['batch', 'protect-not-calm']]);
  });

  it('holds one neighbour and restores the other in the same tick', () => {
    const both: Knobs = { weights: { batch: 42, backup: 50 }, changed: ['batch', 'backup'], originals: { batch: 100, backup: 100 } };
    const { nudges, holds } = holdsOf(Array<P99>(5).fill(CALM), both, policy, () => ({ batch: 1_900_000, backup: 0 }));
    expect(nudges).toMatchObject([{ target: 'backup', kind: 'restore' }]);
    expect(holds.map((h) => h.target)).toEqual(['batch']);
  });

  it('decides the same with or without anyone listening for holds', () => {
    const k: Knobs = { weights: { batch: 42, backup: 50 }, changed: ['batch', 'backup'], originals: { batch: 100, backup: 100 } };
    for (const seq of [calm, [HOT, HOT, HOT, BAND], Array<P99>(5).fill(CALM)]) {
      expect(holdsOf(seq, k).nudges).toEqual(lastTickOf(seq, k));
    }
  });
});
