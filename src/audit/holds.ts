/**
 * The holds the running agent keeps (engine/holds.ts), in the state database beside the journal, so that
 * `ebpf-tuner status` and `explain` — separate processes that read the state directory — can say why a change is
 * still in effect. Rewritten when a hold begins, changes its cause or ends, and every few ticks while any is held (for
 * fresh numbers in the reasons); emptied when the agent starts and stops, so a row is never older than the run.
 */
import type Database from 'better-sqlite3';
import type { Hold } from '../engine/holds.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS holds (
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  rule TEXT NOT NULL,
  cause TEXT NOT NULL,
  reason TEXT NOT NULL,
  evidence TEXT,
  since INTEGER NOT NULL,
  time INTEGER NOT NULL,
  PRIMARY KEY (action, target)
);
`;

interface Row {
  action: string;
  target: string;
  rule: string;
  cause: string;
  reason: string;
  evidence: string | null;
  since: number;
  time: number;
}

function fromRow(r: Row): Hold {
  const h: Hold = { action: r.action, target: r.target, rule: r.rule, cause: r.cause, reason: r.reason, since: r.since, time: r.time };
  if (r.evidence !== null) h.evidence = JSON.parse(r.evidence) as Record<string, number>;
  return h;
}

export class HoldTable {
  readonly #replace: (holds: readonly Hold[]) => void;

  constructor(db: Database.Database) {
    db.exec(SCHEMA);
    const clear = db.prepare('DELETE FROM holds');
    const insert = db.prepare(
      'INSERT OR REPLACE INTO holds (action, target, rule, cause, reason, evidence, since, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.#replace = db.transaction((holds: readonly Hold[]) => {
      clear.run();
      for (const h of holds) {
        insert.run(h.action, h.target, h.rule, h.cause, h.reason, h.evidence === undefined ? null : JSON.stringify(h.evidence), h.since, h.time);
      }
    });
  }

  /** Makes the table hold exactly `holds`, in one transaction. */
  replace(holds: readonly Hold[]): void {
    this.#replace(holds);
  }

  /** The holds in a state database opened elsewhere (read-only); none when the table does not exist yet. */
  static readOnly(db: Database.Database): Hold[] {
    const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'holds'").get() !== undefined;
    if (!exists) return [];
    return (db.prepare('SELECT * FROM holds ORDER BY target, action').all() as Row[]).map(fromRow);
  }
}
