/**
 * Holds: changes a strategy keeps in effect on purpose although it could give them back, and why. A rule that
 * restores only once several conditions agree (noisy_neighbor's calm protect targets *and* a quiet neighbour) leaves
 * the knob changed in between, and without this nothing tells an operator whether that is a decision or a bug.
 *
 * A strategy reports each hold of a tick through `DecideInput.hold` (strategies stay pure: the same inputs report
 * the same holds). The engine's HoldBook turns those reports into states with a start time: a hold begins the first
 * tick it is reported, changes when its `cause` changes, and ends the first tick it is not reported. Only those
 * changes are handed on (for the log and the bus); the live list, with this tick's numbers, is asked for.
 */

/** What a strategy says about one change it keeps in effect this tick instead of restoring it. */
export interface StrategyHold {
  action: string;
  target: string;
  /** The rule holding it, as its nudges name it. */
  rule: string;
  /**
   * A short stable word for why (e.g. `protect-not-calm`, `noisy-busy`): the hold's state. A new cause is a change of
   * state (logged, and `since` restarts); new numbers under the same cause are not.
   */
  cause: string;
  /** In words, with this tick's numbers. */
  reason: string;
  /** The numbers behind the reason. */
  evidence?: Record<string, number>;
}

/** A hold as the engine keeps it: the last report, since when its cause holds, and the tick it was last reported in. */
export interface Hold extends StrategyHold {
  /** ms since the epoch: the first tick of the current run of reports with this cause. */
  since: number;
  /** ms since the epoch: the last tick that reported it. */
  time: number;
}

/** A change of a hold's state: `held` when it begins or its cause changes, `released` when no longer reported. */
export interface HoldChange {
  kind: 'held' | 'released';
  hold: Hold;
}

const NONE: readonly HoldChange[] = Object.freeze([]);

function keyOf(action: string, target: string): string {
  return `${action}\0${target}`;
}

interface Entry {
  hold: Hold;
  /** The strategy that reported it (for a mode, the mode), so its holds outlive a tick in which it threw. */
  source: string;
}

/**
 * The holds of the last tick and their changes. Costs nothing per target when nothing is held: a tick without
 * reports and without previous holds allocates nothing.
 */
export class HoldBook {
  #current = new Map<string, Entry>();
  #next = new Map<string, Entry>();
  #changes: readonly HoldChange[] = NONE;

  /** Starts a tick: forgets reports of a tick that did not settle (a strategy threw with no handler). */
  begin(): void {
    if (this.#next.size > 0) this.#next.clear();
  }

  /** A strategy's report in the tick at `now`. A later report of the same (action, target) in the tick wins. */
  report(source: string, h: StrategyHold, now: number): void {
    const key = keyOf(h.action, h.target);
    const prev = this.#current.get(key)?.hold;
    const since = prev !== undefined && prev.cause === h.cause && prev.rule === h.rule ? prev.since : now;
    const hold: Hold = { action: h.action, target: h.target, rule: h.rule, cause: h.cause, reason: h.reason, since, time: now };
    if (h.evidence !== undefined) hold.evidence = h.evidence;
    this.#next.set(key, { hold, source });
  }

  /**
   * Ends the tick: this tick's reports become the holds, and the changes against the last tick are returned (also
   * kept as `changes` until the next settle). The holds of a strategy in `failed` carry over as they were: a
   * strategy that threw said nothing, which is not the same as holding nothing.
   */
  settle(failed?: ReadonlySet<string>): readonly HoldChange[] {
    if (this.#current.size === 0 && this.#next.size === 0) return (this.#changes = NONE);
    const changes: HoldChange[] = [];
    for (const [key, e] of this.#current) {
      if (this.#next.has(key)) continue;
      if (failed?.has(e.source) === true) this.#next.set(key, e);
      else changes.push({ kind: 'released', hold: e.hold });
    }
    for (const [key, e] of this.#next) {
      const prev = this.#current.get(key)?.hold;
      if (prev === undefined || prev.since !== e.hold.since) changes.push({ kind: 'held', hold: e.hold });
    }
    const old = this.#current;
    this.#current = this.#next;
    this.#next = old;
    this.#next.clear();
    return (this.#changes = changes.length > 0 ? changes : NONE);
  }

  /** The changes of the last settled tick; empty (the same frozen array) when there were none. */
  get changes(): readonly HoldChange[] {
    return this.#changes;
  }

  get size(): number {
    return this.#current.size;
  }

  /** Every hold now, by target then action. */
  list(): Hold[] {
    const out: Hold[] = [];
    for (const e of this.#current.values()) out.push(e.hold);
    return out.sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : a.action < b.action ? -1 : a.action > b.action ? 1 : 0));
  }
}
