/** The strategies a config asks for, in the order the engine consults them. One line per strategy. */
import type { Config } from '../config/types.js';
import { CpusetSpreadRule } from './heuristic/cpuset-spread.js';
import { IoPrefetchRule } from './heuristic/io-prefetch.js';
import { NoisyNeighborRule } from './heuristic/noisy-neighbor.js';
import { NumaRebalanceRule } from './heuristic/numa-rebalance.js';
import { PressureBackoffRule } from './heuristic/pressure-backoff.js';
import { withStrategyKind, type StrategyDeps } from './learned/factory.js';
import type { Strategy } from './strategy.js';

/**
 * `deps` serves the learned strategy (strategy.kind other than heuristic): where its model persists, which actions
 * are registered (and the learner arms they declare), whether this is a dry run, and a logger.
 */
export function createStrategies(config: Config, deps: StrategyDeps): Strategy[] {
  const rules: Strategy[] = [
    new NoisyNeighborRule(config.policy.noisyNeighbor),
    new CpusetSpreadRule(config.policy.cpusetSpread),
    new NumaRebalanceRule(config.policy.numaRebalance),
    new PressureBackoffRule(config.policy.pressureBackoff),
    new IoPrefetchRule(config.policy.ioPrefetch),
  ];
  return withStrategyKind(config, rules, deps);
}
