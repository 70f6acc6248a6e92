/** Sample nudges for tests of what judges and applies them. */
import type { StrategyNudge } from '../engine/strategy.js';

/** A cpu_weight step on `batch`, judged by `web`'s run-queue p99, as the noisy-neighbor rule proposes one. */
export const CPU_WEIGHT_NUDGE: StrategyNudge = {
  action: 'cpu_weight',
  target: 'batch',
  desired: { weight: 75 },
  reason: 'test',
  rule: 'noisy-neighbor',
  evidence: {},
  objective: { targets: ['web'], metric: 'runqlat.p99', better: 'lower', unit: 'us' },
};
