/**
 * The decision engine: each tick it asks the strategies what to do, puts every proposal through guardrails, and
 * turns closed-loop verdicts into reverts. It stays pure: it touches no knob, reads no clock and writes no journal.
 * The caller (the agent) applies or dry-runs each decision, journals it, and reports back with applied() or failed();
 * every decision carries an id so the journal, the audit log and the dashboard can all refer to the same one.
 */
import { TunerError } from '../core/errors.js';
import type { TickSnapshot } from '../core/types.js';
import { describeVerdict, metricValue, objectiveOf, type ClosedLoop, type Verdict } from './closed-loop.js';
import { formatPercent, formatUs } from './format.js';
import type { Guardrails, RefusalCode } from './guardrails.js';
import { HoldBook, type Hold, type HoldChange, type StrategyHold } from './holds.js';
import type { DecideInput, KnobValues, Objective, Strategy, StrategyFeedback, StrategyNudge, StrategyTarget } from './strategy.js';

/**
 * proposed: apply (or dry-run) it, then report. revert: the closed loop judged an earlier change useless; apply it
 * like a proposal. refused: journal only. kept: the closed loop judged an earlier change useful; journal only.
 * What the agent then records of it is a DecisionKind (core/events.ts).
 */
export type EngineDecisionKind = 'proposed' | 'refused' | 'revert' | 'kept';

/** Refusals the engine makes before guardrails are asked. */
export type EngineRefusalCode =
  | 'UNKNOWN_TARGET' // not among this tick's targets
  | 'PENDING' // an earlier decision on the same knob has not been reported yet
  | 'EVALUATING' // the closed loop is still judging the last change on this knob
  | 'BASELINE'; // fewer ticks since the warm-up than the closed loop needs as the window before

export interface Decision {
  /** Unique and increasing within one engine: `${prefix}-${counter}`, zero-padded so ids sort as they were made. */
  id: string;
  time: number;
  kind: EngineDecisionKind;
  nudge: StrategyNudge;
  /** The strategy that proposed it, or 'closed-loop' for reverts and kept verdicts. */
  source: string;
  refusal?: { code: RefusalCode | EngineRefusalCode; reason: string };
  /** For revert and kept: the verdict, whose decisionId names the change it judges. */
  verdict?: Verdict;
}

export interface TickInput {
  now: number;
  snapshot: TickSnapshot;
  targets: readonly StrategyTarget[];
  current(target: string, action: string): KnobValues | undefined;
  changed(target: string, action: string): boolean;
  original?(target: string, action: string): KnobValues | undefined;
}

export interface DecisionEngineOptions {
  /** Asked in order each tick; an earlier strategy's proposal on a knob wins over a later one's in the same tick. */
  strategies: readonly Strategy[];
  /** Should be built with `penalties: closedLoop` so that reverted pairs are refused for a while. */
  guardrails: Guardrails;
  closedLoop: ClosedLoop;
  /** Makes ids unique across engines and restarts, e.g. the agent's boot time. Default 'd'. */
  idPrefix?: string;
  /**
   * Called when a strategy throws; the tick then goes on without that strategy, so a broken learned policy cannot
   * hold back the others (and their restores). Without it the error propagates out of tick().
   */
  onStrategyError?: (strategy: string, error: unknown) => void;
}

const CLOSED_LOOP_SOURCE = 'closed-loop';

interface Applied {
  nudge: StrategyNudge;
  from: KnobValues;
  to: KnobValues;
  /** The strategy that proposed it, which gets the verdict as feedback. */
  source: string;
  /** The snapshot of the tick the change was proposed in. */
  before: TickSnapshot | undefined;
}

export class DecisionEngine {
  readonly #strategies: readonly Strategy[];
  readonly #guardrails: Guardrails;
  readonly #loop: ClosedLoop;
  readonly #prefix: string;
  readonly #onStrategyError: ((strategy: string, error: unknown) => void) | undefined;
  /** Whole snapshots, for the closed loop's baselines and the strategies that recall everything. */
  readonly #history: TickSnapshot[] = [];
  readonly #historyLimit: number;
  /** Each strategy with a `recall`: that recall and what it kept of the last `historyTicks` ticks. */
  readonly #recalled = new Map<Strategy, { recall: (s: TickSnapshot) => TickSnapshot; kept: TickSnapshot[] }>();
  /** Decisions handed to the caller to apply and not yet reported, in the order they were made. */
  readonly #pending = new Map<string, Decision>();
  /** The snapshot each pending proposal was made from, for the proposing strategy's feedback. */
  readonly #proposedIn = new Map<string, TickSnapshot>();
  /** Applied changes under evaluation, so a revert knows what to put back. */
  readonly #underEvaluation = new Map<string, Applied>();
  /** The changes strategies hold on purpose, and since when. */
  readonly #holds = new HoldBook();
  /** Strategies that threw in this tick's decide, so their holds carry over. */
  readonly #failed = new Set<string>();
  /** The strategy being asked and the tick's time, for #reportHold (one function for every tick, not a closure each). */
  #asking = '';
  #now = 0;
  readonly #reportHold = (h: StrategyHold): void => this.#holds.report(this.#asking, h, this.#now);
  #counter = 0;
  /** Ticks seen; the first `warmupTicks` of them never serve as a baseline. */
  #seen = 0;

  constructor(opts: DecisionEngineOptions) {
    this.#strategies = opts.strategies;
    this.#guardrails = opts.guardrails;
    this.#loop = opts.closedLoop;
    this.#prefix = opts.idPrefix ?? 'd';
    this.#onStrategyError = opts.onStrategyError;
    this.#historyLimit = Math.max(
      opts.closedLoop.windowTicks,
      ...opts.strategies.filter((s) => s.recall === undefined).map((s) => s.historyTicks ?? 0),
    );
    for (const s of opts.strategies) {
      if (s.recall !== undefined) this.#recalled.set(s, { recall: s.recall.bind(s), kept: [] });
    }
  }

  /** Ids of decisions the caller has not reported on yet. */
  get pending(): readonly string[] {
    return [...this.#pending.keys()];
  }

  /** The changes held on purpose after the last tick (see holds.ts), by target then action, with their reasons. */
  holds(): Hold[] {
    return this.#holds.list();
  }

  /** How many changes are held after the last tick. */
  get heldCount(): number {
    return this.#holds.size;
  }

  /** How the holds changed in the last tick: began, changed cause, or ended. Empty when they did not. */
  get holdChanges(): readonly HoldChange[] {
    return this.#holds.changes;
  }

  tick(input: TickInput): Decision[] {
    const { now, snapshot } = input;
    const out: Decision[] = [];
    try {
      // Strategies run before anything in the engine changes, so one that throws leaves no half-made decisions.
      const proposals = this.#ask(input);
      this.#holds.settle(this.#failed);

      // Verdicts before proposals, so a revert claims its knob before a strategy's nudge can.
      for (const v of this.#loop.observe(snapshot, now)) {
        const a = this.#underEvaluation.get(v.decisionId);
        if (a === undefined) continue; // tracked by someone sharing the closed loop, not by this engine
        this.#underEvaluation.delete(v.decisionId);
        this.#feedback(a, v, snapshot);
        if (v.verdict === 'kept') {
          out.push(this.#make(now, 'kept', a.nudge, CLOSED_LOOP_SOURCE, { verdict: v }));
        } else {
          const d = this.#make(now, 'revert', revertNudge(a, v, this.#loop.margin, this.#loop.significance), CLOSED_LOOP_SOURCE, { verdict: v });
          this.#pending.set(d.id, d);
          out.push(d);
        }
      }

      const known = new Set(input.targets.map((t) => t.name));
      for (const [source, nudge] of proposals) out.push(this.#consider(nudge, source, input, known));
    } finally {
      // Even after a failure, so streaks and baselines keep counting real ticks.
      this.#remember(snapshot);
      this.#seen++;
    }
    return out;
  }

  #remember(snapshot: TickSnapshot): void {
    keep(this.#history, snapshot, this.#historyLimit);
    for (const [s, { recall, kept }] of this.#recalled) {
      let recalled: TickSnapshot;
      try {
        recalled = recall(snapshot);
      } catch (e) {
        // As with decide: without a handler the error is the caller's. With one, its decide sees one tick fewer.
        if (this.#onStrategyError === undefined) throw e;
        this.#onStrategyError(s.name, e);
        continue;
      }
      keep(kept, recalled, s.historyTicks ?? 0);
    }
  }

  #ask(input: TickInput): [source: string, nudge: StrategyNudge][] {
    const decide: DecideInput = {
      now: input.now,
      snapshot: input.snapshot,
      history: [],
      targets: input.targets,
      current: input.current,
      changed: input.changed,
    };
    if (input.original !== undefined) decide.original = input.original;
    decide.mayChange = (target) => this.#guardrails.denied(target) === undefined;
    decide.hold = this.#reportHold;
    this.#now = input.now;
    this.#holds.begin();
    if (this.#failed.size > 0) this.#failed.clear();
    decide.refusal = (n) => {
      const r = this.#guardrails.check(n, input.now, { current: input.current(n.target, n.action), inFlight: this.#pending.size });
      return r.ok ? undefined : r.reason;
    };
    const proposals: [string, StrategyNudge][] = [];
    for (const s of this.#strategies) {
      let nudges: StrategyNudge[];
      this.#asking = s.name;
      try {
        // A copy, so a strategy that keeps it does not see later ticks appear in it.
        nudges = s.decide({ ...decide, history: (this.#recalled.get(s)?.kept ?? this.#history).slice() });
      } catch (e) {
        if (this.#onStrategyError === undefined) throw e;
        this.#failed.add(s.name);
        this.#onStrategyError(s.name, e);
        continue;
      }
      for (const n of nudges) proposals.push([s.name, n]);
    }
    return proposals;
  }

  /**
   * Tells the proposing strategy how its change did. A strategy that throws here is reported like one that throws in
   * decide, but never propagated: the verdict's revert must still reach the caller, or the change would stay held.
   */
  #feedback(a: Applied, v: Verdict, after: TickSnapshot): void {
    const s = this.#strategies.find((x) => x.name === a.source);
    if (s?.feedback === undefined) return;
    const outcome: StrategyFeedback = { decisionId: v.decisionId, nudge: a.nudge, verdict: v, snapshotAfter: after };
    if (a.before !== undefined) outcome.snapshotBefore = a.before;
    try {
      s.feedback(outcome);
    } catch (e) {
      this.#onStrategyError?.(s.name, e);
    }
  }

  /**
   * The caller applied (or dry-ran) a proposed or revert decision: `from` is what the knob held before, `to` what it
   * holds now. Counts against guardrails and starts the closed-loop evaluation of a forward change.
   */
  applied(decisionId: string, from: KnobValues, to: KnobValues, now: number): void {
    const proposedIn = this.#proposedIn.get(decisionId);
    const d = this.#take(decisionId, 'applied');
    this.#guardrails.record(d.nudge, now);
    const { action, target } = d.nudge;
    if (d.nudge.kind === 'restore') {
      // The knob moved back; whatever was being judged on it is no longer what the next window would measure.
      const cancelled = this.#loop.forget(action, target);
      if (cancelled !== undefined) this.#underEvaluation.delete(cancelled);
      return;
    }
    const objective = objectiveOf(d.nudge);
    const baseline: number[] = [];
    for (const s of this.#cleanHistory().slice(-this.#baselineTicks(objective))) {
      const v = metricValue(s, objective);
      if (v !== undefined) baseline.push(v);
    }
    const replaced = this.#loop.evaluating(action, target);
    if (replaced !== undefined) this.#underEvaluation.delete(replaced);
    this.#loop.track(decisionId, d.nudge, baseline, now);
    this.#underEvaluation.set(decisionId, {
      nudge: d.nudge,
      from: { ...from },
      to: { ...to },
      source: d.source,
      before: proposedIn,
    });
  }

  /**
   * The caller dry-ran a proposed decision: nothing changed, so it counts against guardrails (the dry run paces its
   * decisions like a real run) but is never judged: there is no change whose effect a verdict could measure.
   */
  dryRan(decisionId: string, now: number): void {
    const d = this.#take(decisionId, 'dry-run');
    this.#guardrails.record(d.nudge, now);
  }

  /** Ticks the baseline of a change judged by `objective` spans. */
  #baselineTicks(objective: Objective): number {
    return Math.max(1, Math.min(objective.baselineTicks ?? this.#loop.windowTicks, this.#loop.windowTicks));
  }

  /** The snapshots in the history that came after the warm-up. */
  #cleanHistory(): TickSnapshot[] {
    const clean = Math.max(0, this.#seen - this.#loop.warmupTicks);
    return clean >= this.#history.length ? this.#history : this.#history.slice(this.#history.length - clean);
  }

  /**
   * The caller could not apply a decision. Nothing changed, so nothing is recorded; the strategy will propose again
   * if the condition persists. The caller journals `error`.
   */
  failed(decisionId: string, error: unknown): void {
    void error;
    this.#take(decisionId, 'failed');
  }

  #consider(nudge: StrategyNudge, source: string, input: TickInput, known: Set<string>): Decision {
    const { now } = input;
    const { action, target } = nudge;
    const refused = (code: RefusalCode | EngineRefusalCode, reason: string): Decision =>
      this.#make(now, 'refused', nudge, source, { refusal: { code, reason } });

    if (!known.has(target)) return refused('UNKNOWN_TARGET', `${target} is not a configured target`);
    for (const p of this.#pending.values()) {
      if (p.nudge.action === action && p.nudge.target === target) {
        return refused('PENDING', `decision ${p.id} on ${target} ${action} has not been reported yet`);
      }
    }
    if (nudge.kind !== 'restore') {
      const judging = this.#loop.evaluating(action, target);
      if (judging !== undefined) {
        return refused('EVALUATING', `the closed loop is still judging decision ${judging} on ${target} ${action}`);
      }
    }
    const r = this.#guardrails.check(nudge, now, { current: input.current(target, action), inFlight: this.#pending.size });
    if (!r.ok) return refused(r.code, r.reason);
    // No experiment without a control: the window before must be whole and clear of the start-up ticks. Checked after
    // the guardrails, so a change that may never be made (out of scope, denied) says so rather than that it must wait.
    if (nudge.kind !== 'restore') {
      // This tick's snapshot joins the history at the end of the tick, before the change is reported applied.
      const need = this.#baselineTicks(objectiveOf(nudge));
      const clean = Math.min(this.#history.length + 1, Math.max(0, this.#seen + 1 - this.#loop.warmupTicks));
      if (clean < need) {
        return refused(
          'BASELINE',
          `the closed loop has ${clean} of the ${need} ticks it needs as a baseline (after a warm-up of ${this.#loop.warmupTicks} ticks)`,
        );
      }
    }
    const d = this.#make(now, 'proposed', nudge, source, {});
    this.#pending.set(d.id, d);
    this.#proposedIn.set(d.id, input.snapshot);
    return d;
  }

  #take(decisionId: string, what: string): Decision {
    const d = this.#pending.get(decisionId);
    if (d === undefined) {
      throw new TunerError('INTERNAL', `record ${what} decision ${decisionId}: not a pending proposal or revert`);
    }
    this.#pending.delete(decisionId);
    this.#proposedIn.delete(decisionId);
    return d;
  }

  #make(
    time: number,
    kind: EngineDecisionKind,
    nudge: StrategyNudge,
    source: string,
    extra: Pick<Decision, 'refusal' | 'verdict'>,
  ): Decision {
    this.#counter++;
    const d: Decision = { id: `${this.#prefix}-${String(this.#counter).padStart(8, '0')}`, time, kind, nudge, source };
    if (extra.refusal !== undefined) d.refusal = extra.refusal;
    if (extra.verdict !== undefined) d.verdict = extra.verdict;
    return d;
  }
}

/** Puts back what the knob held before the judged change: a restore, because it moves toward the original. */
function revertNudge(a: Applied, v: Verdict, margin: number, significance: number): StrategyNudge {
  const objective = objectiveOf(a.nudge);
  const fmt = (x: number): string => (objective.unit === 'us' ? formatUs(x) : String(x));
  const what = `${(objective.targets ?? ['protect targets']).join(', ')} ${metricLabel(objective.metric)}`;
  const move = Object.keys(a.from)
    .map((k) => `${k} ${a.to[k] ?? '?'} → ${a.from[k]}`)
    .join(', ');
  const finding =
    `${what} ${describeVerdict(v, fmt)}; ` +
    `keeping needs p ≤ ${significance} and ≥ ${formatPercent(margin)} better`;
  const evidence: Record<string, number> = { margin, significance, samples: v.samples, samplesBefore: v.samplesBefore };
  if (v.before !== null) evidence.before = v.before;
  if (v.after !== null) evidence.after = v.after;
  if (v.improvement !== null) evidence.improvement = v.improvement;
  if (v.pValue !== null) evidence.pValue = v.pValue;
  if (v.low !== null) evidence.low = v.low;
  if (v.high !== null) evidence.high = v.high;
  return {
    kind: 'restore',
    action: a.nudge.action,
    target: a.nudge.target,
    // Nothing read before the change (a replay whose recording has no value for the knob): the journaled original.
    ...(Object.keys(a.from).length > 0 ? { desired: { ...a.from } } : {}),
    reason: `closed loop: ${finding}; putting ${a.nudge.target} ${a.nudge.action} back (${move})`,
    rule: a.nudge.rule,
    evidence,
  };
}

function metricLabel(metric: string): string {
  return metric.startsWith('runqlat.') ? `run-queue ${metric.slice('runqlat.'.length)}` : metric;
}

/** Appends `item`, dropping the oldest beyond `limit`. */
function keep<T>(list: T[], item: T, limit: number): void {
  list.push(item);
  if (list.length > limit) list.splice(0, list.length - limit);
}
