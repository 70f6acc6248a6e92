/**
 * The audit trail: every decision — applied, dry-run, refused, reverted, kept, overridden, failed — with its time,
 * rule, target, before/after, reason, evidence and outcome. Stored beside the journal in the same SQLite file (one
 * durable store to back up and inspect), queried by `ebpf-tuner log`, `status` and `explain`.
 */
import type Database from 'better-sqlite3';
import { channels, publish } from '../core/events.js';

export type AuditKind = 'applied' | 'dry-run' | 'refused' | 'reverted' | 'kept' | 'overridden' | 'failed' | 'restored';

export interface AuditRecord {
  id: string;
  time: number;
  kind: AuditKind;
  action: string;
  target: string;
  rule: string;
  reason: string;
  from?: string;
  to?: string;
  outcome?: string;
  evidence?: Record<string, number>;
  /** The decision this one refers to (a revert's or a verdict's subject). */
  ref?: string;
  expected?: string;
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
  expected TEXT
);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions(time);
`;

interface Row {
  id: string;
  time: number;
  kind: AuditKind;
  action: string;
  target: string;
  rule: string;
  reason: string;
  from_value: string | null;
  to_value: string | null;
  outcome: string | null;
  evidence: string | null;
  ref: string | null;
  expected: string | null;
}

function fromRow(r: Row): AuditRecord {
  const rec: AuditRecord = { id: r.id, time: r.time, kind: r.kind, action: r.action, target: r.target, rule: r.rule, reason: r.reason };
  if (r.from_value !== null) rec.from = r.from_value;
  if (r.to_value !== null) rec.to = r.to_value;
  if (r.outcome !== null) rec.outcome = r.outcome;
  if (r.evidence !== null) rec.evidence = JSON.parse(r.evidence) as Record<string, number>;
  if (r.ref !== null) rec.ref = r.ref;
  if (r.expected !== null) rec.expected = r.expected;
  return rec;
}

export class AuditLog {
  private readonly insert: Database.Statement;
  private readonly setOutcome: Database.Statement;

  constructor(private readonly db: Database.Database) {
    db.exec(SCHEMA);
    this.insert = db.prepare(
      `INSERT OR REPLACE INTO decisions (id, time, kind, action, target, rule, reason, from_value, to_value, outcome, evidence, ref, expected)
       VALUES (@id, @time, @kind, @action, @target, @rule, @reason, @from, @to, @outcome, @evidence, @ref, @expected)`,
    );
    this.setOutcome = db.prepare('UPDATE decisions SET outcome = ? WHERE id = ?');
  }

  record(rec: AuditRecord): void {
    this.insert.run({
      ...rec,
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

  get(id: string): AuditRecord | undefined {
    const r = this.db.prepare('SELECT * FROM decisions WHERE id = ?').get(id) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }
}
