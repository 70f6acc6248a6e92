/** The learned strategy's public surface: the learner, its modes, its model store and CLI, the simulator and bench. */
export {
  DEFAULT_EXPLORATION,
  LEARNED_RULE_PREFIX,
  LEARNED_STRATEGY,
  LearnedStrategy,
  isLearnedNudge,
  type ActingPredicate,
  type ArmEstimate,
  type ExplorationOptions,
  type HotPolicy,
  type LearnedNudge,
  type LearnerChoice,
  type LearnerOptions,
  type LearnerOutcome,
} from './learner.js';
export {
  NOOP_ARM,
  onBusiestNoisy,
  templatesOf,
  type ArmSettings,
  type BusyTarget,
  type Candidate,
  type CandidateContext,
  type CandidateTemplate,
  type HotTarget,
  type LearnerArm,
  type Proposal,
  type RegisteredAction,
} from './candidates.js';
export {
  DEFAULT_FEATURE_GROUPS,
  extractFeatures,
  featureNames,
  type FeatureContext,
  type FeatureGroup,
  type Features,
} from './features.js';
export { DEFAULT_REWARD, lostFraction, rewardOf, type OutcomeMeasure, type RewardOptions } from './reward.js';
export { CanaryStrategy, ShadowStrategy, type ModeOptions, type ShadowEvent } from './modes.js';
export { MODEL_VERSION, adaptModel, newModel, type LearnerModel } from './model.js';
export { MODEL_FILE, ModelStore, loadModel, modelPath, parseModel, resetModel, saveModel, type LoadResult, type LoadStatus } from './model-store.js';
export { modelReset, modelShow } from './cli.js';
export { createLearner, modeOptions, withStrategyKind, type LearnerDeps, type StrategyDeps } from './factory.js';
export { runLearnerBench, type LearnerBenchResult, type LearnerBenchRow } from './bench.js';
export { Prng, type PrngState } from './prng.js';
