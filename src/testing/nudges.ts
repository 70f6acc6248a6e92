/** Sample nudges, and the rule settings behind them, for tests of the rules and of what judges and applies nudges. */
import type { NoisyNeighborPolicy } from '../config/types.js';
import type { StrategyNudge } from '../engine/strategy.js';

/** A cpu_weight step on `batch`, judged by `web`'s run-queue p99, as the noisy-neighbor rule proposes one. */
export const CPU_WEIGHT_NUDGE: StrategyNudge = {
  kind: 'set',
  action: 'cpu_weight',
  target: 'batch',
  desired: { weight: 75 },
  reason: 'test',
  rule: 'noisy-neighbor',
  evidence: {},
  objective: { targets: ['web'], metric: 'runqlat.p99', better: 'lower', unit: 'us' },
};

/** The noisy-neighbor rule with a 4 ms p99 threshold and short streaks, so a test reaches each step in a few ticks. */
export const NOISY_NEIGHBOR_POLICY: NoisyNeighborPolicy = {
  enabled: true,
  p99ThresholdUs: 4_000,
  waitShareThreshold: 1,
  triggerTicks: 3,
  eventDriven: false,
  calmTicks: 5,
  calmFraction: 0.75,
  releaseBelowCpus: 0.1,
  stepFraction: 0.25,
  minWeight: 10,
  idleAtFloor: true,
  maxNoisyPerStep: 1,
};
