/** The Prometheus metrics the futex signal feeds: its wait-time histograms, per target and for the host. */
import { latencyHistograms, type MetricDecl } from '../metrics.js';

export const FUTEX_METRICS: readonly MetricDecl[] = latencyHistograms(
  'futex',
  'futex_wait',
  'Time blocked in one futex wait',
);
