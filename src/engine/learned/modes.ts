/**
 * Ways to let the learner prove itself before it is trusted. `ShadowStrategy` runs it beside the default rules:
 * the rules act, the learner only says what it would have done, and both choices are reported side by side.
 * `CanaryStrategy` lets it act on a chosen few targets and shadows it everywhere else, where the rules keep acting.
 * In both, the rules' outcomes still teach the learner (the arm with the same action), so shadow time is not wasted.
 *
 * A learner that throws is reported and skipped for that tick; the rules' nudges (and every restore) still go out.
 * The rules are asked in order, as the engine would ask them; each one's feedback goes back to it.
 */
import { type DecideInput, type Strategy, type StrategyFeedback, type StrategyNudge } from '../strategy.js';
import { isLearnedNudge, type LearnedStrategy, type LearnerChoice } from './learner.js';

/** A choice the learner made without acting on it; a `channels.decision`-like payload with kind 'shadow'. */
export interface ShadowEvent {
  id: string;
  time: number;
  kind: 'shadow';
  /** What the learner would have done: its nudge's action, or 'none' for "do nothing". */
  action: string;
  /** Its nudge's target; '' for "do nothing". */
  target: string;
  rule: string;
  reason: string;
  evidence: Record<string, number>;
  learner: LearnerChoice;
  /** What the acting rules proposed in the same tick. */
  acted: { action: string; target: string; desired: Record<string, number | string>; rule: string }[];
}

export interface ModeOptions {
  onShadow?: (event: ShadowEvent) => void;
  /** The learner threw; the tick went on without it. */
  onLearnerError?: (error: unknown) => void;
}

abstract class Mode implements Strategy {
  abstract readonly name: string;
  readonly historyTicks: number;
  #counter = 0;
  /** Which rule proposed each nudge, for routing its feedback. */
  readonly #proposer = new WeakMap<StrategyNudge, Strategy>();

  constructor(
    protected readonly primaries: readonly Strategy[],
    readonly learner: LearnedStrategy,
    protected readonly opts: ModeOptions,
  ) {
    this.historyTicks = Math.max(learner.historyTicks, ...primaries.map((p) => p.historyTicks ?? 0));
  }

  abstract decide(input: DecideInput): StrategyNudge[];

  feedback(o: StrategyFeedback): void {
    if (isLearnedNudge(o.nudge)) {
      this.learner.feedback(o);
      return;
    }
    this.#proposer.get(o.nudge)?.feedback?.(o);
    try {
      this.learner.observe(o);
    } catch (e) {
      this.opts.onLearnerError?.(e);
    }
  }

  /** Every rule's nudges, in rule order. */
  protected rules(input: DecideInput): StrategyNudge[] {
    const out: StrategyNudge[] = [];
    for (const p of this.primaries) {
      for (const n of p.decide(input)) {
        this.#proposer.set(n, p);
        out.push(n);
      }
    }
    return out;
  }

  protected ask(input: DecideInput, acting: (target: string | undefined) => boolean): ReturnType<LearnedStrategy['choose']> {
    try {
      return this.learner.choose(input, acting);
    } catch (e) {
      this.opts.onLearnerError?.(e);
      return { nudges: [] };
    }
  }

  protected shadow(choice: LearnerChoice | undefined, acted: readonly StrategyNudge[]): void {
    if (choice === undefined || choice.acting || this.opts.onShadow === undefined) return;
    this.#counter++;
    const n = choice.nudge;
    const heuristic = acted.filter((a) => a.kind === 'set');
    const did =
      heuristic.length > 0
        ? heuristic.map((a) => `${a.rule} ${a.target} ${a.action} ${JSON.stringify(a.desired)}`).join('; ')
        : 'nothing';
    const would = n !== undefined ? `${choice.arm}: ${n.reason}` : `${choice.arm}: do nothing`;
    this.opts.onShadow({
      id: `shadow-${String(this.#counter).padStart(8, '0')}`,
      time: choice.time,
      kind: 'shadow',
      action: n?.action ?? 'none',
      target: n?.target ?? '',
      rule: n?.rule ?? `learned:${choice.arm}`,
      reason: `shadow: learner would choose ${would}; rules proposed ${did}`,
      evidence: n?.evidence ?? Object.fromEntries(choice.estimates.map((e) => [`est.${e.arm}`, e.mean])),
      learner: choice,
      acted: heuristic.map((a) => ({ action: a.action, target: a.target, desired: { ...a.desired }, rule: a.rule })),
    });
  }
}

/** The rules act; the learner decides beside them and is only logged. */
export class ShadowStrategy extends Mode {
  readonly name = 'shadow';

  constructor(primaries: readonly Strategy[], learner: LearnedStrategy, opts: ModeOptions = {}) {
    super(primaries, learner, opts);
  }

  decide(input: DecideInput): StrategyNudge[] {
    const nudges = this.rules(input);
    const r = this.ask(input, () => false);
    this.shadow(r.choice, nudges);
    return nudges;
  }
}

/**
 * The learner acts on `canaryTargets` (all targets for 'all') and may always "do nothing"; a choice on any other
 * target is logged as shadow. There the learner's actions stay the rules' to take; the rules' nudges on actions
 * the learner does not cover go out everywhere, and so do their restores, except of a change of the learner's still
 * awaiting its verdict (a rule restores any change of its action it finds calm, whoever made it).
 */
export class CanaryStrategy extends Mode {
  readonly name: string;
  readonly #canary: (target: string) => boolean;
  readonly #covered: ReadonlySet<string>;

  constructor(
    primaries: readonly Strategy[],
    learner: LearnedStrategy,
    canaryTargets: readonly string[] | 'all',
    opts: ModeOptions = {},
  ) {
    super(primaries, learner, opts);
    if (canaryTargets === 'all') {
      this.name = 'learned';
      this.#canary = () => true;
    } else {
      this.name = 'canary';
      const set = new Set(canaryTargets);
      this.#canary = (t) => set.has(t);
    }
    this.#covered = new Set(learner.actions);
  }

  decide(input: DecideInput): StrategyNudge[] {
    const r = this.ask(input, (t) => t === undefined || this.#canary(t));
    const mine = new Set(r.nudges.map((n) => `${n.action}\u0000${n.target}`));
    const fromRules = this.rules(input).filter((n) =>
      n.kind === 'restore'
        ? !mine.has(`${n.action}\u0000${n.target}`) && !this.learner.judging(n.action, n.target)
        : !(this.#covered.has(n.action) && this.#canary(n.target)),
    );
    this.shadow(r.choice, fromRules);
    // The learner's nudges first: on a knob both name in one tick, the engine lets the earlier one through.
    return [...r.nudges, ...fromRules];
  }
}
