import { describe, expect, it } from 'vitest';
import { isTunerError } from '../core/errors.js';
import type { TargetSignals, TickSnapshot } from '../core/types.js';
import { ClosedLoop, improvementOf, median, metricValue, type Verdict } from './closed-loop.js';
import type { StrategyNudge } from './strategy.js';
import { CPU_WEIGHT_NUDGE } from '../testing/nudges.js';
import { runqlatWindow } from '../signals/windows.js';

const nudge = CPU_WEIGHT_NUDGE;

function snap(time: number, p99: Record<string, number | null>): TickSnapshot {
  const targets: Record<string, TargetSignals> = {};
  for (const [name, v] of Object.entries(p99)) {
    targets[name] = {
      name,
      role: name === 'batch' ? 'noisy' : 'protect',
      runqlat: runqlatWindow({ count: v === null ? 0 : 50, p50: 0, p90: 0, p99: v ?? 0, mean: 0, p99Ewma: 0, waitUs: 0, oncpuUs: 0 }),
    };
  }
  return { time, windowMs: 1_000, targets };
}

const opts = { windowTicks: 3, margin: 0.1, penaltyMs: 600_000, significance: 0.05, warmupTicks: 0 };

/** Tracks at t=0 with the baseline, feeds `after` one tick a second (the window after), returns every verdict. */
function judge(baseline: number[], after: (number | null)[], loop = new ClosedLoop({ ...opts, windowTicks: after.length })): Verdict[] {
  loop.track('d-1', nudge, baseline, 0);
  return after.flatMap((v, i) => loop.observe(snap(1_000 * (i + 1), { web: v }), 1_000 * (i + 1)));
}

describe('ClosedLoop verdicts', () => {
  it.each<[string, number[], (number | null)[], 'kept' | 'revert', number | null]>([
    ['improved by half', [8_000, 8_000, 8_000], [4_000, 4_000, 4_000], 'kept', 0.5],
    ['improved by exactly the margin', [10_000, 10_000, 10_000], [9_000, 9_000, 9_000], 'kept', 0.1],
    ['improved by less than the margin', [10_000, 10_000, 10_000], [9_500, 9_500, 9_500], 'revert', 0.05],
    ['flat', [8_000, 8_000, 8_000], [8_000, 8_000, 8_000], 'revert', 0],
    ['worse', [8_000, 8_000, 8_000], [12_000, 12_000, 12_000], 'revert', -0.5],
    ['one spike after is enough doubt at 3 ticks a side (rank test)', [8_000, 8_000, 8_000], [4_000, 90_000, 4_000], 'revert', 0.5],
    ['one spike after does not spoil a clear improvement at 6 ticks a side', [8_000, 8_100, 7_900, 8_200, 8_000, 7_800], [4_000, 90_000, 4_000, 4_100, 3_900, 4_000], 'kept', 0.5],
    ['an improvement inside the noise is not shown', [8_000, 5_000, 9_000], [6_000, 7_500, 5_500], 'revert', 0.25],
    ['one dip after does not fake an improvement (median)', [8_000, 8_000, 8_000], [8_000, 100, 8_000], 'revert', 0],
    ['ticks without data are left out, and two a side cannot show anything', [8_000, 8_000], [null, 4_000, 4_000], 'revert', 0.5],
    ['ticks without data are left out of the test', [8_000, 8_000, 8_000], [null, 4_000, 4_000, 4_000], 'kept', 0.5],
    ['no data after is no evidence', [8_000, 8_000], [null, null, null], 'revert', null],
    ['no baseline is no evidence', [], [4_000, 4_000, 4_000], 'revert', null],
  ])('%s → %s', (_name, baseline, after, verdict, improvement) => {
    const vs = judge(baseline, after);
    expect(vs).toHaveLength(1);
    expect(vs[0]).toMatchObject({ decisionId: 'd-1', verdict, rule: 'noisy-neighbor', target: 'batch', metric: 'runqlat.p99' });
    if (improvement === null) expect(vs[0]!.improvement).toBeNull();
    else expect(vs[0]!.improvement).toBeCloseTo(improvement, 10);
  });

  it('waits for the whole window after, and counts only snapshots after the change', () => {
    const loop = new ClosedLoop(opts);
    loop.track('d-1', nudge, [8_000, 8_000, 8_000], 5_000);
    expect(loop.observe(snap(5_000, { web: 1 }), 5_000)).toEqual([]); // the tick the change was made in
    expect(loop.observe(snap(6_000, { web: 4_000 }), 6_000)).toEqual([]);
    expect(loop.observe(snap(7_000, { web: 4_000 }), 7_000)).toEqual([]);
    expect(loop.evaluating('cpu_weight', 'batch')).toBe('d-1');
    const [v] = loop.observe(snap(8_000, { web: 4_000 }), 8_000);
    expect(v).toMatchObject({ verdict: 'kept', before: 8_000, after: 4_000, samples: 3, samplesBefore: 3, pValue: 0.05, confidence: 0.9 });
    expect(loop.evaluating('cpu_weight', 'batch')).toBeUndefined();
  });
});

describe('ClosedLoop uncertainty', () => {
  it('reports the improvement with its confidence bounds, p-value and samples on each side', () => {
    const loop = new ClosedLoop({ ...opts, windowTicks: 5 });
    loop.track('d-1', nudge, [10_000, 9_000, 11_000, 10_500, 9_500], 0);
    const after = [6_000, 5_500, 6_500, 7_000, 5_000];
    const [v] = after.flatMap((x, i) => loop.observe(snap(1_000 * (i + 1), { web: x }), 1_000 * (i + 1)));
    expect(v).toMatchObject({ verdict: 'kept', before: 10_000, after: 6_000, samples: 5, samplesBefore: 5, confidence: 0.9 });
    expect(v!.improvement).toBeCloseTo(0.4, 10);
    expect(v!.pValue).toBeCloseTo(1 / 252, 10);
    // 5 against 5 at 5% one-sided: the 5th smallest and largest of the 25 pairwise differences, over 10 ms.
    expect(v!.low).toBeCloseTo(0.3, 10);
    expect(v!.high).toBeCloseTo(0.5, 10);
  });

  it('judges a higher-is-better objective in its own direction', () => {
    const loop = new ClosedLoop(opts);
    const higher: StrategyNudge = { ...nudge, objective: { metric: 'runqlat.p99', better: 'higher', targets: ['web'] } };
    loop.track('d-1', higher, [1_000, 1_000, 1_000], 0);
    const vs = [2_000, 2_000, 2_000].flatMap((x, i) => loop.observe(snap(1_000 * (i + 1), { web: x }), 1_000 * (i + 1)));
    expect(vs[0]).toMatchObject({ verdict: 'kept', improvement: 1, pValue: 0.05 });
  });
});

describe('ClosedLoop penalties', () => {
  it('penalises a reverted (rule, target) pair until penaltyMs after the verdict', () => {
    const loop = new ClosedLoop(opts);
    judge([8_000], [8_000, 8_000, 8_000], loop); // verdict at t=3000
    expect(loop.penalised('noisy-neighbor', 'batch', 3_000)).toBe(true);
    expect(loop.penalised('noisy-neighbor', 'batch', 602_999)).toBe(true);
    expect(loop.penaltyUntil('noisy-neighbor', 'batch', 3_000)).toBe(603_000);
    expect(loop.penalised('noisy-neighbor', 'batch', 603_000)).toBe(false);
    expect(loop.penalised('other-rule', 'batch', 3_000)).toBe(false);
    expect(loop.penalised('noisy-neighbor', 'backup', 3_000)).toBe(false);
  });

  it('does not penalise a kept change', () => {
    const loop = new ClosedLoop(opts);
    judge([8_000, 8_000, 8_000], [4_000, 4_000, 4_000], loop);
    expect(loop.penalised('noisy-neighbor', 'batch', 3_000)).toBe(false);
  });
});

describe('ClosedLoop bookkeeping', () => {
  it('forgets an evaluation without a verdict', () => {
    const loop = new ClosedLoop(opts);
    loop.track('d-1', nudge, [8_000], 0);
    expect(loop.forget('cpu_weight', 'batch')).toBe('d-1');
    expect([1, 2, 3].flatMap((i) => loop.observe(snap(i * 1_000, { web: 8_000 }), i * 1_000))).toEqual([]);
  });

  it('replaces an earlier evaluation of the same knob', () => {
    const loop = new ClosedLoop(opts);
    loop.track('d-1', nudge, [8_000], 0);
    loop.track('d-2', nudge, [8_000], 500);
    const vs = [1, 2, 3].flatMap((i) => loop.observe(snap(i * 1_000, { web: 4_000 }), i * 1_000));
    expect(vs.map((v) => v.decisionId)).toEqual(['d-2']);
  });

  it('refuses to track the same decision twice', () => {
    const loop = new ClosedLoop(opts);
    loop.track('d-1', nudge, [8_000], 0);
    expect(() => loop.track('d-1', { ...nudge, target: 'other' }, [8_000], 0)).toThrow(/already tracked/);
  });

  it.each([
    { windowTicks: 0, margin: 0.1, penaltyMs: 0, significance: 0.05, warmupTicks: 0 },
    { windowTicks: 1.5, margin: 0.1, penaltyMs: 0, significance: 0.05, warmupTicks: 0 },
    { windowTicks: 3, margin: -0.1, penaltyMs: 0, significance: 0.05, warmupTicks: 0 },
    { windowTicks: 3, margin: 0.1, penaltyMs: Number.NaN, significance: 0.05, warmupTicks: 0 },
    { windowTicks: 3, margin: 0.1, penaltyMs: 0, significance: 0, warmupTicks: 0 },
    { windowTicks: 3, margin: 0.1, penaltyMs: 0, significance: 0.5, warmupTicks: 0 },
    { windowTicks: 3, margin: 0.1, penaltyMs: 0, significance: 0.05, warmupTicks: -1 },
  ])('rejects invalid options %o', (o) => {
    let err: unknown;
    try {
      new ClosedLoop(o);
    } catch (e) {
      err = e;
    }
    expect(isTunerError(err, 'CONFIG_INVALID')).toBe(true);
  });
});

describe('metric helpers', () => {
  it('takes the worst value across the objective targets and skips targets without data', () => {
    const s = snap(0, { web: 3_000, api: 9_000, idle: null, batch: 50_000 });
    expect(metricValue(s, { targets: ['web', 'api'], metric: 'runqlat.p99', better: 'lower' })).toBe(9_000);
    expect(metricValue(s, { targets: ['web', 'api'], metric: 'runqlat.p99', better: 'higher' })).toBe(3_000);
    expect(metricValue(s, { targets: ['idle'], metric: 'runqlat.p99', better: 'lower' })).toBeUndefined();
    expect(metricValue(s, { targets: ['missing'], metric: 'runqlat.p99', better: 'lower' })).toBeUndefined();
    expect(metricValue(s, { targets: ['web'], metric: 'nosuch.signal', better: 'lower' })).toBeUndefined();
  });

  it('defaults to every protect target when the objective names none', () => {
    const s = snap(0, { web: 3_000, api: 9_000, batch: 50_000 });
    expect(metricValue(s, { metric: 'runqlat.p99', better: 'lower' })).toBe(9_000);
  });

  it.each<[number[], number]>([
    [[5], 5],
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
    [[1, 1, 1_000_000], 1],
  ])('median(%j) = %d', (xs, m) => {
    expect(median(xs)).toBe(m);
  });

  it.each<[number, number, 'lower' | 'higher', number]>([
    [100, 50, 'lower', 0.5],
    [100, 150, 'lower', -0.5],
    [100, 150, 'higher', 0.5],
    [0, 0, 'lower', 0],
    [0, 10, 'lower', -1],
  ])('improvementOf(%d, %d, %s) = %d', (before, after, better, expected) => {
    expect(improvementOf(before, after, better)).toBeCloseTo(expected, 10);
  });
});
