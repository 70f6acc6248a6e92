/**
 * Log2 histograms, the shape the kernel side aggregates latencies into: bucket i counts values in [2^i, 2^(i+1)),
 * and bucket 0 also counts 0 (so it covers [0, 2)). The kernel keeps cumulative counters; user space subtracts the
 * previous read to get one tick's window and summarises that window with percentiles and a mean.
 *
 * These run on every tick for every target, so they take caller-owned output arrays, never allocate on that path,
 * and accept both plain arrays and typed arrays.
 */
import { TunerError } from '../core/errors.js';

export type Counts = ArrayLike<number>;

/** Anything indexable we can write counts into: number[] or a typed array such as Float64Array. */
export interface MutableCounts {
  readonly length: number;
  [index: number]: number;
}

const TWO_POW_32 = 4_294_967_296;

/** The bucket a value falls in. Values below 2 (including 0, negatives and NaN) are bucket 0. */
export function bucketOf(value: number): number {
  if (!(value >= 2)) return 0;
  if (value < TWO_POW_32) return 31 - Math.clz32(value);
  if (value === Infinity) return Infinity;
  // log2 can land one off either side of an exact power of two in floating point; correct against the powers.
  let e = Math.floor(Math.log2(value));
  if (2 ** e > value) e--;
  else if (2 ** (e + 1) <= value) e++;
  return e;
}

/** Lowest value of bucket i (inclusive). */
export function bucketLow(i: number): number {
  return i === 0 ? 0 : 2 ** i;
}

/** Upper bound of bucket i (exclusive). */
export function bucketHigh(i: number): number {
  return 2 ** (i + 1);
}

/** Count `value` (n times); values beyond the last bucket go into it, as the kernel side clamps them. */
export function histAdd(counts: MutableCounts, value: number, n = 1): void {
  const b = bucketOf(value);
  counts[b < counts.length ? b : counts.length - 1] += n;
}

export function histTotal(counts: Counts): number {
  let t = 0;
  for (let i = 0; i < counts.length; i++) t += counts[i];
  return t;
}

function checkQuantile(q: number): void {
  if (!(q >= 0 && q <= 1)) throw new TunerError('INTERNAL', `compute percentile: q must be in [0, 1], got ${q}`);
}

/**
 * The q-quantile (0 ≤ q ≤ 1; 0.99 for p99), taking values to be spread evenly across each bucket: find the bucket
 * where the cumulative count reaches q × total and interpolate linearly inside it. The answer is always inside the
 * bucket that holds the true quantile, so it is off by less than a factor of two, and exact for a distribution that
 * is flat within buckets. NaN for an empty histogram.
 */
export function histPercentile(counts: Counts, q: number): number {
  checkQuantile(q);
  return quantileOf(counts, q, histTotal(counts));
}

function quantileOf(counts: Counts, q: number, total: number): number {
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let cum = 0;
  let last = -1;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i];
    if (!(n > 0)) continue;
    last = i;
    if (cum + n >= rank) {
      const lo = bucketLow(i);
      return lo + ((rank - cum) / n) * (bucketHigh(i) - lo);
    }
    cum += n;
  }
  // Reached only when rounding leaves the running count a hair under q × total for q = 1: the top of the highest
  // non-empty bucket is the answer then.
  return last < 0 ? NaN : bucketHigh(last);
}
