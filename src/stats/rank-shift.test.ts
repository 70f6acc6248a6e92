import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { normalCdf, rankShift } from './rank-shift.js';

/** Every way to split the pooled values into samples of the original sizes, counted by brute force. */
function bruteUpperTail(x: number[], y: number[]): number {
  const all = [...x, ...y];
  const sorted = [...all].sort((a, b) => a - b);
  const rank = (v: number) => {
    const first = sorted.indexOf(v);
    const last = sorted.lastIndexOf(v);
    return (first + last) / 2 + 1;
  };
  const ranks = all.map(rank);
  const observed = x.reduce((s, v) => s + rank(v), 0);
  let hits = 0;
  let total = 0;
  const pick = (start: number, left: number, sum: number): void => {
    if (left === 0) {
      total++;
      if (sum >= observed - 1e-9) hits++;
      return;
    }
    for (let i = start; i <= ranks.length - left; i++) pick(i + 1, left - 1, sum + ranks[i]!);
  };
  pick(0, x.length, 0);
  return hits / total;
}

describe('rankShift', () => {
  it('gives the exact p-value of a complete separation: 1 / C(10, 5)', () => {
    const r = rankShift([6, 7, 8, 9, 10], [1, 2, 3, 4, 5], 0.05);
    expect(r.pValue).toBeCloseTo(1 / 252, 12);
    expect(r.shift).toBe(5);
  });

  it('uses the tabled critical value for 5 against 5 at 5% (U ≥ 21) for its bounds', () => {
    const x = [10, 11, 12, 13, 14];
    const y = [0, 1, 2, 3, 4];
    const r = rankShift(x, y, 0.05);
    const diffs = x.flatMap((a) => y.map((b) => a - b)).sort((a, b) => a - b);
    expect(r.low).toBe(diffs[25 - 21]);
    expect(r.high).toBe(diffs[20]);
  });

  it('cannot bound the shift with one value a side, and says so', () => {
    const r = rankShift([10], [1], 0.05);
    expect(r.low).toBe(-Infinity);
    expect(r.high).toBe(Infinity);
    expect(r.pValue).toBeCloseTo(0.5, 12);
  });

  it('matches a brute-force permutation test, ties included', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 6 }),
        (x, y) => {
          expect(rankShift(x, y, 0.05).pValue).toBeCloseTo(bruteUpperTail(x, y), 10);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('agrees with the normal approximation where it switches to it', () => {
    const x = Array.from({ length: 31 }, (_, i) => i * 1.3 + 2);
    const y = Array.from({ length: 31 }, (_, i) => i * 1.1);
    const big = rankShift(x, y, 0.05).pValue; // 62 values: normal approximation
    const exact = rankShift(x.slice(0, 30), y.slice(0, 30), 0.05).pValue; // 60: exact
    expect(Math.abs(big - exact)).toBeLessThan(0.03);
  });

  it('normalCdf is accurate to 1e-7', () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalCdf(1.959964)).toBeCloseTo(0.975, 6);
    expect(normalCdf(-1.644854)).toBeCloseTo(0.05, 6);
  });
});
