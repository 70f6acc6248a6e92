/**
 * The learned strategy: a contextual bandit (linear Thompson sampling, one Bayesian linear arm per candidate
 * template plus "do nothing") that picks one nudge while a protect target is hurting, and learns from what the
 * closed loop measured afterwards. See README.md for why this model and how exploration stays safe.
 *
 * One experiment at a time: after choosing, the learner waits for its outcome (the engine's feedback for a nudge,
 * its own before/after comparison for "do nothing", or the sign that the nudge was never applied) before choosing
 * again, so every outcome is credited to exactly one choice. It never reads a clock or touches a file: time comes
 * from the snapshots, randomness from a seeded generator, and persistence from the onModelChange callback.
 */
import { TunerError } from '../../core/errors.js';
import type { SetNudge, TickSnapshot } from '../../core/types.js';
import { improvementOf, median, metricValue } from '../closed-loop.js';
import { formatUs } from '../format.js';
import {
  knobValuesOf,
  type DecideInput,
  type NudgeGoal,
  type Objective,
  type Strategy,
  type StrategyFeedback,
  type StrategyNudge,
  type StrategyTarget,
} from '../strategy.js';
import { BayesLinearArm } from './bayes-linear.js';
import {
  NOOP_ARM,
  isSkip,
  templatesOf,
  type ArmSettings,
  type Candidate,
  type CandidateContext,
  type CandidateTemplate,
  type HotTarget,
  type RegisteredAction,
} from './candidates.js';
import { DEFAULT_FEATURE_GROUPS, extractFeatures, featureNames, type FeatureGroup } from './features.js';
import { adaptModel, newModel, type LearnerModel } from './model.js';
import { Prng } from './prng.js';
import { DEFAULT_REWARD, lostFraction, rewardOf, type RewardOptions } from './reward.js';

export const LEARNED_STRATEGY = 'learned';
/** Every learned nudge's rule is `learned:<arm>`, so closed-loop penalties fall on one arm and one target. */
export const LEARNED_RULE_PREFIX = 'learned:';

export function isLearnedNudge(n: { rule: string }): boolean {
  return n.rule.startsWith(LEARNED_RULE_PREFIX);
}

/** When a protect target counts as hurting (explore) or calm (restore); the noisy-neighbor rule's thresholds. */
export interface HotPolicy {
  p99ThresholdUs: number;
  triggerTicks: number;
  calmTicks: number;
  calmFraction: number;
}

export interface ExplorationOptions {
  /** Spread of the Thompson draws around the posterior, in posterior standard deviations, before any outcome. */
  scale: number;
  /** Multiplies the scale once per outcome learned. */
  decay: number;
  /** Floor of the scale, so a changed workload can still be noticed. */
  minScale: number;
  /**
   * Share of choices made uniformly at random among the eligible arms, ignoring the model. Their outcomes carry
   * `uniform: true`: with a known chance per arm, they are what an offline replay can judge any policy on.
   */
  uniformShare: number;
}

export const DEFAULT_EXPLORATION: ExplorationOptions = { scale: 1, decay: 0.98, minScale: 0.05, uniformShare: 0 };

export interface LearnerOptions {
  /**
   * Actions the agent has registered, in its order: the arms they declare are the learner's, ties broken in this
   * order; templates naming other actions are never offered.
   */
  actions: readonly RegisteredAction[];
  hot: HotPolicy;
  /** The closed loop's window: "do nothing" is judged over the same number of ticks before and after. */
  windowTicks: number;
  seed: number;
  exploration?: Partial<ExplorationOptions>;
  reward?: Partial<RewardOptions>;
  /** The noisy-neighbor rule's weight step, for the arms that take it (default: half, floor 10). */
  step?: ArmSettings['step'];
  /** Instead of the actions' declared arms (tests); still offered only for registered actions. */
  templates?: readonly CandidateTemplate[];
  featureGroups?: readonly FeatureGroup[];
  /** Prior standard deviation of each weight, in reward units (default 0.5). */
  weightSd?: number;
  /** Prior guess of the reward noise, in reward units (default 0.2). */
  noiseSd?: number;
  /**
   * Decide from the model but learn nothing: for a dry run, whose verdicts measure knobs that never moved and would
   * teach every arm that it does nothing.
   */
  frozen?: boolean;
  /** A model loaded from the state directory; adapted to the current features and arms. */
  model?: LearnerModel;
  /** Called after every outcome learned, with the model to persist. */
  onModelChange?: (model: LearnerModel) => void;
  /** Called for every choice, acting or not. */
  onChoice?: (choice: LearnerChoice) => void;
  /** Called for every outcome learned. */
  onOutcome?: (outcome: LearnerOutcome) => void;
  name?: string;
}

export interface ArmEstimate {
  arm: string;
  /** Posterior mean of the reward in this context. */
  mean: number;
  /** Posterior standard deviation of that mean. */
  sd: number;
  /** The Thompson draw; only for eligible arms. */
  draw?: number;
  /** The exploration scale the draw used. */
  explore?: number;
  eligible: boolean;
  /** Why the arm was not offered. */
  skip?: string;
  /** The move it would make, when eligible. */
  move?: string;
  target?: string;
}

export interface LearnerChoice {
  time: number;
  arm: string;
  /** False when the choice is only logged (shadow, or a non-canary target). */
  acting: boolean;
  /** The nudge of an action arm (also when not acting, for the log). */
  nudge?: LearnedNudge;
  estimates: ArmEstimate[];
  features: Record<string, number>;
  /** The chosen arm's exploration scale. */
  explorationScale: number;
  /** Drawn uniformly at random among the eligible arms (exploration.uniformShare), not from the model. */
  uniform: boolean;
  hot: HotTarget[];
}

export interface LearnerOutcome {
  time: number;
  /** The time of the tick the arm was chosen in (of the nudge's proposal, for another strategy's). */
  chosenAt?: number;
  arm: string;
  target?: string;
  decisionId?: string;
  reward: number;
  improvement: number | null;
  lost: number;
  /** 'self' when the learner judged "do nothing" itself. */
  verdict: 'kept' | 'revert' | 'self';
  /** False when learned from another strategy's nudge (shadow and canary modes). */
  onPolicy: boolean;
  /** The context the arm was chosen in (feature name → value, bias left out). */
  features: Record<string, number>;
  /** The arms that could have been chosen; only for the learner's own choices. */
  eligible?: string[];
  /** The arm was drawn uniformly at random among `eligible`: a logged event an offline replay can use. */
  uniform?: boolean;
}

/** One logged choice and what it earned, as an offline replay reads it (a LearnerOutcome has every field). */
export interface LoggedOutcome {
  arm: string;
  eligible: readonly string[];
  features: Readonly<Record<string, number>>;
  reward: number;
}

/** A learned nudge carries the estimates behind it, for `explain`. An arm always moves a knob; restores are no arm's. */
export interface LearnedNudge extends SetNudge, NudgeGoal {
  learner: {
    arm: string;
    explorationScale: number;
    estimates: ArmEstimate[];
    features: Record<string, number>;
  };
}

/** Decides whether a choice on `target` (undefined for "do nothing") is acted on or only logged. */
export type ActingPredicate = (target: string | undefined) => boolean;

const ALWAYS: ActingPredicate = () => true;

/** Ticks past the window a nudge's feedback may lag (pending report, a tick or two of jitter) before giving up. */
const FEEDBACK_SLACK_TICKS = 3;
const BACKOFF_FIRST_TICKS = 4;
const BACKOFF_MAX_TICKS = 256;

interface Pending {
  arm: string;
  x: Float64Array;
  /** How it was chosen, for the outcome log. */
  eligible: string[];
  uniform: boolean;
  target: string;
  action: string;
  nudge: LearnedNudge;
  tick: number;
  time: number;
  noisy: string[];
}

interface Experiment {
  kind: 'nudge' | 'noop' | 'shadow';
  tick: number;
  time: number;
  pending?: Pending;
  checked?: boolean;
  x?: Float64Array;
  eligible?: string[];
  uniform?: boolean;
  baseline?: number[];
  objective?: Objective;
}

export class LearnedStrategy implements Strategy {
  readonly name: string;
  readonly historyTicks: number;
  readonly #o: LearnerOptions;
  readonly #exploration: ExplorationOptions;
  readonly #reward: RewardOptions;
  readonly #templates: readonly CandidateTemplate[];
  readonly #groups: readonly FeatureGroup[];
  readonly #names: string[];
  readonly #arms = new Map<string, BayesLinearArm>();
  readonly #prng: Prng;
  #model: LearnerModel;
  #tick = 0;
  /** Recent snapshots, oldest first, unique by time: the after-windows the engine's history no longer has. */
  readonly #buffer: TickSnapshot[] = [];
  readonly #bufferMax: number;
  #experiment: Experiment | undefined;
  /** Nudges proposed and not yet answered, by identity (the engine hands back the same object). */
  readonly #awaiting = new Map<StrategyNudge, Pending>();
  readonly #backoff = new Map<string, { until: number; next: number }>();

  constructor(opts: LearnerOptions) {
    if (!Number.isInteger(opts.windowTicks) || opts.windowTicks < 1) {
      throw new TunerError('CONFIG_INVALID', `create learned strategy: windowTicks must be an integer ≥ 1, got ${opts.windowTicks}`);
    }
    this.#o = opts;
    this.name = opts.name ?? LEARNED_STRATEGY;
    this.#exploration = { ...DEFAULT_EXPLORATION, ...opts.exploration };
    this.#reward = { ...DEFAULT_REWARD, ...opts.reward };
    const available = new Set(opts.actions.map((a) => a.name));
    const all = opts.templates ?? templatesOf(opts.actions, { step: opts.step ?? { stepFraction: 0.5, minWeight: 10 } });
    const seen = new Set<string>([NOOP_ARM]);
    for (const t of all) {
      if (seen.has(t.name)) throw new TunerError('INTERNAL', `create learned strategy: two templates are named ${t.name}`);
      seen.add(t.name);
    }
    this.#templates = all.filter((t) => available.has(t.action));
    this.#groups = opts.featureGroups ?? DEFAULT_FEATURE_GROUPS;
    this.#names = featureNames(this.#groups);
    const armNames = [NOOP_ARM, ...this.#templates.map((t) => t.name)];
    const prior = { weightSd: opts.weightSd ?? 0.5, noiseSd: opts.noiseSd ?? 0.2 };
    this.#model =
      opts.model !== undefined ? adaptModel(opts.model, this.#names, armNames) : newModel(this.#names, armNames, prior);
    for (const a of armNames) {
      this.#arms.set(a, new BayesLinearArm(this.#names.length, this.#model.arms[a]!, this.#model.prior));
    }
    this.#prng = this.#model.prng !== null ? Prng.fromState(this.#model.prng) : Prng.fromSeed(opts.seed);
    const h = opts.hot;
    this.historyTicks = Math.max(h.triggerTicks, h.calmTicks, opts.windowTicks) - 1;
    this.#bufferMax = 3 * opts.windowTicks + FEEDBACK_SLACK_TICKS + 2;
  }

  /** The actions the learner may take (the registered ones its templates name). */
  get actions(): string[] {
    return [...new Set(this.#templates.map((t) => t.action))];
  }

  /** The arms offered, "do nothing" first. */
  get arms(): string[] {
    return [...this.#arms.keys()];
  }

  /** The live model (what onModelChange persists). */
  get model(): LearnerModel {
    this.#model.prng = this.#prng.state();
    return this.#model;
  }

  /**
   * How widely `arm` is drawn around its posterior, in posterior standard deviations. It decays with that arm's own
   * outcomes: an arm with evidence is explored less, one never tried is still drawn in full.
   */
  explorationScale(arm: string): number {
    const e = this.#exploration;
    const n = this.#model.arms[arm]?.n ?? 0;
    return Math.max(e.minScale, e.scale * e.decay ** n);
  }

  decide(input: DecideInput): StrategyNudge[] {
    return this.choose(input, ALWAYS).nudges;
  }

  /**
   * One tick: progress the running experiment, restore once calm, and while a protect target is hurting and no
   * experiment runs, choose. `acting` says whether a choice is carried out or only reported (shadow, canary).
   */
  choose(input: DecideInput, acting: ActingPredicate): { nudges: StrategyNudge[]; choice?: LearnerChoice } {
    this.#tick++;
    this.#remember(input);
    this.#progress(input);

    const protect = input.targets.filter((t) => t.role === 'protect');
    const noisy = input.targets.filter((t) => t.role === 'noisy');
    const hot = this.#hot(input, protect);
    if (hot.length === 0) {
      return { nudges: this.#calm(input, protect) ? this.#restores(input, acting) : [] };
    }
    if (this.#experiment !== undefined) return { nudges: [] };
    return this.#choose(input, hot, protect, noisy, acting);
  }

  /** The engine's verdict on a nudge this learner proposed. */
  feedback(outcome: StrategyFeedback): void {
    this.#learn(outcome, true);
  }

  /**
   * A verdict on another strategy's nudge (shadow and canary modes). A nudge matching one of the templates' actions
   * teaches that arm: a per-arm regression model does not care which policy chose the action.
   */
  observe(outcome: StrategyFeedback): void {
    if (isLearnedNudge(outcome.nudge)) {
      this.#learn(outcome, true);
      return;
    }
    this.#learn(outcome, false);
  }

  /**
   * Whether the running experiment is the learner's change of `action` on `target`, still awaiting its verdict. Until
   * the verdict, that change is nobody else's to undo: a rule's restore would end the experiment unjudged.
   */
  judging(action: string, target: string): boolean {
    const p = this.#experiment?.pending;
    return p !== undefined && p.action === action && p.target === target;
  }

  /** The learner's estimate for every arm in this snapshot, without drawing or choosing; for `explain` and tests. */
  estimates(snapshot: TickSnapshot, targets: readonly StrategyTarget[]): ArmEstimate[] {
    const x = this.#features(snapshot, targets);
    return [...this.#arms.entries()].map(([arm, m]) => ({ arm, ...m.estimate(x), eligible: true }));
  }

  // ---- choosing ---------------------------------------------------------------------------------------------------

  #choose(
    input: DecideInput,
    hot: HotTarget[],
    protect: StrategyTarget[],
    noisy: StrategyTarget[],
    acting: ActingPredicate,
  ): { nudges: StrategyNudge[]; choice: LearnerChoice } {
    const now = input.snapshot.time;
    const x = this.#features(input.snapshot, input.targets, hot);
    const ctx: CandidateContext = { input, hot, protect, noisy };
    const estimates: ArmEstimate[] = [];
    const candidates = new Map<string, { template: CandidateTemplate; c: Candidate }>();

    const noop = this.#arms.get(NOOP_ARM)!;
    estimates.push({ arm: NOOP_ARM, ...noop.estimate(x), eligible: true });
    for (const t of this.#templates) {
      const e = this.#arms.get(t.name)!.estimate(x);
      const p = t.propose(ctx);
      const skip = isSkip(p) ? p.skip : this.#refusal(t, p, input);
      if (skip !== undefined) {
        estimates.push({ arm: t.name, ...e, eligible: false, skip });
        continue;
      }
      const c = p as Candidate;
      candidates.set(t.name, { template: t, c });
      estimates.push({ arm: t.name, ...e, eligible: true, move: c.move, target: c.target });
    }
    const { chosen, uniform } = this.#draw(estimates);
    const eligible = estimates.filter((e) => e.eligible).map((e) => e.arm);
    const scale = chosen.explore!;
    const features = this.#featureRecord(x);
    const picked = candidates.get(chosen.arm);
    const nudge = picked !== undefined ? this.#nudge(picked.template, picked.c, hot, estimates, features, scale) : undefined;
    const act = acting(picked?.c.target);
    const choice: LearnerChoice = {
      time: now,
      arm: chosen.arm,
      acting: act,
      estimates,
      features,
      explorationScale: scale,
      uniform,
      hot,
    };
    if (nudge !== undefined) choice.nudge = nudge;
    this.#o.onChoice?.(choice);

    const tick = this.#tick;
    if (!act) {
      this.#experiment = { kind: 'shadow', tick, time: now };
      return { nudges: [], choice };
    }
    if (nudge === undefined) {
      const objective = objectiveFor(hot);
      // The hot ticks that made the choice, as a nudge's verdict is judged against: not calm ones before the trouble.
      const baseline = this.#buffer
        .slice(-(objective.baselineTicks ?? this.#o.windowTicks))
        .map((s) => metricValue(s, objective))
        .filter((v): v is number => v !== undefined);
      this.#experiment = { kind: 'noop', tick, time: now, x, baseline, objective, eligible, uniform };
      return { nudges: [], choice };
    }
    const pending: Pending = {
      arm: chosen.arm,
      x,
      eligible,
      uniform,
      target: nudge.target,
      action: nudge.action,
      nudge,
      tick,
      time: now,
      noisy: noisy.map((t) => t.name),
    };
    this.#awaiting.set(nudge, pending);
    this.#experiment = { kind: 'nudge', tick, time: now, pending };
    return { nudges: [nudge], choice };
  }

  /**
   * Thompson draws for the eligible arms, in a fixed order (noop, then templates) so the same inputs consume the same
   * random numbers; the highest draw wins. With a uniform share, that share of choices instead takes an eligible arm
   * at random (one more number, drawn only when the share is set, so seeded runs without it replay as before).
   */
  #draw(estimates: ArmEstimate[]): { chosen: ArmEstimate; uniform: boolean } {
    let best: ArmEstimate | undefined;
    const eligible: ArmEstimate[] = [];
    for (const e of estimates) {
      if (!e.eligible) continue;
      eligible.push(e);
      e.explore = this.explorationScale(e.arm);
      e.draw = e.mean + e.explore * e.sd * this.#prng.normal();
      if (best === undefined || e.draw > best.draw!) best = e;
    }
    const share = this.#exploration.uniformShare;
    if (share > 0 && this.#prng.uniform() < share) {
      return { chosen: eligible[Math.min(eligible.length - 1, Math.floor(this.#prng.uniform() * eligible.length))]!, uniform: true };
    }
    return { chosen: best!, uniform: false };
  }

  /**
   * The arm this learner would choose in a logged context, among `eligible` (an offline replay: no snapshot, no
   * nudge, no experiment). The same draws as a live choice.
   */
  chooseArm(features: Readonly<Record<string, number>>, eligible: readonly string[]): string {
    const x = this.#vector(features);
    const estimates: ArmEstimate[] = [...this.#arms.entries()].map(([arm, m]) => ({ arm, ...m.estimate(x), eligible: eligible.includes(arm) }));
    if (!estimates.some((e) => e.eligible)) {
      throw new TunerError('INTERNAL', `choose an arm: none of ${eligible.join(', ') || '(none)'} is one of this learner's arms (${this.arms.join(', ')})`);
    }
    return this.#draw(estimates).chosen.arm;
  }

  /** Learn a logged outcome: `arm` earned `reward` in the context `features` (an offline replay). */
  learnArm(arm: string, features: Readonly<Record<string, number>>, reward: number, time = 0): void {
    if (!this.#arms.has(arm)) throw new TunerError('INTERNAL', `learn an outcome: ${arm} is not one of this learner's arms (${this.arms.join(', ')})`);
    this.#update(arm, this.#vector(features), reward, time);
  }

  /** A feature record (as logged) back into the model's vector: bias first, absent features 0. */
  #vector(features: Readonly<Record<string, number>>): Float64Array {
    const x = new Float64Array(this.#names.length);
    this.#names.forEach((n, i) => {
      x[i] = i === 0 ? 1 : (features[n] ?? 0);
    });
    return x;
  }

  /**
   * Why this candidate would not be applied: the engine's guardrails (deny list, the closed loop's penalty, bounds,
   * cooldown, budget) answer for themselves; the learner adds only its own back-off after a change that never took.
   */
  #refusal(t: CandidateTemplate, c: Candidate, input: DecideInput): string | undefined {
    const b = this.#backoff.get(armKey(t.name, c.target));
    if (b !== undefined && b.until > this.#tick) return `not applied on ${c.target} last time; retry in ${b.until - this.#tick} ticks`;
    const why = input.refusal?.({ kind: 'set', action: t.action, target: c.target, desired: c.desired, reason: '', rule: `${LEARNED_RULE_PREFIX}${t.name}`, evidence: {} });
    return why === undefined ? undefined : `guardrails would refuse: ${why}`;
  }

  #nudge(
    t: CandidateTemplate,
    c: Candidate,
    hot: HotTarget[],
    estimates: ArmEstimate[],
    features: Record<string, number>,
    scale: number,
  ): LearnedNudge {
    const p = this.#o.hot;
    const worst = hot[0]!;
    const evidence: Record<string, number> = {
      p99Us: worst.p99,
      thresholdUs: p.p99ThresholdUs,
      hotTargets: hot.length,
    };
    for (const e of estimates) {
      evidence[`est.${e.arm}`] = round(e.mean);
      evidence[`sd.${e.arm}`] = round(e.sd);
      if (e.draw !== undefined) evidence[`draw.${e.arm}`] = round(e.draw);
      if (e.explore !== undefined) evidence[`explore.${e.arm}`] = round(e.explore);
    }
    for (const [k, v] of Object.entries(features)) if (v !== 0) evidence[`ctx.${k}`] = round(v);
    const mine = estimates.find((e) => e.arm === t.name)!;
    const rivals = estimates
      .filter((e) => e.eligible && e.arm !== t.name)
      .sort((a, b) => b.mean - a.mean)
      .slice(0, 2)
      .map((e) => `${e.arm} ${fmt(e.mean)} ± ${fmt(e.sd)}`);
    const others = hot.slice(1).map((h) => h.name);
    const reason =
      `${worst.name} run-queue p99 ${formatUs(worst.p99)} > ${formatUs(p.p99ThresholdUs)}` +
      (others.length > 0 ? ` (also hot: ${others.join(', ')})` : '') +
      `; learner chose ${t.name}: reward estimate ${fmt(mine.mean)} ± ${fmt(mine.sd)}, draw ${fmt(mine.draw!)}` +
      (rivals.length > 0 ? ` (vs ${rivals.join(', ')})` : '') +
      `, exploring at ${fmt(scale)}; ${c.move}`;
    return {
      kind: 'set',
      action: t.action,
      target: c.target,
      desired: { ...c.desired },
      reason,
      rule: `${LEARNED_RULE_PREFIX}${t.name}`,
      evidence,
      expected: `${hot.map((h) => h.name).join(', ')} run-queue p99 falls toward ${formatUs(p.p99ThresholdUs)}`,
      objective: objectiveFor(hot),
      learner: { arm: t.name, explorationScale: scale, estimates: estimates.map((e) => ({ ...e })), features },
    };
  }

  // ---- restoring --------------------------------------------------------------------------------------------------

  #restores(input: DecideInput, acting: ActingPredicate): StrategyNudge[] {
    const out: StrategyNudge[] = [];
    const actions = new Map<string, string>();
    for (const t of this.#templates) if (!actions.has(t.action)) actions.set(t.action, t.name);
    const p = this.#o.hot;
    const calmBelow = p.p99ThresholdUs * p.calmFraction;
    const targets = [...input.targets].sort((a, b) => cmp(a.name, b.name));
    for (const [action, arm] of actions) {
      for (const t of targets) {
        if (!acting(t.name) || !input.changed(t.name, action)) continue;
        const original = input.original?.(t.name, action);
        out.push({
          kind: 'restore',
          action,
          target: t.name,
          ...(original !== undefined ? { desired: { ...original } } : {}),
          reason:
            `calm: every protect target's run-queue p99 < ${formatUs(calmBelow)} for ${p.calmTicks} ticks; ` +
            `restoring ${t.name} ${action} to ${original !== undefined ? describe(original) : 'its journaled original'}`,
          rule: `${LEARNED_RULE_PREFIX}${arm}`,
          evidence: { thresholdUs: p.p99ThresholdUs, calmBelowUs: calmBelow, calmTicks: p.calmTicks },
          expected: `protect targets stay below ${formatUs(p.p99ThresholdUs)} with ${t.name} as it was`,
        });
      }
    }
    return out;
  }

  // ---- outcomes ---------------------------------------------------------------------------------------------------

  #progress(input: DecideInput): void {
    const w = this.#o.windowTicks;
    const deadline = w + FEEDBACK_SLACK_TICKS;
    for (const [n, p] of this.#awaiting) {
      // Late feedback is still welcome for a while (a dry-run agent applies without changing the knob).
      if (this.#tick - p.tick > 2 * deadline) this.#awaiting.delete(n);
    }
    const e = this.#experiment;
    if (e === undefined) return;
    const age = this.#tick - e.tick;
    switch (e.kind) {
      case 'shadow':
        if (age >= w) this.#experiment = undefined;
        return;
      case 'noop':
        if (age >= w) {
          this.#experiment = undefined;
          this.#judgeNoop(e);
        }
        return;
      case 'nudge': {
        const p = e.pending!;
        if (!e.checked && age >= 1) {
          e.checked = true;
          const cur = input.current(p.target, p.action);
          const applied = input.changed(p.target, p.action) || (cur !== undefined && holds(cur, knobValuesOf(p.nudge)));
          if (!applied) {
            // Refused or failed: the engine says so only by never answering. Free the slot and try other arms first.
            this.#backOff(p);
            this.#experiment = undefined;
            return;
          }
        }
        if (age > deadline) {
          this.#backOff(p);
          this.#awaiting.delete(p.nudge);
          this.#experiment = undefined;
        }
        return;
      }
    }
  }

  #judgeNoop(e: Experiment): void {
    const after = this.#buffer
      .filter((s) => s.time > e.time)
      .slice(-this.#o.windowTicks)
      .map((s) => metricValue(s, e.objective!))
      .filter((v): v is number => v !== undefined);
    const before = e.baseline!;
    const improvement =
      before.length > 0 && after.length > 0 ? improvementOf(median(before), median(after), e.objective!.better) : null;
    // Doing nothing takes nothing from anyone; what the noisy targets lose meanwhile is not its doing.
    const reward = rewardOf({ improvement, lost: 0, changes: 0 }, this.#reward);
    const time = this.#buffer.at(-1)?.time ?? e.time;
    this.#update(NOOP_ARM, e.x!, reward, time);
    this.#o.onOutcome?.({
      time,
      arm: NOOP_ARM,
      reward,
      improvement,
      lost: 0,
      verdict: 'self',
      onPolicy: true,
      chosenAt: e.time,
      features: this.#featureRecord(e.x!),
      eligible: e.eligible ?? [NOOP_ARM],
      uniform: e.uniform === true,
    });
  }

  #learn(o: StrategyFeedback, own: boolean): void {
    if (o.nudge.kind === 'restore') return;
    const p = own ? this.#awaiting.get(o.nudge) : undefined;
    const arm = p?.arm ?? this.#armFor(o.nudge);
    if (arm === undefined) return;
    let x = p?.x;
    if (x === undefined) {
      if (o.snapshotBefore === undefined) return;
      const targets = Object.values(o.snapshotBefore.targets).map((t) => ({ name: t.name, role: t.role }));
      x = this.#features(o.snapshotBefore, targets);
    }
    const split = p?.time ?? o.snapshotBefore?.time;
    const end = o.snapshotAfter?.time ?? Infinity;
    const w = this.#o.windowTicks;
    // What the noisy targets used before: over the ticks the nudge's objective is judged against (the hot ones), so
    // calm ticks before the trouble, when the neighbour may not have run at all, do not hide what the nudge took.
    const baseTicks = o.nudge.objective?.baselineTicks ?? w;
    let before = split === undefined ? [] : this.#buffer.filter((s) => s.time <= split).slice(-baseTicks);
    let after = split === undefined ? [] : this.#buffer.filter((s) => s.time > split && s.time <= end).slice(-w);
    if (before.length === 0 && o.snapshotBefore !== undefined) before = [o.snapshotBefore];
    if (after.length === 0 && o.snapshotAfter !== undefined) after = [o.snapshotAfter];
    const noisy =
      p?.noisy ??
      Object.values((o.snapshotBefore ?? o.snapshotAfter)?.targets ?? {})
        .filter((t) => t.role === 'noisy')
        .map((t) => t.name);
    const lost = lostFraction(before, after, noisy);
    const improvement = o.verdict.improvement;
    const reward = rewardOf({ improvement, lost, changes: 1 }, this.#reward);
    const time = o.snapshotAfter?.time ?? this.#buffer.at(-1)?.time ?? split ?? 0;

    if (p !== undefined) {
      this.#awaiting.delete(o.nudge);
      this.#backoff.delete(armKey(arm, p.target));
      if (this.#experiment?.pending === p) this.#experiment = undefined;
    }
    this.#update(arm, x, reward, time);
    const out: LearnerOutcome = {
      time,
      arm,
      target: o.nudge.target,
      decisionId: o.decisionId,
      reward,
      improvement,
      lost,
      verdict: o.verdict.verdict,
      onPolicy: own,
      features: this.#featureRecord(x),
    };
    if (split !== undefined) out.chosenAt = split;
    if (p !== undefined) {
      out.eligible = p.eligible;
      out.uniform = p.uniform;
    }
    this.#o.onOutcome?.(out);
  }

  #update(arm: string, x: Float64Array, reward: number, time: number): void {
    if (this.#o.frozen === true) return;
    this.#arms.get(arm)!.update(x, reward);
    this.#model.updates++;
    this.#model.updatedAt = time;
    this.#o.onModelChange?.(this.model);
  }

  #armFor(n: StrategyNudge): string | undefined {
    if (isLearnedNudge(n)) {
      const arm = n.rule.slice(LEARNED_RULE_PREFIX.length);
      return this.#arms.has(arm) ? arm : undefined;
    }
    return this.#templates.find((t) => t.action === n.action)?.name;
  }

  #backOff(p: Pending): void {
    const key = armKey(p.arm, p.target);
    const b = this.#backoff.get(key);
    const next = b === undefined ? BACKOFF_FIRST_TICKS : Math.min(BACKOFF_MAX_TICKS, b.next * 2);
    this.#backoff.set(key, { until: this.#tick + next, next });
  }

  // ---- situation --------------------------------------------------------------------------------------------------

  #remember(input: DecideInput): void {
    const last = this.#buffer.at(-1)?.time ?? -Infinity;
    for (const s of [...input.history, input.snapshot]) if (s.time > last) this.#buffer.push(s);
    if (this.#buffer.length > this.#bufferMax) this.#buffer.splice(0, this.#buffer.length - this.#bufferMax);
  }

  /** Protect targets whose p99 has been over the threshold for triggerTicks ticks in a row, worst first. */
  #hot(input: DecideInput, protect: StrategyTarget[]): HotTarget[] {
    const p = this.#o.hot;
    const out: HotTarget[] = [];
    for (const t of protect) {
      const n = streak(input, t.name, p.triggerTicks, (q) => q !== undefined && q > p.p99ThresholdUs);
      if (n >= p.triggerTicks) out.push({ name: t.name, p99: p99Of(input.snapshot, t.name)! });
    }
    return out.sort((a, b) => b.p99 - a.p99 || cmp(a.name, b.name));
  }

  #calm(input: DecideInput, protect: StrategyTarget[]): boolean {
    const p = this.#o.hot;
    const below = p.p99ThresholdUs * p.calmFraction;
    return protect.every((t) => streak(input, t.name, p.calmTicks, (q) => q === undefined || q < below) >= p.calmTicks);
  }

  #features(snapshot: TickSnapshot, targets: readonly StrategyTarget[], hot: readonly HotTarget[] = []): Float64Array {
    const hotNames = hot.map((h) => h.name);
    const rest = targets
      .filter((t) => t.role === 'protect' && !hotNames.includes(t.name))
      .map((t) => ({ name: t.name, p99: p99Of(snapshot, t.name) ?? -1 }))
      .sort((a, b) => b.p99 - a.p99 || cmp(a.name, b.name))
      .map((t) => t.name);
    return extractFeatures(
      this.#groups,
      {
        snapshot,
        protect: [...hotNames, ...rest],
        noisy: targets.filter((t) => t.role === 'noisy').map((t) => t.name),
        p99ThresholdUs: this.#o.hot.p99ThresholdUs,
      },
      this.#names,
    ).values;
  }

  #featureRecord(x: Float64Array): Record<string, number> {
    const out: Record<string, number> = {};
    this.#names.forEach((n, i) => {
      if (i > 0) out[n] = round(x[i]!);
    });
    return out;
  }
}

function objectiveFor(hot: readonly HotTarget[]): Objective {
  // It acts on the condition of the last ticks, not on calm ones before the trouble began.
  return { targets: hot.map((h) => h.name).sort(cmp), metric: 'runqlat.p99', better: 'lower', unit: 'us', baselineTicks: 2 };
}

function p99Of(snapshot: TickSnapshot, name: string): number | undefined {
  const q = snapshot.targets[name]?.runqlat;
  return q !== undefined && q.count > 0 ? q.p99 : undefined;
}

function streak(input: DecideInput, name: string, cap: number, holds: (p99: number | undefined) => boolean): number {
  if (!holds(p99Of(input.snapshot, name))) return 0;
  let n = 1;
  for (let i = input.history.length - 1; i >= 0 && n < cap; i--) {
    if (!holds(p99Of(input.history[i]!, name))) break;
    n++;
  }
  return n;
}

/** Whether the knob already holds every one of `values`. */
function holds(current: Record<string, number>, values: Record<string, number>): boolean {
  return Object.entries(values).every(([k, v]) => current[k] === v);
}

function armKey(arm: string, target: string): string {
  return `${arm}\u0000${target}`;
}

function describe(v: Record<string, number>): string {
  return Object.entries(v)
    .map(([k, x]) => `${k} ${x}`)
    .join(', ');
}

function round(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}

function fmt(v: number): string {
  return v.toFixed(2);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
