/**
 * Judges every applied change by its effect. A nudge is an experiment: the median of its objective metric over the
 * window before it is compared with the median over the next `windowTicks` ticks. A change that did not improve the
 * metric by at least `margin` is reverted, and its (rule, target) pair is penalised for `penaltyMs` so the same
 * experiment is not repeated at once. Medians, because one scheduling spike in a window of a few ticks would swing a
 * mean and with it the verdict.
 */
import { TunerError } from '../core/errors.js';
import type { TickSnapshot } from '../core/types.js';
import { DEFAULT_OBJECTIVE, type Objective, type StrategyNudge } from './strategy.js';

export interface ClosedLoopOptions {
  /** Ticks in each window (before and after). */
  windowTicks: number;
  /** Minimum relative improvement to keep a change, e.g. 0.1 for 10%. */
  margin: number;
  /** How long a reverted (rule, target) pair stays refused, ms. */
  penaltyMs: number;
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
}

/** The penalty view guardrails consult; ClosedLoop implements it. */
export interface PenaltySource {
  penalised(rule: string, target: string, now: number): boolean;
}

interface Tracked {
  decisionId: string;
  nudge: StrategyNudge;
  objective: Objective;
  before: number | null;
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
  readonly #tracked = new Map<string, Tracked>();
  readonly #penalties = new Map<string, number>();

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
    this.windowTicks = opts.windowTicks;
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
    const finite = baseline.filter(Number.isFinite);
    this.#tracked.set(decisionId, {
      decisionId,
      nudge,
      objective: objectiveOf(nudge),
      before: finite.length > 0 ? median(finite) : null,
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
    const after = t.values.length > 0 ? median(t.values) : null;
    const improvement = t.before !== null && after !== null ? improvementOf(t.before, after, t.objective.better) : null;
    // No data on either side is no evidence the change helped, and a change must earn its keep.
    const kept = improvement !== null && improvement >= this.margin;
    if (!kept) this.#penalties.set(penaltyKey(t.nudge.rule, t.nudge.target), now + this.penaltyMs);
    return {
      decisionId: t.decisionId,
      verdict: kept ? 'kept' : 'revert',
      rule: t.nudge.rule,
      action: t.nudge.action,
      target: t.nudge.target,
      metric: t.objective.metric,
      before: t.before,
      after,
      improvement,
      samples: t.values.length,
    };
  }
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
