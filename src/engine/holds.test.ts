import { describe, expect, it } from 'vitest';
import { HoldBook, type StrategyHold } from './holds.js';

const busy = (reason = 'batch still wants 1.9 CPU'): StrategyHold => ({
  action: 'cpu_weight',
  target: 'batch',
  rule: 'noisy-neighbor',
  cause: 'noisy-busy',
  reason,
  evidence: { demandCpus: 1.9 },
});

/** One tick: begin, the reports, settle. */
function tick(book: HoldBook, now: number, reports: StrategyHold[], failed?: ReadonlySet<string>) {
  book.begin();
  for (const r of reports) book.report('noisy-neighbor', r, now);
  return book.settle(failed);
}

describe('HoldBook', () => {
  it('tells of a hold once when it begins, keeps its start while its cause stays, and once when it ends', () => {
    const book = new HoldBook();
    expect(tick(book, 1_000, [busy('a')]).map((c) => [c.kind, c.hold.since])).toEqual([['held', 1_000]]);
    expect(tick(book, 2_000, [busy('b')])).toEqual([]);
    // The numbers of the last report, the start of the first.
    expect(book.list()).toEqual([{ ...busy('b'), since: 1_000, time: 2_000 }]);
    const ended = tick(book, 3_000, []);
    expect(ended).toEqual([{ kind: 'released', hold: { ...busy('b'), since: 1_000, time: 2_000 } }]);
    expect(book.list()).toEqual([]);
    expect(book.size).toBe(0);
  });

  it('counts a new cause as a new state, with a new start', () => {
    const book = new HoldBook();
    tick(book, 1_000, [{ ...busy(), cause: 'protect-not-calm' }]);
    const changed = tick(book, 2_000, [busy()]);
    expect(changed.map((c) => [c.kind, c.hold.cause, c.hold.since])).toEqual([['held', 'noisy-busy', 2_000]]);
  });

  it('keeps the holds of a strategy that threw this tick', () => {
    const book = new HoldBook();
    tick(book, 1_000, [busy()]);
    expect(tick(book, 2_000, [], new Set(['noisy-neighbor']))).toEqual([]);
    expect(book.list().map((h) => h.since)).toEqual([1_000]);
    expect(tick(book, 3_000, [], new Set(['other']))).toHaveLength(1);
  });

  it('forgets the reports of a tick that never settled', () => {
    const book = new HoldBook();
    book.begin();
    book.report('noisy-neighbor', busy(), 1_000);
    expect(tick(book, 2_000, [])).toEqual([]);
    expect(book.list()).toEqual([]);
  });

  it('returns the same empty changes while nothing is or was held', () => {
    const book = new HoldBook();
    const first = tick(book, 1_000, []);
    expect(tick(book, 2_000, [])).toBe(first);
    expect(book.changes).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
  });

  it('lists holds by target, then action', () => {
    const book = new HoldBook();
    tick(book, 1_000, [
      { ...busy(), target: 'zip' },
      { ...busy(), target: 'alpha', action: 'pressure_backoff' },
      { ...busy(), target: 'alpha' },
    ]);
    expect(book.list().map((h) => `${h.target} ${h.action}`)).toEqual(['alpha cpu_weight', 'alpha pressure_backoff', 'zip cpu_weight']);
  });
});
