/**
 * Cost of the per-tick aggregation for one target: `npx vitest bench --run src/stats`.
 */
import { bench, describe } from 'vitest';
import { BurstDetector } from './burst.js';
import { Ewma } from './ewma.js';
import { histAdd, histDelta, histPercentiles } from './histogram.js';
import { RollingWindow } from './rolling-window.js';

const BUCKETS = 32;
const prev = new Float64Array(BUCKETS);
const cur = new Float64Array(BUCKETS);
for (let v = 1; v < 1e6; v *= 1.01) histAdd(cur, v, 3);
const win = new Float64Array(BUCKETS);
const qs = new Float64Array([0.5, 0.9, 0.99]);
const out = new Float64Array(3);

describe('per tick, per target', () => {
  bench('histDelta + p50/p90/p99 (32 buckets)', () => {
    histDelta(cur, prev, win);
    histPercentiles(win, qs, out);
  });

  const e = new Ewma(0.3);
  let x = 0;
  bench('Ewma.update', () => {
    e.update((x = (x + 7) % 1000));
  });

  const w = new RollingWindow(60);
  bench('RollingWindow(60) push + mean + p99', () => {
    w.push((x = (x + 7) % 1000));
    w.mean();
    w.percentile(0.99);
  });

  const d = new BurstDetector({ window: 5, alpha: 0.05, k: 3, floor: 100 });
  bench('BurstDetector.update', () => {
    d.update((x = (x + 7) % 1000));
  });
});
