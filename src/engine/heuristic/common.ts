/** What the heuristic rules share: streaks over the tick history, and a stable name order. */
import type { TargetSignals, TickSnapshot } from '../../core/types.js';
import type { DecideInput } from '../strategy.js';

/**
 * Consecutive ticks, newest first (the current snapshot included), for which `holds` is true; counting stops at `cap`.
 * Counted from the history the engine passes in, so replaying the same ticks replays the same decisions.
 */
export function streak(input: DecideInput, cap: number, holds: (s: TickSnapshot) => boolean): number {
  if (!holds(input.snapshot)) return 0;
  let n = 1;
  for (let i = input.history.length - 1; i >= 0 && n < cap; i--) {
    if (!holds(input.history[i]!)) break;
    n++;
  }
  return n;
}

/** Code-unit order, the same on every host and locale. */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The recall of a disabled rule: the tick's time and window, no target (it reads no history). */
export function recallNothing(snapshot: TickSnapshot): TickSnapshot {
  return { time: snapshot.time, windowMs: snapshot.windowMs, targets: {} };
}

/**
 * A rule's recall: of `snapshot`, only `signal` of the targets `which` picks (the same objects, not copies), and of the
 * host only `host`, when named. What a rule reads of past ticks, so the engine need not keep whole snapshots for it.
 */
export function recallSignal(
  snapshot: TickSnapshot,
  signal: string,
  which: (t: TargetSignals) => boolean,
  host?: string,
): TickSnapshot {
  const targets: Record<string, TargetSignals> = {};
  for (const [name, t] of Object.entries(snapshot.targets)) {
    if (t[signal] !== undefined && which(t)) targets[name] = { name: t.name, role: t.role, [signal]: t[signal] };
  }
  const kept: TickSnapshot = { time: snapshot.time, windowMs: snapshot.windowMs, targets };
  const h = host === undefined ? undefined : snapshot.host?.[host];
  if (h !== undefined) kept.host = { [host!]: h };
  return kept;
}
