/**
 * The audit trail: every decision — applied, dry-run, refused, reverted, kept, overridden, failed — with its time,
 * rule, target, before/after, reason, evidence, outcome and the closed loop's verdict. A real run stores it beside the
 * journal in the same SQLite file (one durable store to back up and inspect); a dry run in a file of its own in the
 * state directory (DRY_RUN_DB), so it never touches a real run's journal, lock or originals. Both are queried by
 * `ebpf-tuner log` and `explain`, dry-run decisions marked as such.
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { TunerError } from '../core/errors.js';
import { channels, publish, type DecisionEvent } from '../core/events.js';
import type { Verdict } from '../engine/closed-loop.js';

/** The dry runs' audit trail in the state directory: decisions only, no journal. */
export const DRY_RUN_DB = 'dry-run.db';

/** A decision as the audit trail stores it; reading marks those of a dry run. */
export interface AuditRecord extends DecisionEvent {
  /** Set on reading: the decision comes from a dry run, and nothing was changed. */
  dryRun?: true;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS decisions (
  id TEXT PRIMARY KEY,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  rule TEXT NOT NULL,
  reason TEXT NOT NULL,
  from_value TEXT,
  to_value TEXT,
  outcome TEXT,
  evidence TEXT,
  ref TEXT,
  expected TEXT,
  verdict TEXT
);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions(time);
`;

/** A row of the decisions table: the event's required fields under their own names, the optional ones as columns. */
interface Row extends Pick<DecisionEvent, 'id' | 'time' | 'kind' | 'action' | 'target' | 'rule' | 'reason'> {
  from_value: string | null;
  to_value: string | null;
  outcome: string | null;
  evidence: string | null;
  ref: string | null;
  expected: string | null;
  /** Absent in a database written before verdicts were stored. */
  verdict?: string | null;
}

function fromRow(r: Row): AuditRecord {
  const rec: AuditRecord = { id: r.id, time: r.time, kind: r.kind, action: r.action, target: r.target, rule: r.rule, reason: r.reason };
  if (r.from_value !== null) rec.from = r.from_value;
  if (r.to_value !== null) rec.to = r.to_value;
  if (r.outcome !== null) rec.outcome = r.outcome;
  if (r.evidence !== null) rec.evidence = JSON.parse(r.evidence) as Record<string, number>;
  if (r.ref !== null) rec.ref = r.ref;
  if (r.expected !== null) rec.expected = r.expected;
  if (r.verdict !== undefined && r.verdict !== null) rec.verdict = JSON.parse(r.verdict) as Verdict;
  return rec;
}

export class AuditLog {
  private readonly insert: Database.Statement;
  private readonly setOutcome: Database.Statement;

  constructor(private readonly db: Database.Database) {
    db.exec(SCHEMA);
    const columns = db.prepare('PRAGMA table_info(decisions)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'verdict')) db.exec('ALTER TABLE decisions ADD COLUMN verdict TEXT');
    this.insert = db.prepare(
      `INSERT OR REPLACE INTO decisions (id, time, kind, action, target, rule, reason, from_value, to_value, outcome, evidence, ref, expected, verdict)
       VALUES (@id, @time, @kind, @action, @target, @rule, @reason, @from, @to, @outcome, @evidence, @ref, @expected, @verdict)`,
    );
    this.setOutcome = db.prepare('UPDATE decisions SET outcome = ? WHERE id = ?');
  }

  /**
   * Opens (creating it 0600 if needed) the dry runs' audit database in `stateDir`. Several dry runs may share it, and
   * it may sit beside a live agent's journal: SQLite's WAL and busy timeout serialise the writers.
   */
  static openDryRun(stateDir: string): Database.Database {
    const file = join(stateDir, DRY_RUN_DB);
    try {
      closeSync(openSync(file, 'a', 0o600));
      chmodSync(file, 0o600);
      const db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.pragma('busy_timeout = 5000');
      return db;
    } catch (e) {
      throw new TunerError('JOURNAL', `open dry-run audit ${file}: ${e instanceof Error ? e.message : String(e)} — fix: check --state-dir is writable`, {
        cause: e,
      });
    }
  }

  record(rec: AuditRecord): void {
    this.insert.run({
      ...rec,
      verdict: rec.verdict ? JSON.stringify(rec.verdict) : null,
      from: rec.from ?? null,
      to: rec.to ?? null,
      outcome: rec.outcome ?? null,
      evidence: rec.evidence ? JSON.stringify(rec.evidence) : null,
      ref: rec.ref ?? null,
      expected: rec.expected ?? null,
    });
    publish(channels.decision, () => rec);
  }

  /** The closed loop judged decision `id`: kept, or reverted by decision `by`. */
  outcome(id: string, outcome: string): void {
    this.setOutcome.run(outcome, id);
  }

  query(opts: { since?: number; limit?: number; target?: string } = {}): AuditRecord[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM decisions WHERE time >= ? ${opts.target ? 'AND target = ?' : ''} ORDER BY time DESC, id DESC LIMIT ?`,
      )
      .all(...[opts.since ?? 0, ...(opts.target ? [opts.target] : []), opts.limit ?? 1000]) as Row[];
    return rows.map(fromRow);
  }

  /** Queries for a read-only handle (the CLI reading a running agent's database), which cannot create tables. */
  static queryReadOnly(db: Database.Database, opts: { since?: number; limit?: number; target?: string } = {}): AuditRecord[] {
    const rows = db
      .prepare(`SELECT * FROM decisions WHERE time >= ? ${opts.target ? 'AND target = ?' : ''} ORDER BY time DESC, id DESC LIMIT ?`)
      .all(...[opts.since ?? 0, ...(opts.target ? [opts.target] : []), opts.limit ?? 1000]) as Row[];
    return rows.map(fromRow);
  }

  static getReadOnly(db: Database.Database, id: string): AuditRecord | undefined {
    const r = db.prepare('SELECT * FROM decisions WHERE id = ?').get(id) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  /** Later decisions that refer to this one (the closed loop's verdict on it, a revert of it). */
  static relatedReadOnly(db: Database.Database, id: string): AuditRecord[] {
    return (db.prepare('SELECT * FROM decisions WHERE ref = ? ORDER BY time, id').all(id) as Row[]).map(fromRow);
  }

  /** Later decisions that refer to `id`, oldest first. */
  related(id: string): AuditRecord[] {
    return AuditLog.relatedReadOnly(this.db, id);
  }

  get(id: string): AuditRecord | undefined {
    const r = this.db.prepare('SELECT * FROM decisions WHERE id = ?').get(id) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }
}
