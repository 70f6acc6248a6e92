import { describe, expect, it } from 'vitest';
import { BurstDetector, type BurstOptions } from './burst.js';

const OPTS: BurstOptions = { window: 3, alpha: 0.1, k: 3, floor: 20 };

/** Feed a series; return the burst state after each sample. */
function run(d: BurstDetector, xs: readonly number[]): boolean[] {
  return xs.map((x) => d.update(x));
}

describe('BurstDetector', () => {
  it('never fires on a constant series', () => {
    const d = new BurstDetector(OPTS);
    expect(run(d, Array(200).fill(50)).some(Boolean)).toBe(false);
    expect(d.baseline).toBe(50);
  });

  it('starts when the window mean passes k × baseline, holds, and ends on the way back down', () => {
    const d = new BurstDetector(OPTS);
    run(d, Array(50).fill(10));
    // Window means on the way up: (10+10+100)/3 = 40 > 3 × 10 = 30 → burst on the first high sample.
    expect(run(d, [100])).toEqual([true]);
    expect(run(d, Array(20).fill(100)).every(Boolean)).toBe(true);
    expect(d.duration).toBe(21);
    // The baseline did not learn the burst.
    expect(d.baseline).toBe(10);
    // Down: means 70, 40, 10 against endK × baseline = 2 × 10 = 20 → still, still, over.
    expect(run(d, [10, 10, 10])).toEqual([true, true, false]);
    expect(d.duration).toBe(0);
  });

  it('has hysteresis: a level between endK × and k × baseline neither starts nor ends a burst', () => {
    const d = new BurstDetector(OPTS);
    run(d, Array(50).fill(10));
    // 25 is between 20 and 30, and above the floor.
    expect(run(d, Array(20).fill(25)).some(Boolean)).toBe(false);
    d.reset();
    run(d, Array(50).fill(10));
    run(d, Array(3).fill(100));
    expect(run(d, Array(20).fill(25)).every(Boolean)).toBe(true);
  });

  it('ignores relative jumps that stay under the absolute floor', () => {
    const d = new BurstDetector({ ...OPTS, floor: 1 });
    run(d, Array(50).fill(0.1));
    expect(run(d, Array(10).fill(0.9)).some(Boolean)).toBe(false);
    expect(run(d, [5])).toEqual([true]);
  });

  it('a zero baseline bursts on anything above the floor', () => {
    const opts = { ...OPTS, window: 1 };
    const below = new BurstDetector(opts);
    run(below, Array(10).fill(0));
    expect(run(below, [15])).toEqual([false]);
    const above = new BurstDetector(opts);
    run(above, Array(10).fill(0));
    expect(run(above, [25])).toEqual([true]);
  });

  it('ends at the end floor even when the baseline is far lower', () => {
    const d = new BurstDetector({ window: 1, alpha: 0.1, k: 2, floor: 10, endFloor: 5 });
    run(d, Array(5).fill(0.001));
    expect(run(d, [20, 8, 6, 4])).toEqual([true, true, true, false]);
  });

  it('does not fire while warming up', () => {
    const d = new BurstDetector({ ...OPTS, warmup: 5 });
    expect(run(d, [10, 1000, 1000, 1000, 1000])).toEqual([false, false, false, false, false]);
  });

  it('ignores non-finite samples', () => {
    const d = new BurstDetector(OPTS);
    run(d, Array(10).fill(10));
    expect(run(d, [NaN, Infinity])).toEqual([false, false]);
    expect(d.level).toBe(10);
  });

  it('reset starts over', () => {
    const d = new BurstDetector(OPTS);
    run(d, Array(10).fill(10));
    run(d, [1000]);
    expect(d.active).toBe(true);
    d.reset();
    expect([d.active, d.baseline, d.duration]).toEqual([false, undefined, 0]);
    expect(d.level).toBeNaN();
  });

  it('refuses inconsistent options', () => {
    expect(() => new BurstDetector({ ...OPTS, k: 1 })).toThrow(/k must be > 1/);
    expect(() => new BurstDetector({ ...OPTS, endK: 4 })).toThrow(/endK must be in \[1, k\]/);
    expect(() => new BurstDetector({ ...OPTS, floor: -1 })).toThrow(/floor must be ≥ 0/);
    expect(() => new BurstDetector({ ...OPTS, endFloor: 30 })).toThrow(/endFloor must be in \[0, floor\]/);
    expect(() => new BurstDetector({ ...OPTS, warmup: 0 })).toThrow(/warmup must be an integer ≥ 1/);
    expect(() => new BurstDetector({ ...OPTS, window: 0, warmup: 1 })).toThrow(/capacity/);
    expect(() => new BurstDetector({ ...OPTS, alpha: 0 })).toThrow(/alpha/);
  });
});
