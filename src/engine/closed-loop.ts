/**
 * Judges every applied change by its effect. A nudge is an experiment: the per-tick values of its objective over the
 * window before it are compared with those over the next `windowTicks` ticks by a one-sided rank test
 * (Wilcoxon–Mann–Whitney). A change is kept only when the test shows it helped (p ≤ `significance`) and the median
 * improved by at least `margin`; anything else is reverted, and its (rule, target) pair is penalised for `penaltyMs`
 * so the same experiment is not repeated at once. Ranks and medians, because per-tick latencies are skewed and one
 * scheduling spike in a window of a few ticks would swing a mean, and with it the verdict.
 */
import { TunerError } from '../core/errors.js';
import { rankShift } from '../stats/rank-shift.js';
import { formatPercent } from './format.js';
import type { TickSnapshot } from '../core/types.js';
import { DEFAULT_OBJECTIVE, type Objective, type StrategyNudge } from './strategy.js';

export interface ClosedLoopOptions {
  /** Ticks in each window (before and after). */
  windowTicks: number;
  /** Minimum relative improvement to keep a change, e.g. 0.1 for 10%. */
  margin: number;
  /** How long a reverted (rule, target) pair stays refused, ms. */
  penaltyMs: number;
  /** Largest one-sided p-value at which a change counts as shown to help, e.g. 0.05. */
  significance: number;
  /** Ticks after start-up that never serve as a baseline (the signals' first, partial windows). */
  warmupTicks: number;
}

export interface Verdict {
  decisionId: string;
  verdict: 'kept' | 'revert';
  rule: string;
  action: string;
  target: string;
  metric: string;
  /** Median of the window before; null when no tick in it had data. */
  before: number | null;
  /** Median of the window after; null when no tick in it had data. */
  after: number | null;
  /** Relative change in the better direction (0.25 = 25% better, negative = worse); null when either side is null. */
  improvement: number | null;
  /** Ticks with data in the window after. */
  samples: number;
  /** Ticks with data in the window before. */
  samplesBefore: number;
  /** One-sided p-value of the rank test "after is better than before"; null when either side has no data. */
  pValue: number | null;
  /**
   * Confidence bounds of the improvement at `confidence` (Hodges–Lehmann shift over the median before, in the better
   * direction); null when unbounded (too few ticks), either side has no data, or the median before is 0.
   */
  low: number | null;
  high: number | null;
  /** Level of the interval [low, high]: 1 − 2 × significance. */
  confidence: number;
}

/** The penalty view guardrails consult; ClosedLoop implements it. */
export interface PenaltySource {
  penalised(rule: string, target: string, now: number): boolean;
}

interface Tracked {
  decisionId: string;
  nudge: StrategyNudge;
  objective: Objective;
  baseline: number[];
  since: number;
  ticks: number;
  values: number[];
}

export function objectiveOf(nudge: StrategyNudge): Objective {
  return nudge.objective ?? DEFAULT_OBJECTIVE;
}

/**
 * The objective's value in one snapshot: the worst across its targets (a change that helps one protect target and
 * hurts another has not helped), or undefined when none of them has data. A signal block whose `count` is 0 counts
 * as no data, since its percentiles are placeholders.
 */
export function metricValue(snapshot: TickSnapshot, objective: Objective): number | undefined {
  const names =
    objective.targets ?? Object.keys(snapshot.targets).filter((n) => snapshot.targets[n]!.role === 'protect').sort();
  const path = objective.metric.split('.');
  let worst: number | undefined;
  for (const name of names) {
    const v = read(snapshot.targets[name], path);
    if (v === undefined) continue;
    if (worst === undefined || (objective.better === 'lower' ? v > worst : v < worst)) worst = v;
  }
  return worst;
}

/** Median of a non-empty list; the mean of the two middle values for an even length. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new TunerError('INTERNAL', 'compute median: empty list');
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Relative change in the better direction; a zero baseline can only stay level (0) or get worse (−1). */
export function improvementOf(before: number, after: number, better: Objective['better']): number {
  const gain = better === 'lower' ? before - after : after - before;
  if (before === 0) return gain < 0 ? -1 : 0;
  return gain / Math.abs(before);
}

export class ClosedLoop implements PenaltySource {
  readonly windowTicks: number;
  readonly margin: number;
  readonly penaltyMs: number;
  readonly significance: number;
  readonly warmupTicks: number;
  readonly #tracked = new Map<string, Tracked>();
  readonly #penalties = new Map<string, number>();

  /** Changes applied and not yet judged. */
  get awaitingVerdict(): number {
    return this.#tracked.size;
  }

  constructor(opts: ClosedLoopOptions) {
    if (!Number.isInteger(opts.windowTicks) || opts.windowTicks < 1) {
      throw new TunerError('CONFIG_INVALID', `create closed loop: windowTicks must be an integer ≥ 1, got ${opts.windowTicks}`);
    }
    if (!Number.isFinite(opts.margin) || opts.margin < 0) {
      throw new TunerError('CONFIG_INVALID', `create closed loop: margin must be a finite number ≥ 0, got ${opts.margin}`);
    }
    if (!Number.isFinite(opts.penaltyMs) || opts.penaltyMs < 0) {
      throw new TunerError('CONFIG_INVALID', `create closed loop: penaltyMs must be ≥ 0, got ${opts.penaltyMs}`);
    }
    if (!(opts.significance > 0 && opts.significance < 0.5)) {
      throw new TunerError('CONFIG_INVALID', `create closed loop: significance must be above 0 and below 0.5, got ${opts.significance}`);
    }
    if (!Number.isInteger(opts.warmupTicks) || opts.warmupTicks < 0) {
      throw new TunerError('CONFIG_INVALID', `create closed loop: warmupTicks must be an integer ≥ 0, got ${opts.warmupTicks}`);
    }
    this.windowTicks = opts.windowTicks;
    this.significance = opts.significance;
    this.warmupTicks = opts.warmupTicks;
    this.margin = opts.margin;
    this.penaltyMs = opts.penaltyMs;
  }

  /**
   * Start judging an applied nudge. `baseline` holds the objective's values over the window before (ticks without
   * data left out). Only snapshots that end after `now` count toward the window after. Tracking a knob already under
   * evaluation replaces the earlier evaluation, whose verdict would now measure both changes at once.
   */
  track(decisionId: string, nudge: StrategyNudge, baseline: readonly number[], now: number): void {
    if (this.#tracked.has(decisionId)) {
      throw new TunerError('INTERNAL', `track decision ${decisionId}: already tracked`);
    }
    this.forget(nudge.action, nudge.target);
    this.#tracked.set(decisionId, {
      decisionId,
      nudge,
      objective: objectiveOf(nudge),
      baseline: baseline.filter(Number.isFinite),
      since: now,
      ticks: 0,
      values: [],
    });
  }

  /** Feed one tick; returns a verdict for every evaluation whose window after is now complete. */
  observe(snapshot: TickSnapshot, now: number): Verdict[] {
    for (const [key, until] of this.#penalties) if (until <= now) this.#penalties.delete(key);
    const out: Verdict[] = [];
    for (const t of this.#tracked.values()) {
      if (snapshot.time <= t.since) continue;
      t.ticks++;
      const v = metricValue(snapshot, t.objective);
      if (v !== undefined && Number.isFinite(v)) t.values.push(v);
      if (t.ticks < this.windowTicks) continue;
      this.#tracked.delete(t.decisionId);
      out.push(this.#judge(t, now));
    }
    return out;
  }

  penalised(rule: string, target: string, now: number): boolean {
    const until = this.#penalties.get(penaltyKey(rule, target));
    return until !== undefined && until > now;
  }

  /** When the penalty on (rule, target) ends, or undefined when there is none at `now`. */
  penaltyUntil(rule: string, target: string, now: number): number | undefined {
    const until = this.#penalties.get(penaltyKey(rule, target));
    return until !== undefined && until > now ? until : undefined;
  }

  /** The decision under evaluation on this knob, if any. */
  evaluating(action: string, target: string): string | undefined {
    for (const t of this.#tracked.values()) {
      if (t.nudge.action === action && t.nudge.target === target) return t.decisionId;
    }
    return undefined;
  }

  /**
   * Stop evaluating the knob without a verdict, because something else (a restore) moved it and the window after
   * would no longer measure the tracked change. Returns the cancelled decision id.
   */
  forget(action: string, target: string): string | undefined {
    const id = this.evaluating(action, target);
    if (id !== undefined) this.#tracked.delete(id);
    return id;
  }

  #judge(t: Tracked, now: number): Verdict {
    const before = t.baseline.length > 0 ? median(t.baseline) : null;
    const after = t.values.length > 0 ? median(t.values) : null;
    const improvement = before !== null && after !== null ? improvementOf(before, after, t.objective.better) : null;
    let pValue: number | null = null;
    let low: number | null = null;
    let high: number | null = null;
    if (before !== null && after !== null) {
      // Oriented so that a positive shift is an improvement: before − after for lower-is-better, after − before else.
      const lower = t.objective.better === 'lower';
      const r = lower ? rankShift(t.baseline, t.values, this.significance) : rankShift(t.values, t.baseline, this.significance);
      pValue = r.pValue;
      const scale = Math.abs(before);
      if (scale > 0) {
        low = Number.isFinite(r.low) ? r.low / scale : null;
        high = Number.isFinite(r.high) ? r.high / scale : null;
      }
    }
    // Kept only when shown to help (significant) and by enough to matter (margin). No data on either side, too few
    // ticks to reach significance, or a gain inside the noise: no evidence the change helped, and it must earn its keep.
    const kept = improvement !== null && pValue !== null && pValue <= this.significance && improvement >= this.margin;
    if (!kept) this.#penalties.set(penaltyKey(t.nudge.rule, t.nudge.target), now + this.penaltyMs);
    return {
      decisionId: t.decisionId,
      verdict: kept ? 'kept' : 'revert',
      rule: t.nudge.rule,
      action: t.nudge.action,
      target: t.nudge.target,
      metric: t.objective.metric,
      before,
      after,
      improvement,
      samples: t.values.length,
      samplesBefore: t.baseline.length,
      pValue,
      low,
      high,
      confidence: 1 - 2 * this.significance,
    };
  }
}

/**
 * A verdict's finding in words, with its uncertainty: "median 7200 before, 5000 after: 31% better (90% CI 20% to 45%,
 * p = 0.004; 5 ticks before, 5 after)". `fmt` renders the metric's values.
 */
export function describeVerdict(v: Verdict, fmt: (x: number) => string = (x) => String(Math.round(x))): string {
  const ticks = `${v.samplesBefore} ticks before, ${v.samples} after`;
  if (v.before === null || v.after === null || v.improvement === null) {
    return `no ${v.metric} data ${v.before === null ? 'before' : 'after'} the change (${ticks}), so no evidence it helped`;
  }
  const change = v.improvement >= 0 ? `${formatPercent(v.improvement)} better` : `${formatPercent(-v.improvement)} worse`;
  const bound = (x: number | null, inf: string) => (x === null ? inf : formatPercent(x));
  const ci =
    v.low === null && v.high === null
      ? `too few ticks to bound it at ${formatPercent(v.confidence)}`
      : `${formatPercent(v.confidence)} CI ${bound(v.low, '−∞')} to ${bound(v.high, '+∞')}`;
  const p = v.pValue === null ? '' : `, p = ${v.pValue < 0.001 ? v.pValue.toExponential(1) : v.pValue.toFixed(3)}`;
  return `median ${fmt(v.before)} before, ${fmt(v.after)} after: ${change} (${ci}${p}; ${ticks})`;
}

function penaltyKey(rule: string, target: string): string {
  return `${rule}\u0000${target}`;
}

function read(signals: unknown, path: readonly string[]): number | undefined {
  let node: unknown = signals;
  let parent: unknown;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    parent = node;
    node = (node as Record<string, unknown>)[key];
  }
  if (typeof node !== 'number' || !Number.isFinite(node)) return undefined;
  const count = (parent as Record<string, unknown>).count;
  return typeof count === 'number' && count === 0 ? undefined : node;
}
