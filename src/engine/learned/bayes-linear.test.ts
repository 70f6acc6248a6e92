import { describe, expect, it } from 'vitest';
import { BayesLinearArm, cholesky, freshArm } from './bayes-linear.js';
import { Prng } from './prng.js';

const prior = { weightSd: 0.5, noiseSd: 0.2 };

describe('BayesLinearArm', () => {
  it('starts at the prior: mean 0, uncertainty weightSd × |x|', () => {
    const arm = new BayesLinearArm(3, freshArm(3, prior), prior);
    const e = arm.estimate([1, 1, 0]);
    expect(e.mean).toBe(0);
    expect(e.sd).toBeCloseTo(0.5 * Math.SQRT2, 6);
  });

  it('recovers a linear reward from noisy outcomes and grows confident where it has data', () => {
    const truth = [0.1, 0.5, -0.3];
    const p = Prng.fromSeed(3);
    const arm = new BayesLinearArm(3, freshArm(3, prior), prior);
    for (let i = 0; i < 400; i++) {
      const x = [1, p.uniform(), p.uniform()];
      arm.update(x, truth[0]! + truth[1]! * x[1]! + truth[2]! * x[2]! + 0.05 * p.normal());
    }
    arm.weights().forEach((w, i) => expect(w).toBeCloseTo(truth[i]!, 1));
    expect(arm.noiseSd()).toBeGreaterThan(0.03);
    expect(arm.noiseSd()).toBeLessThan(0.08);
    const e = arm.estimate([1, 0.5, 0.5]);
    expect(e.mean).toBeCloseTo(0.2, 1);
    expect(e.sd).toBeLessThan(0.01);
  });

  it('stays uncertain in a kind of situation it has never seen, however sure it is elsewhere', () => {
    const arm = new BayesLinearArm(3, freshArm(3, prior), prior);
    for (let i = 0; i < 50; i++) arm.update([1, 1, 0], 0.4);
    expect(arm.estimate([1, 1, 0]).sd).toBeLessThan(0.05);
    // The third feature was always 0: its weight is still the prior's.
    expect(arm.estimate([0, 0, 1]).sd).toBeGreaterThan(0.4);
  });

  it('keeps its sufficient statistics in the state it was given, so a copy continues identically', () => {
    const a = new BayesLinearArm(2, freshArm(2, prior), prior);
    a.update([1, 0.5], 0.3);
    a.update([1, 0.2], 0.1);
    const b = new BayesLinearArm(2, structuredClone(a.state), prior);
    expect(b.estimate([1, 0.4])).toEqual(a.estimate([1, 0.4]));
    expect(a.state).toMatchObject({ n: 2, rewardSum: 0.4, lastReward: 0.1 });
  });

  it('refuses contexts of the wrong size and rewards that are not numbers', () => {
    const arm = new BayesLinearArm(2, freshArm(2, prior), prior);
    expect(() => arm.estimate([1])).toThrow(/2/);
    expect(() => arm.update([1, 0], Number.NaN)).toThrow(/finite/);
  });
});

describe('cholesky', () => {
  it('factors a positive definite matrix', () => {
    const a = [4, 2, 2, 3];
    const L = cholesky(a, 2);
    expect(L[0]! * L[0]!).toBeCloseTo(4);
    expect(L[2]! * L[0]!).toBeCloseTo(2);
    expect(L[2]! * L[2]! + L[3]! * L[3]!).toBeCloseTo(3);
    expect(() => cholesky([1, 2, 2, 1], 2)).toThrow(/positive definite/);
  });
});
