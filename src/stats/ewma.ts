/**
 * Exponentially weighted moving average: the agent's per-target memory of a statistic across ticks (e.g. the p99
 * of run-queue latency), so one noisy tick neither triggers nor hides a trend.
 */
import { TunerError } from '../core/errors.js';

export class Ewma {
  /** Weight of the newest sample, 0 < alpha ≤ 1; 1 means no smoothing. */
  readonly alpha: number;
  private v = 0;
  private n = 0;

  constructor(alpha: number) {
    if (!(alpha > 0 && alpha <= 1)) {
      throw new TunerError('INTERNAL', `create ewma: alpha must be in (0, 1], got ${alpha}`);
    }
    this.alpha = alpha;
  }

  /**
   * Fold in one sample and return the new average. The first sample is taken as is: starting from 0 would drag the
   * average toward 0 for the first 1/alpha samples and read as a sudden improvement. Non-finite samples are
   * ignored, because one NaN would otherwise stay in the average for good.
   *
   * Written as x + (1 − alpha)(value − x) rather than value + alpha(x − value): the same average, but exact where
   * it must be. With alpha = 1 it is x itself (value + (x − value) rounds away from x for about one pair in six),
   * and a constant input stays constant.
   */
  update(x: number): number {
    if (Number.isFinite(x)) {
      this.v = this.n === 0 ? x : x + (1 - this.alpha) * (this.v - x);
      this.n++;
    }
    return this.n === 0 ? NaN : this.v;
  }

  /** The average, or undefined before the first sample. */
  get value(): number | undefined {
    return this.n === 0 ? undefined : this.v;
  }

  /** Samples folded in so far. */
  get count(): number {
    return this.n;
  }

  reset(): void {
    this.v = 0;
    this.n = 0;
  }
}
