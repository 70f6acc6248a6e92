/**
 * The contract between the decision engine and whatever chooses nudges. A strategy sees one tick of signals, a
 * bounded history and read-only views of the knobs, and returns the nudges it wants. It never applies anything and
 * never sees guardrails or the closed loop, so the built-in rules and a learned policy plug in the same way.
 */
import type { Nudge, RestoreNudge, Role, TickSnapshot } from '../core/types.js';
import type { Verdict } from './closed-loop.js';
import type { StrategyHold } from './holds.js';

export interface StrategyTarget {
  readonly name: string;
  readonly role: Role;
}

/** Knob values in an action's own units, e.g. { weight: 100 } for cpu_weight. */
export type KnobValues = Record<string, number>;

export interface DecideInput {
  /** ms since the epoch. The only clock a strategy may read, so that replaying inputs replays decisions. */
  readonly now: number;
  readonly snapshot: TickSnapshot;
  /**
   * Earlier snapshots, oldest first, excluding `snapshot`. Bounded: at least the `historyTicks` the strategy
   * declared, and never more than the longest any strategy or the closed loop asked for. For a strategy that
   * declares `recall`, each is what its recall kept of that tick.
   */
  readonly history: readonly TickSnapshot[];
  readonly targets: readonly StrategyTarget[];
  /** Current knob values, or undefined when the action cannot read them for that target. */
  current(target: string, action: string): KnobValues | undefined;
  /** Whether the agent currently holds a change of `action` on `target` (its original is journaled). */
  changed(target: string, action: string): boolean;
  /**
   * The value journaled before the first change, while a change is held. Optional because only an agent with a
   * journal can answer; a strategy must still be able to ask for a restore without it (see restoreNudge).
   */
  original?(target: string, action: string): KnobValues | undefined;
  /**
   * False for a target no change will ever be allowed on (the deny list, a cgroup root), so a strategy choosing
   * among targets picks one it may act on instead of proposing a refusal every tick. Absent: every target may be.
   */
  mayChange?(target: string): boolean;
  /**
   * Why the engine's guardrails would refuse `nudge` were it proposed now (deny list, pause, the closed loop's
   * penalty, bounds, cooldown, budget), or undefined when they would let it through. The one guardrails answer for
   * every strategy: none keeps guardrails of its own. Absent outside an engine.
   */
  refusal?(nudge: StrategyNudge): string | undefined;
  /**
   * Report a change the strategy keeps in effect this tick although it is not stepping it (see holds.ts), with why,
   * once per tick for as long as it holds; the engine works out since when and tells only of changes. A report is
   * an output like a nudge: the same inputs must report the same holds. Absent outside an engine.
   */
  hold?(hold: StrategyHold): void;
}

/** What an applied nudge is meant to improve, so the closed loop can judge it without knowing the strategy. */
export interface Objective {
  /** Targets whose metric should improve; absent means every protect target in the snapshot. */
  targets?: readonly string[];
  /** Dotted path into TargetSignals, e.g. 'runqlat.p99'. */
  metric: string;
  better: 'lower' | 'higher';
  /** Unit of the metric, for reasons only. */
  unit?: 'us';
  /**
   * How many ticks before the change describe the condition it answers (e.g. the hot streak a rule acted on).
   * Absent: the closed loop's whole window — which can reach back to calm ticks before the trouble began and make any
   * change look useless.
   */
  baselineTicks?: number;
}

/** What a strategy may add to a nudge so the engine can judge it afterwards. */
export interface NudgeGoal {
  /** The effect the strategy expects, in words, for the audit trail. */
  expected?: string;
  /** Absent means DEFAULT_OBJECTIVE. */
  objective?: Objective;
}

/** A Nudge plus what the engine needs to judge it afterwards. Plain Nudges are valid StrategyNudges. */
export type StrategyNudge = Nudge & NudgeGoal;

/** What the closed loop measured after a strategy's nudge was applied: the outcome a learning strategy learns from. */
export interface StrategyFeedback {
  /** The decision that carried the nudge. */
  decisionId: string;
  /** The nudge exactly as the strategy returned it (the same object). */
  nudge: StrategyNudge;
  verdict: Verdict;
  /** The snapshot of the tick the nudge was proposed in, when the engine still had it. */
  snapshotBefore?: TickSnapshot;
  /** The snapshot of the tick whose arrival completed the verdict. */
  snapshotAfter?: TickSnapshot;
}

export interface Strategy {
  readonly name: string;
  /** How many past snapshots `decide` needs in `history`; 0 when absent. */
  readonly historyTicks?: number;
  /**
   * What `decide` reads of a past tick: a snapshot holding only that, sharing the objects of `snapshot` rather than
   * copying them. The engine keeps these for the strategy's `historyTicks` instead of whole snapshots, which at
   * a thousand targets is most of the agent's memory. Absent: whole snapshots are kept. Must depend on `snapshot`
   * alone, so replaying the same ticks replays the same decisions.
   */
  recall?(snapshot: TickSnapshot): TickSnapshot;
  /** Pure in its inputs: the same sequence of inputs (and feedback) must yield the same nudges. */
  decide(input: DecideInput): StrategyNudge[];
  /**
   * Called once per closed-loop verdict on a forward change this strategy proposed, in the tick the verdict is
   * reached (after every strategy's decide of that tick). Refused, failed and cancelled nudges get no feedback.
   */
  feedback?(outcome: StrategyFeedback): void;
}

/**
 * A nudge that asks `action` to put back every knob it changed on `target`. It carries no values on purpose: the action
 * restores the journaled originals itself, which also ends their journal entries, so a rule does not keep proposing
 * the same restore.
 */
export function restoreNudge(nudge: Omit<RestoreNudge, 'kind' | 'desired'> & NudgeGoal): StrategyNudge {
  return { kind: 'restore', ...nudge };
}

/**
 * The numbers `nudge` asks the knobs to hold: those of a set (its strings, such as a CPU list to prefer, are hints
 * to the action, not values a knob reports), or those a restore names. Empty for a restore to the journaled original.
 */
export function knobValuesOf(nudge: Nudge): KnobValues {
  const out: KnobValues = {};
  for (const [k, v] of Object.entries(nudge.desired ?? {})) if (typeof v === 'number') out[k] = v;
  return out;
}

/** Run-queue latency of the protect targets: the reason this agent exists. */
export const DEFAULT_OBJECTIVE: Objective = { metric: 'runqlat.p99', better: 'lower', unit: 'us' };
