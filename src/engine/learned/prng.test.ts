import { describe, expect, it } from 'vitest';
import { Prng } from './prng.js';

describe('Prng', () => {
  it('gives the same sequence for the same seed and a different one for another', () => {
    const a = Prng.fromSeed(42);
    const b = Prng.fromSeed(42);
    const c = Prng.fromSeed(43);
    const sa = Array.from({ length: 8 }, () => a.nextU32());
    expect(Array.from({ length: 8 }, () => b.nextU32())).toEqual(sa);
    expect(Array.from({ length: 8 }, () => c.nextU32())).not.toEqual(sa);
  });

  it('continues exactly from a saved state', () => {
    const a = Prng.fromSeed(7);
    for (let i = 0; i < 5; i++) a.normal();
    const b = Prng.fromState(a.state());
    expect(Array.from({ length: 5 }, () => b.uniform())).toEqual(Array.from({ length: 5 }, () => a.uniform()));
  });

  it('draws uniforms in [0, 1) and standard normals with mean 0 and variance 1', () => {
    const p = Prng.fromSeed(1);
    let lo = 1;
    let hi = 0;
    for (let i = 0; i < 10_000; i++) {
      const u = p.uniform();
      lo = Math.min(lo, u);
      hi = Math.max(hi, u);
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    const xs = Array.from({ length: 20_000 }, () => p.normal());
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(v - 1)).toBeLessThan(0.05);
  });

  it('refuses seeds and states it cannot use', () => {
    expect(() => Prng.fromSeed(-1)).toThrow(/seed must be an integer/);
    expect(() => Prng.fromSeed(1.5)).toThrow(/seed must be an integer/);
    expect(() => Prng.fromState([0, 0, 0, 0])).toThrow(/all zeros/);
    expect(() => Prng.fromState([1, 2, 3])).toThrow(/four unsigned/);
  });
});
