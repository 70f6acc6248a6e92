/**
 * Builds the learner from the configuration: the thresholds it shares with the noisy-neighbor rule, the closed
 * loop's window and penalty, guardrails' cooldown and bounds, the strategy section's seed and exploration, the
 * model from the state directory, and the callbacks that persist the model and report shadow choices on the bus.
 * The only place the learner meets I/O.
 */
import type { Config } from '../../config/types.js';
import { DEFAULT_STRATEGY } from '../../config/defaults.js';
import { channels, publish } from '../../core/events.js';
import { silentLogger, type Logger } from '../../core/log.js';
import type { Strategy } from '../strategy.js';
import type { RegisteredAction } from './candidates.js';
import { LearnedStrategy, type LearnerOptions } from './learner.js';
import type { LearnerModel } from './model.js';
import { ModelStore } from './model-store.js';
import { CanaryStrategy, ShadowStrategy, type ModeOptions, type ShadowEvent } from './modes.js';

export interface LearnerDeps {
  /** The registered actions, in the agent's order: the learner's arms are the ones they declare. */
  actions: readonly RegisteredAction[];
  /** Where the model persists; without it the learner starts fresh and keeps nothing. */
  stateDir?: string;
  log?: Logger;
  /** A dry run: decide from the saved model, learn and save nothing. */
  dryRun?: boolean;
}

/**
 * The learner's settings that come from the configuration alone: what a learner built from `config` decides with,
 * before any model, persistence or logging.
 */
export function learnerSettings(
  config: Config,
  actions: readonly RegisteredAction[],
): Pick<LearnerOptions, 'actions' | 'hot' | 'step' | 'windowTicks' | 'seed' | 'exploration'> {
  const s = config.strategy ?? DEFAULT_STRATEGY;
  const nn = config.policy.noisyNeighbor;
  return {
    actions,
    hot: {
      p99ThresholdUs: nn.p99ThresholdUs,
      triggerTicks: nn.triggerTicks,
      calmTicks: nn.calmTicks,
      calmFraction: nn.calmFraction,
    },
    step: { stepFraction: nn.stepFraction, minWeight: nn.minWeight },
    windowTicks: config.closedLoop.windowTicks,
    seed: s.seed,
    exploration: { ...s.exploration },
  };
}

export function createLearner(config: Config, deps: LearnerDeps): LearnedStrategy {
  const log = (deps.log ?? silentLogger).child({ strategy: 'learned' });
  const store = deps.stateDir !== undefined ? new ModelStore(deps.stateDir) : undefined;

  let model: LearnerModel | undefined;
  if (store !== undefined) {
    const r = store.load();
    if (r.status === 'loaded') {
      model = r.model;
      log.info({ path: r.path, updates: r.model!.updates }, 'learned model loaded');
    } else if (r.status === 'missing') {
      log.info({ path: r.path }, 'no learned model yet: starting fresh');
    } else {
      log.warn({ path: r.path, detail: r.detail }, `learned model ${r.status}: starting fresh; the next save replaces it`);
    }
  }

  let saveFailed = false;
  return new LearnedStrategy({
    ...learnerSettings(config, deps.actions),
    ...(model !== undefined ? { model } : {}),
    frozen: deps.dryRun === true,
    onModelChange: (m) => {
      if (store === undefined) return;
      try {
        store.save(m);
        if (saveFailed) log.info({ path: store.path }, 'learned model saved again');
        saveFailed = false;
      } catch (e) {
        // Learning goes on in memory; a full disk must not stop the agent. Logged once per failing stretch.
        if (!saveFailed) log.warn({ err: e }, 'could not save the learned model; keeping it in memory');
        saveFailed = true;
      }
    },
    onChoice: (c) =>
      log.debug({ arm: c.arm, acting: c.acting, uniform: c.uniform, chosenAt: c.time, explore: c.explorationScale, estimates: c.estimates }, 'learner choice'),
    onOutcome: (o) => log.debug(o, 'learner outcome'),
  });
}

/** Shadow choices go on the decision channel (kind 'shadow') and to the debug log. */
export function modeOptions(log: Logger = silentLogger): ModeOptions {
  return {
    onShadow: (e: ShadowEvent) => {
      publish(channels.decision, () => e);
      log.debug({ decision: e.id, action: e.action, target: e.target }, e.reason);
    },
    onLearnerError: (e) => log.error({ err: e }, 'learned strategy failed this tick; the rules went on without it'),
  };
}

/** What the learned strategy needs besides the config; the rules need none of it. */
export interface StrategyDeps {
  /** Where the learned model persists; without it the learner starts fresh each run. */
  stateDir?: string;
  /**
   * The registered actions (the caller's action list, e.g. ACTIONS: the engine does not know the actions), with the
   * learner arms they declare.
   */
  actions: readonly RegisteredAction[];
  /** A dry run: the learner decides from the saved model but learns and saves nothing. */
  dryRun?: boolean;
  log?: Logger;
}

/**
 * The strategies for config.strategy.kind, given the default rules: the rules alone (heuristic), the learner
 * beside them (shadow), acting on the canary targets (canary), or on every target (learned). In the last two the
 * rules keep whatever the learner does not cover: other actions, other targets, and every restore.
 */
export function withStrategyKind(config: Config, rules: readonly Strategy[], deps: StrategyDeps): Strategy[] {
  const s = config.strategy ?? DEFAULT_STRATEGY;
  if (s.kind === 'heuristic') return [...rules];
  const learner = createLearner(config, {
    actions: deps.actions,
    ...(deps.stateDir !== undefined ? { stateDir: deps.stateDir } : {}),
    ...(deps.log !== undefined ? { log: deps.log } : {}),
    ...(deps.dryRun !== undefined ? { dryRun: deps.dryRun } : {}),
  });
  const opts = modeOptions(deps.log);
  switch (s.kind) {
    case 'shadow':
      return [new ShadowStrategy(rules, learner, opts)];
    case 'canary':
      return [new CanaryStrategy(rules, learner, s.canaryTargets, opts)];
    case 'learned':
      return [new CanaryStrategy(rules, learner, 'all', opts)];
  }
}
