/** The decision engine's public surface: the strategy contract, the default rule, guardrails and the closed loop. */
export {
  DEFAULT_OBJECTIVE,
  restoreNudge,
  type DecideInput,
  type KnobValues,
  type NudgeGoal,
  type Objective,
  type Strategy,
  type StrategyNudge,
  type StrategyTarget,
} from './strategy.js';
export {
  CPU_WEIGHT_ACTION,
  NOISY_NEIGHBOR_RULE,
  NoisyNeighborRule,
  stepWeight,
} from './heuristic/noisy-neighbor.js';
export {
  DEFAULT_CGROUP_ROOTS,
  Guardrails,
  type ActionBounds,
  type CheckContext,
  type CheckResult,
  type GuardrailsOptions,
  type GuardrailsStatus,
  type KnobBounds,
  type RefusalCode,
} from './guardrails.js';
export {
  ClosedLoop,
  improvementOf,
  median,
  metricValue,
  objectiveOf,
  type ClosedLoopOptions,
  type PenaltySource,
  type Verdict,
} from './closed-loop.js';
export { HoldBook, type Hold, type HoldChange, type StrategyHold } from './holds.js';
export {
  DecisionEngine,
  type Decision,
  type DecisionEngineOptions,
  type EngineDecisionKind,
  type EngineRefusalCode,
  type TickInput,
} from './engine.js';
