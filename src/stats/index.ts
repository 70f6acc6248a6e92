/**
 * Pure aggregation used on the tick path: log2 histograms from kernel counters, EWMAs, rolling windows and burst
 * detection. Nothing here touches the system or allocates per sample.
 */
export {
  bucketHigh,
  bucketLow,
  bucketOf,
  histAdd,
  histPercentile,
  histTotal,
  type Counts,
  type MutableCounts,
} from './histogram.js';
export { Ewma } from './ewma.js';
export { RollingWindow } from './rolling-window.js';
export { BurstDetector, type BurstOptions } from './burst.js';
