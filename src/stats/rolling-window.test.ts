import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RollingWindow } from './rolling-window.js';

/** numpy's default percentile (linear between closest ranks), the definition RollingWindow documents. */
function type7(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  const h = (s.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
}

describe('RollingWindow', () => {
  it('keeps the newest `capacity` values, oldest first', () => {
    const w = new RollingWindow(3);
    expect(w.size).toBe(0);
    expect(w.last()).toBeNaN();
    w.push(1);
    w.push(2);
    expect(w.toArray()).toEqual([1, 2]);
    expect(w.full).toBe(false);
    w.push(3);
    w.push(4);
    expect(w.toArray()).toEqual([2, 3, 4]);
    expect(w.full).toBe(true);
    expect([w.at(0), w.at(2), w.at(3), w.at(-1)]).toEqual([2, 4, NaN, NaN]);
    expect(w.last()).toBe(4);
    expect([w.mean(), w.min(), w.max()]).toEqual([3, 2, 4]);
  });

  it('is empty again after clear', () => {
    const w = new RollingWindow(2);
    w.push(5);
    w.clear();
    expect([w.size, w.mean(), w.min(), w.max(), w.percentile(0.5)]).toEqual([0, NaN, NaN, NaN, NaN]);
    w.push(1);
    expect(w.toArray()).toEqual([1]);
  });

  it('percentiles of 1..100 (uniform) are the type-7 values exactly', () => {
    const w = new RollingWindow(100);
    for (let i = 1; i <= 100; i++) w.push(i);
    expect(w.percentile(0)).toBe(1);
    expect(w.percentile(1)).toBe(100);
    expect(w.percentile(0.5)).toBeCloseTo(50.5, 12);
    expect(w.percentile(0.9)).toBeCloseTo(90.1, 12);
    expect(w.percentile(0.99)).toBeCloseTo(99.01, 12);
  });

  it('percentiles of a constant are the constant; of two point masses, interpolate between them', () => {
    const c = new RollingWindow(10);
    for (let i = 0; i < 25; i++) c.push(7);
    for (const q of [0, 0.3, 0.99, 1]) expect(c.percentile(q)).toBe(7);
    const two = new RollingWindow(4);
    for (const x of [1, 1, 1024, 1024]) two.push(x);
    expect(two.percentile(0.25)).toBe(1);
    expect(two.percentile(0.5)).toBe(512.5);
    expect(two.percentile(0.75)).toBe(1024);
  });

  it('reuses its sort until the next push', () => {
    const w = new RollingWindow(4);
    for (const x of [4, 1, 3, 2]) w.push(x);
    expect(w.percentile(0)).toBe(1);
    expect(w.percentile(1)).toBe(4);
    w.push(0);
    expect(w.percentile(0)).toBe(0);
    expect(w.percentile(1)).toBe(3);
  });

  it('matches a naive implementation on any sequence', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { maxLength: 100 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (cap, xs, q) => {
          const w = new RollingWindow(cap);
          for (const x of xs) w.push(x);
          const live = xs.slice(Math.max(0, xs.length - cap));
          expect(w.toArray()).toEqual(live);
          if (live.length === 0) return;
          const mean = live.reduce((a, b) => a + b, 0) / live.length;
          expect(Math.abs(w.mean() - mean)).toBeLessThanOrEqual(1e-6);
          expect(w.min()).toBe(Math.min(...live));
          expect(w.max()).toBe(Math.max(...live));
          expect(w.percentile(q)).toBeCloseTo(type7(live, q), 6);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('does not drift over a long run (mean within 1e-9 of exact after 10^6 pushes of mixed magnitudes)', () => {
    const w = new RollingWindow(60);
    for (let i = 0; i < 1_000_000; i++) w.push(i % 3 === 0 ? 1e9 + i : 0.001 * i);
    const exact = w.toArray().reduce((a, b) => a + b, 0) / w.size;
    expect(Math.abs(w.mean() - exact) / exact).toBeLessThan(1e-9);
  });

  it('refuses a capacity that is not a positive integer', () => {
    for (const c of [0, -1, 1.5, NaN]) expect(() => new RollingWindow(c)).toThrow(/capacity must be an integer ≥ 1/);
  });

  it('refuses quantiles outside [0, 1]', () => {
    const w = new RollingWindow(2);
    w.push(1);
    expect(() => w.percentile(2)).toThrow(/q must be in \[0, 1\]/);
  });
});
