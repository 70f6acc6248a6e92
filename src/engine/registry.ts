/** The strategies a config asks for, in the order the engine consults them. One line per strategy. */
import type { Config } from '../config/types.js';
import { NoisyNeighborRule } from './heuristic/noisy-neighbor.js';
import type { Strategy } from './strategy.js';

export function createStrategies(config: Config): Strategy[] {
  return [new NoisyNeighborRule(config.policy.noisyNeighbor)];
}
