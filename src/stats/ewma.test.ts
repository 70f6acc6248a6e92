import { describe, expect, it } from 'vitest';
import { Ewma } from './ewma.js';
import { mulberry32 } from '../testing/random.js';

// Deterministic uniform [0, 1) numbers (mulberry32), so tolerances are about the estimator, not luck.
const rng = mulberry32;

describe('Ewma', () => {
  it('has no value before the first sample, which seeds it', () => {
    const e = new Ewma(0.3);
    expect(e.value).toBeUndefined();
    expect(e.update(42)).toBe(42);
    expect(e.value).toBe(42);
    expect(e.count).toBe(1);
  });

  it('follows value ← value + alpha × (x − value)', () => {
    const e = new Ewma(0.5);
    expect([10, 20, 30, 30].map((x) => e.update(x))).toEqual([10, 15, 22.5, 26.25]);
  });

  it('alpha = 1 tracks the input exactly; a constant input stays constant', () => {
    const a = new Ewma(1);
    for (const x of [3, 9, 1]) expect(a.update(x)).toBe(x);
    // A pair where value + (x − value) is not x in floating point.
    expect(1237.8275968853425 + (3998.754041268456 - 1237.8275968853425)).not.toBe(3998.754041268456);
    a.update(1237.8275968853425);
    expect(a.update(3998.754041268456)).toBe(3998.754041268456);
    const c = new Ewma(0.2);
    for (let i = 0; i < 100; i++) expect(c.update(7)).toBe(7);
  });

  it('closes a step by a factor (1 − alpha) per sample', () => {
    const e = new Ewma(0.25);
    e.update(0);
    for (let n = 1; n <= 20; n++) {
      e.update(100);
      expect(100 - e.value!).toBeCloseTo(100 * 0.75 ** n, 9);
    }
  });

  it('settles on the mean of a stationary noisy series (uniform 0..100, alpha 0.01: within 3)', () => {
    const r = rng(7);
    const e = new Ewma(0.01);
    for (let i = 0; i < 5000; i++) e.update(r() * 100);
    // Steady-state standard deviation is 28.9 × sqrt(alpha / (2 − alpha)) ≈ 2.05, so 3 is about 1.5σ;
    // the seed is fixed, so this is deterministic.
    expect(Math.abs(e.value! - 50)).toBeLessThan(3);
  });

  it('ignores non-finite samples', () => {
    const e = new Ewma(0.5);
    expect(e.update(NaN)).toBeNaN();
    expect(e.value).toBeUndefined();
    e.update(10);
    expect(e.update(Infinity)).toBe(10);
    expect(e.count).toBe(1);
  });

  it('reset forgets everything', () => {
    const e = new Ewma(0.5);
    e.update(10);
    e.reset();
    expect(e.value).toBeUndefined();
    expect(e.update(4)).toBe(4);
  });

  it('refuses alpha outside (0, 1]', () => {
    for (const a of [0, -0.1, 1.5, NaN]) expect(() => new Ewma(a)).toThrow(/alpha must be in \(0, 1\]/);
  });
});
