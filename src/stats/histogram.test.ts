import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTunerError } from '../core/errors.js';
import {
  bucketHigh,
  bucketLow,
  bucketOf,
  histAdd,
  histPercentile,
} from './histogram.js';

const BUCKETS = 32;

/** A histogram of values placed at the (k + 0.5)/n quantiles of a distribution: its exact shape, no sampling noise. */
function fromQuantileFn(n: number, inv: (p: number) => number): { counts: Float64Array } {
  const counts = new Float64Array(BUCKETS);
  for (let k = 0; k < n; k++) {
    const v = inv((k + 0.5) / n);
    histAdd(counts, v);
  }
  return { counts };
}

/** What linear interpolation within log2 buckets predicts for a distribution with CDF `cdf`. */
function predicted(cdf: (x: number) => number, q: number): number {
  let before = 0;
  for (let i = 0; i < BUCKETS; i++) {
    const p = cdf(bucketHigh(i)) - cdf(bucketLow(i));
    if (before + p >= q) return bucketLow(i) + ((q - before) / p) * (bucketHigh(i) - bucketLow(i));
    before += p;
  }
  throw new Error('unreachable');
}

describe('buckets', () => {
  it('bucket i holds [2^i, 2^(i+1)), bucket 0 holds 0 and 1', () => {
    expect([0, 1, 1.999, 2, 3, 3.999, 4, 7, 8, 1023, 1024, 1025].map(bucketOf)).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 3, 9, 10, 10]);
    for (let i = 1; i < 63; i++) {
      expect(bucketOf(2 ** i)).toBe(i);
      expect(bucketOf(2 ** i * (1 - 2 ** -52))).toBe(i - 1);
      expect(bucketLow(i)).toBe(2 ** i);
      expect(bucketHigh(i)).toBe(2 ** (i + 1));
    }
    expect(bucketLow(0)).toBe(0);
    expect(bucketHigh(0)).toBe(2);
  });

  it('odd inputs land in bucket 0', () => {
    expect([-1, -Infinity, NaN].map(bucketOf)).toEqual([0, 0, 0]);
  });

  it('histAdd clamps values past the last bucket into it', () => {
    const c = new Float64Array(4);
    histAdd(c, 1e9);
    histAdd(c, Infinity, 2);
    histAdd(c, 0);
    expect([...c]).toEqual([1, 0, 0, 3]);
  });
});

describe('histPercentile on known distributions', () => {
  const N = 100_000;

  it('uniform on [0, 1024): exact up to the sample spacing (tolerance 0.01)', () => {
    const { counts } = fromQuantileFn(N, (p) => p * 1024);
    for (const q of [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999]) {
      expect(Math.abs(histPercentile(counts, q) - q * 1024)).toBeLessThan(0.01);
    }
    expect(histPercentile(counts, 0)).toBe(0);
    expect(histPercentile(counts, 1)).toBe(1024);
  });

  it('exponential, mean 1000 µs: matches the bucket-interpolation prediction to 0.1%, the true quantile to 30%', () => {
    const mean = 1000;
    const { counts } = fromQuantileFn(N, (p) => -mean * Math.log(1 - p));
    const cdf = (x: number) => 1 - Math.exp(-x / mean);
    for (const q of [0.5, 0.9, 0.99, 0.999]) {
      const est = histPercentile(counts, q);
      const truth = -mean * Math.log(1 - q);
      // Linear interpolation assumes a flat density within a bucket; an exponential's falls, so the estimate runs
      // high by up to ~25% (at p99, which sits low in the [4096, 8192) bucket).
      expect(Math.abs(est - predicted(cdf, q)) / predicted(cdf, q)).toBeLessThan(0.001);
      expect(Math.abs(est - truth) / truth).toBeLessThan(0.3);
      expect(est).toBeGreaterThanOrEqual(bucketLow(bucketOf(truth)));
      expect(est).toBeLessThanOrEqual(bucketHigh(bucketOf(truth)));
    }
  });

  it('constant 1000: every percentile inside its bucket [512, 1024), spread linearly', () => {
    const counts = new Float64Array(BUCKETS);
    histAdd(counts, 1000, 5000);
    expect(histPercentile(counts, 0)).toBe(512);
    expect(histPercentile(counts, 0.5)).toBe(768);
    expect(histPercentile(counts, 0.99)).toBeCloseTo(512 + 0.99 * 512, 9);
    expect(histPercentile(counts, 1)).toBe(1024);
  });

  it('point masses on bucket edges', () => {
    // All at 1024 = 2^10: the lower edge of bucket 10, never the top of bucket 9.
    const at1024 = new Float64Array(BUCKETS);
    histAdd(at1024, 1024, 100);
    expect(histPercentile(at1024, 0)).toBe(1024);
    expect(histPercentile(at1024, 0.5)).toBe(1536);

    // Half at 1 (bucket 0), half at 1024 (bucket 10): p50 is the top of bucket 0, just as p50 of {1, 1024} falls
    // between them; quantiles beyond move straight into bucket 10.
    const split = new Float64Array(BUCKETS);
    histAdd(split, 1, 50);
    histAdd(split, 1024, 50);
    expect(histPercentile(split, 0.25)).toBe(1);
    expect(histPercentile(split, 0.5)).toBe(2);
    expect(histPercentile(split, 0.75)).toBe(1536);

    // Zeros: reported within bucket 0, [0, 2).
    const zeros = new Float64Array(BUCKETS);
    histAdd(zeros, 0, 10);
    expect(histPercentile(zeros, 0.99)).toBeCloseTo(1.98, 9);
  });

  it('empty histograms have no percentiles', () => {
    expect(histPercentile(new Float64Array(BUCKETS), 0.5)).toBeNaN();
    expect(histPercentile([], 0.5)).toBeNaN();
  });

  it('refuses quantiles outside [0, 1]', () => {
    for (const q of [-0.1, 1.01, NaN]) {
      let err: unknown;
      try {
        histPercentile([1], q);
      } catch (e) {
        err = e;
      }
      expect(isTunerError(err, 'INTERNAL')).toBe(true);
    }
  });
});

describe('histPercentile properties', () => {
  const values = fc.array(fc.oneof(fc.integer({ min: 0, max: 2 ** 30 }), fc.double({ min: 0, max: 1e9, noNaN: true })), {
    minLength: 1,
    maxLength: 200,
  });

  it('lies in the bucket holding the true (nearest-rank) quantile, so within a factor of two of it', () => {
    fc.assert(
      fc.property(values, fc.double({ min: 0, max: 1, noNaN: true }), (vs, q) => {
        const counts = new Float64Array(BUCKETS);
        for (const v of vs) histAdd(counts, v);
        const sorted = [...vs].sort((a, b) => a - b);
        const truth = sorted[Math.max(0, Math.ceil(q * vs.length) - 1)];
        const est = histPercentile(counts, q);
        const b = bucketOf(truth);
        expect(est).toBeGreaterThanOrEqual(bucketLow(b));
        expect(est).toBeLessThanOrEqual(bucketHigh(b));
      }),
      { numRuns: 500 },
    );
  });

  it('is non-decreasing in q', () => {
    fc.assert(
      fc.property(values, fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (vs, a, b) => {
        const counts = new Float64Array(BUCKETS);
        for (const v of vs) histAdd(counts, v);
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        expect(histPercentile(counts, lo)).toBeLessThanOrEqual(histPercentile(counts, hi));
      }),
      { numRuns: 500 },
    );
  });
});
