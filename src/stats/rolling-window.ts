/**
 * A fixed-capacity window over the most recent numbers (a ring buffer), with mean, min, max and percentiles.
 * Used for per-tick series such as "p99 over the last 30 ticks". Storage is allocated once, at construction; pushes
 * and queries allocate nothing.
 */
import { TunerError } from '../core/errors.js';

export class RollingWindow {
  readonly capacity: number;
  private readonly buf: Float64Array;
  /** Sorted copy of the live values, rebuilt lazily for percentiles and reused until the next push. */
  private readonly sorted: Float64Array;
  private sortedValid = false;
  /** Index of the next write. */
  private head = 0;
  private n = 0;
  private sum = 0;
  private pushesSinceResum = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new TunerError('INTERNAL', `create rolling window: capacity must be an integer ≥ 1, got ${capacity}`);
    }
    this.capacity = capacity;
    this.buf = new Float64Array(capacity);
    this.sorted = new Float64Array(capacity);
  }

  /** Add a finite number, evicting the oldest once the window is full. */
  push(x: number): void {
    if (this.n === this.capacity) this.sum -= this.buf[this.head];
    else this.n++;
    this.buf[this.head] = x;
    this.sum += x;
    this.head = this.head + 1 === this.capacity ? 0 : this.head + 1;
    this.sortedValid = false;
    // A running sum that adds and subtracts forever accumulates rounding error; an always-on agent would see it.
    // Re-adding the window once per `capacity` pushes bounds it at O(1) amortised cost.
    if (++this.pushesSinceResum >= this.capacity) this.resum();
  }

  private resum(): void {
    let s = 0;
    for (let i = 0; i < this.n; i++) s += this.buf[i];
    this.sum = s;
    this.pushesSinceResum = 0;
  }

  get size(): number {
    return this.n;
  }

  get full(): boolean {
    return this.n === this.capacity;
  }

  /** The i-th value, oldest first (0 ≤ i < size). */
  at(i: number): number {
    if (!(i >= 0 && i < this.n)) return NaN;
    const start = this.n === this.capacity ? this.head : 0;
    const j = start + i;
    return this.buf[j >= this.capacity ? j - this.capacity : j];
  }

  /** The newest value; NaN when empty. */
  last(): number {
    return this.n === 0 ? NaN : this.buf[this.head === 0 ? this.capacity - 1 : this.head - 1];
  }

  /** NaN when empty, as are min, max and percentile. */
  mean(): number {
    return this.n === 0 ? NaN : this.sum / this.n;
  }

  min(): number {
    if (this.n === 0) return NaN;
    let m = Infinity;
    for (let i = 0; i < this.n; i++) if (this.buf[i] < m) m = this.buf[i];
    return m;
  }

  max(): number {
    if (this.n === 0) return NaN;
    let m = -Infinity;
    for (let i = 0; i < this.n; i++) if (this.buf[i] > m) m = this.buf[i];
    return m;
  }

  /**
   * The q-quantile (0 ≤ q ≤ 1), interpolating linearly between the two nearest ranks (numpy's default, "type 7"):
   * q = 0 is the minimum, q = 1 the maximum, q = 0.5 of an even count the mean of the two middle values.
   * The first call after a push sorts a preallocated copy; further calls before the next push reuse it.
   */
  percentile(q: number): number {
    if (!(q >= 0 && q <= 1)) throw new TunerError('INTERNAL', `compute percentile: q must be in [0, 1], got ${q}`);
    if (this.n === 0) return NaN;
    if (!this.sortedValid) {
      if (this.n === this.capacity) {
        // The steady state: whole-array copy and sort, no views created.
        this.sorted.set(this.buf);
        this.sorted.sort();
      } else {
        const view = this.sorted.subarray(0, this.n);
        view.set(this.buf.subarray(0, this.n));
        view.sort();
      }
      this.sortedValid = true;
    }
    const h = (this.n - 1) * q;
    const lo = Math.floor(h);
    const hi = lo + 1 < this.n ? lo + 1 : lo;
    return this.sorted[lo] + (h - lo) * (this.sorted[hi] - this.sorted[lo]);
  }

  clear(): void {
    this.head = 0;
    this.n = 0;
    this.sum = 0;
    this.pushesSinceResum = 0;
    this.sortedValid = false;
  }

  /** The values, oldest first, as a new array; for reports, not for the tick path. */
  toArray(): number[] {
    const out = new Array<number>(this.n);
    for (let i = 0; i < this.n; i++) out[i] = this.at(i);
    return out;
  }
}
