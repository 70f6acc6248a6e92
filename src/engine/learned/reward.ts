/**
 * What an outcome is worth to the learner: the protected metric's measured relative improvement, minus what the
 * nudge took from everyone else (the fraction of on-CPU time the noisy targets lost) and a fixed cost per change,
 * so that of two equally helpful nudges the gentler one wins, and a nudge that helps by a hair is not worth making.
 */
import { median } from '../closed-loop.js';
import type { TickSnapshot } from '../../core/types.js';

export interface RewardOptions {
  /** Weight of the noisy targets' lost on-CPU fraction (1 = losing half their CPU costs 0.5). */
  costWeight: number;
  /** Cost of one knob change, in improvement units. */
  churnCost: number;
}

export const DEFAULT_REWARD: RewardOptions = { costWeight: 0.5, churnCost: 0.02 };

export interface OutcomeMeasure {
  /** The closed loop's relative improvement (0.25 = 25% better); null when it had no data. */
  improvement: number | null;
  /** Fraction of the noisy targets' on-CPU time lost after the nudge, 0..1. */
  lost: number;
  /** Knob changes the nudge made (0 for doing nothing). */
  changes: number;
}

/**
 * Improvement is capped at ±1 so one freak window cannot dominate the model; no data counts as no improvement
 * (the closed loop reverts such a change too).
 */
export function rewardOf(m: OutcomeMeasure, opts: RewardOptions = DEFAULT_REWARD): number {
  const imp = m.improvement === null || !Number.isFinite(m.improvement) ? 0 : Math.max(-1, Math.min(1, m.improvement));
  const lost = Number.isFinite(m.lost) ? Math.max(0, Math.min(1, m.lost)) : 0;
  return imp - opts.costWeight * lost - opts.churnCost * m.changes;
}

/** The noisy targets' on-CPU rate (µs of CPU per ms of window) in one snapshot, or undefined without data. */
export function noisyOncpuRate(s: TickSnapshot, noisy: readonly string[]): number | undefined {
  if (!(s.windowMs > 0)) return undefined;
  let sum = 0;
  let seen = false;
  for (const n of noisy) {
    const on = s.targets[n]?.runqlat?.oncpuUs;
    if (typeof on === 'number' && Number.isFinite(on)) {
      sum += on;
      seen = true;
    }
  }
  return seen ? sum / s.windowMs : undefined;
}

/**
 * Fraction of on-CPU time the noisy targets lost: 1 − median(after) / median(before), floored at 0 (gaining CPU is
 * no cost). Medians for the same reason the closed loop uses them: one odd tick must not set the price.
 */
export function lostFraction(before: readonly TickSnapshot[], after: readonly TickSnapshot[], noisy: readonly string[]): number {
  const rate = (ss: readonly TickSnapshot[]): number | undefined => {
    const v = ss.map((s) => noisyOncpuRate(s, noisy)).filter((x): x is number => x !== undefined);
    return v.length > 0 ? median(v) : undefined;
  };
  const b = rate(before);
  const a = rate(after);
  if (b === undefined || a === undefined || !(b > 0)) return 0;
  return Math.max(0, Math.min(1, 1 - a / b));
}
