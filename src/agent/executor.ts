/**
 * Carries out the engine's decisions: plan → write through the knob writer → audit, and answers the knob questions
 * strategies ask in a tick (current values, whether a change of ours is in effect, the journaled original), each
 * (target, action) read at most once per tick. The agent's loop owns when; this owns how.
 */
import { isTunerError, TunerError } from '../core/errors.js';
import type { DecisionKind } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { RestoreNudge, Target } from '../core/types.js';
import type { Journal } from '../journal/journal.js';
import type { KnobWriter } from '../actions/knob-writer.js';
import { findAction, type Action } from '../actions/index.js';
import type { AuditLog } from '../audit/audit.js';
import { describeVerdict } from '../engine/closed-loop.js';
import type { Decision, DecisionEngine, TickInput } from '../engine/engine.js';
import { knobValuesOf, type KnobValues } from '../engine/strategy.js';

export interface ExecutorDeps {
  log: Logger;
  /** Plans and records, writes nothing. */
  dryRun: boolean;
  journal: Journal;
  writer: KnobWriter;
  audit: AuditLog;
  /** Told what became of each decision (applied, failed, dry-run), for pacing and the closed loop. */
  engine: Pick<DecisionEngine, 'applied' | 'failed' | 'dryRan'>;
  /** The live target of that name; throws for one no longer configured. */
  target(name: string): Target;
}

export class Executor {
  readonly #d: ExecutorDeps;
  /** The last refusal code recorded per (rule, action, target), so a refusal that repeats every tick is recorded once. */
  readonly #lastRefusal = new Map<string, string>();
  /** This tick's answers, so a decision's "from" is the value its strategy saw, not a second read of the knob. */
  #view: Pick<TickInput, 'current' | 'changed' | 'original'> | undefined;

  constructor(deps: ExecutorDeps) {
    this.#d = deps;
  }

  /**
   * The knob questions of one tick. Every rule asks about every target's knobs; each answer is a file read or a
   * journal query, so within the tick each (target, action) is answered once.
   */
  tickView(): Pick<TickInput, 'current' | 'changed' | 'original'> {
    const memo = <T>(fn: (t: string, a: string) => T) => {
      const cache = new Map<string, T>();
      return (t: string, a: string): T => {
        const k = `${t}\0${a}`;
        if (!cache.has(k)) cache.set(k, fn(t, a));
        return cache.get(k) as T;
      };
    };
    let activeSet: ReadonlySet<string> | undefined;
    const active = (): ReadonlySet<string> => (activeSet ??= this.#activeChanges());
    this.#view = {
      current: memo((target, action) => this.#current(target, action)),
      changed: memo((target, action) => this.#changed(target, action, active)),
      original: memo((target, action) => this.#original(target, action)),
    };
    return this.#view;
  }

  #current(target: string, action: string): KnobValues | undefined {
    const a = findAction(action);
    if (!a) return undefined;
    try {
      return a.read(this.#d.target(target));
    } catch {
      return undefined;
    }
  }

  /**
   * Whether a change of ours made by `action` is in effect on `target`. The journal answers first: listing an
   * action's knobs can mean walking the target's threads (affinities) or open files (read-ahead devices), which
   * every rule asking about every target each tick must not pay for targets the agent never changed. `active` is
   * the journal's active entries, read once per tick.
   */
  #changed(target: string, action: string, active: () => ReadonlySet<string>): boolean {
    const a = findAction(action);
    if (!a) return false;
    if (!active().has(`${target}\0${action}`)) return false;
    try {
      // Confirm by knob id: an entry left by an earlier scope of the same target name (a reload that moved it) is
      // not a change of this target's knobs.
      return a.knobs(this.#d.target(target)).some((k) => this.#d.journal.get(k.id)?.state === 'active');
    } catch {
      return false;
    }
  }

  /** `${target}\0${action}` of every active journal entry. */
  #activeChanges(): ReadonlySet<string> {
    if (!this.#d.journal.isOpen) return new Set();
    return new Set(this.#d.journal.active().map((e) => `${e.target}\0${e.action}`));
  }

  #original(target: string, action: string): KnobValues | undefined {
    // The action reads its own units; the journal holds the knob's raw original. Only single-knob actions can map
    // one to the other without the action's help, which is all the strategies ask for today.
    const a = findAction(action);
    if (!a) return undefined;
    try {
      const t = this.#d.target(target);
      const [k] = a.knobs(t);
      const e = k ? this.#d.journal.get(k.id) : undefined;
      if (!e || e.state !== 'active') return undefined;
      return a.decode?.(t, e.original);
    } catch {
      return undefined;
    }
  }

  /** Whether a restore puts every knob back as journaled: it names no values, or exactly the original's. */
  #toOriginal(n: RestoreNudge, action: Action): boolean {
    if (action.restoresFromJournal === true || n.desired === undefined) return true;
    const original = this.#original(n.target, n.action);
    if (original === undefined) return false;
    const values = Object.entries(knobValuesOf(n));
    return values.length > 0 && values.every(([k, v]) => original[k] === v);
  }

  carryOut(d: Decision, now: number): void {
    const n = d.nudge;
    const base = { id: d.id, time: now, action: n.action, target: n.target, rule: n.rule, reason: n.reason, evidence: n.evidence, expected: n.expected };
    if (d.kind === 'refused') {
      // A refusal repeats every tick while its cause holds (a cooldown, an evaluation in progress): record the first
      // of a run, not every tick of it.
      const key = `${n.rule}|${n.action}|${n.target}`;
      const code = d.refusal?.code ?? 'UNKNOWN';
      if (this.#lastRefusal.get(key) === code) {
        this.#d.log.debug({ decision: d.id, code, target: n.target }, 'refused again');
        return;
      }
      this.#lastRefusal.set(key, code);
      this.#record({ ...base, kind: 'refused', outcome: `${code}: ${d.refusal?.reason}` });
      return;
    }
    this.#lastRefusal.delete(`${n.rule}|${n.action}|${n.target}`);
    if (d.kind === 'kept') {
      this.#record({ ...base, kind: 'kept', ref: d.verdict?.decisionId, reason: verdictText(d), outcome: 'kept', verdict: d.verdict });
      if (d.verdict) this.#d.audit.outcome(d.verdict.decisionId, `kept: ${describeVerdict(d.verdict)}`);
      return;
    }
    const action = findAction(n.action);
    if (!action) {
      this.#d.engine.failed(d.id, new TunerError('INTERNAL', `no action ${n.action}`));
      this.#record({ ...base, kind: 'failed', outcome: `no action named ${n.action}` });
      return;
    }
    try {
      const target = this.#d.target(n.target);
      // What the strategy saw this tick (nothing has written since); read now only when it could not be read then.
      const from = this.#view?.current(n.target, n.action) ?? action.read(target);
      let kind: DecisionKind;
      let outcome: string | undefined;
      // A restore that names values short of the journaled original (a step back rather than all the way) is planned
      // like a set. Any other restore, and one naming exactly the original, puts back the journaled originals, which
      // also ends their journal entries: the knob no longer counts as changed, and no rule restores it again.
      const planned = n.kind === 'set' || !this.#toOriginal(n, action) ? n.desired : undefined;
      if (planned === undefined) {
        const items = this.#d.dryRun ? [] : action.revert(target, this.#d.writer);
        kind = this.#d.dryRun ? 'dry-run' : d.kind === 'revert' ? 'reverted' : 'restored';
        outcome = items.map((i) => `${i.outcome} ${i.path}`).join('; ') || undefined;
      } else {
        const plan = action.plan(target, planned);
        const res = action.apply(plan, this.#d.writer);
        kind = res.overridden ? 'overridden' : this.#d.dryRun ? 'dry-run' : d.kind === 'revert' ? 'reverted' : 'applied';
        if (res.overridden) outcome = 'another writer owns this knob now; left alone';
        if (plan.notes.length) outcome = [outcome, ...plan.notes].filter(Boolean).join('; ');
        if (res.overridden) {
          this.#d.engine.failed(d.id, new TunerError('ACTION_FAILED', 'overridden'));
          this.#record({ ...base, kind, outcome, from: fmt(from) });
          return;
        }
      }
      const to = this.#d.dryRun ? { ...from, ...knobValuesOf(n) } : action.read(target);
      // A dry-run change was never made: counted for pacing, never judged.
      if (this.#d.dryRun) this.#d.engine.dryRan(d.id, now);
      else this.#d.engine.applied(d.id, from, to, now);
      this.#record({ ...base, kind, outcome, from: fmt(from), to: fmt(to), ref: d.verdict?.decisionId, verdict: d.verdict });
      if (d.kind === 'revert' && d.verdict) this.#d.audit.outcome(d.verdict.decisionId, `reverted by ${d.id}: ${describeVerdict(d.verdict)}`);
    } catch (e) {
      this.#d.engine.failed(d.id, e);
      const msg = e instanceof Error ? e.message : String(e);
      if (isTunerError(e, 'BUSY')) {
        // Another live agent manages this knob: not a failure of ours, a knob that is not ours to change.
        const key = `${n.rule}|${n.action}|${n.target}`;
        if (this.#lastRefusal.get(key) === 'KNOB_CLAIMED') return;
        this.#lastRefusal.set(key, 'KNOB_CLAIMED');
        this.#record({ ...base, kind: 'refused', outcome: `KNOB_CLAIMED: ${msg}` });
        return;
      }
      this.#record({ ...base, kind: 'failed', outcome: msg });
      if (isTunerError(e, 'OUT_OF_SCOPE')) this.#d.log.error({ decision: d.id, err: msg }, 'refused a write outside the configured scope');
    }
  }

  #record(rec: Parameters<AuditLog['record']>[0]): void {
    const clean = Object.fromEntries(Object.entries(rec).filter(([, v]) => v !== undefined)) as typeof rec;
    // Marked for subscribers (dashboard, metrics) and the log line; the dry-run database marks its rows by itself.
    if (this.#d.dryRun) clean.dryRun = true;
    this.#d.audit.record(clean);
    this.#d.log.info(
      { decision: clean.id, kind: clean.kind, action: clean.action, target: clean.target, from: clean.from, to: clean.to, outcome: clean.outcome, dryRun: clean.dryRun },
      clean.reason,
    );
  }
}

function fmt(v: KnobValues): string {
  return Object.entries(v)
    .map(([k, x]) => `${k}=${x}`)
    .join(' ');
}
function verdictText(d: Decision): string {
  return d.verdict ? `${d.verdict.verdict === 'kept' ? 'kept' : 'reverted'}: ${describeVerdict(d.verdict)}` : d.nudge.reason;
}
