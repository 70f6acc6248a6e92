import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog, DRY_RUN_DB, type AuditRecord } from '../audit/audit.js';
import type { Verdict } from '../engine/closed-loop.js';
import { explainCommand, logCommand } from './audit.js';
import { STATE_DB } from './state-access.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const base = { action: 'cpu_weight', target: 'batch', rule: 'noisy-neighbor', reason: 'web p99 hot' };
const verdict: Verdict = {
  decisionId: 'r-1',
  verdict: 'kept',
  rule: 'noisy-neighbor',
  action: 'cpu_weight',
  target: 'batch',
  metric: 'runqlat.p99',
  before: 8_000,
  after: 5_000,
  improvement: 0.375,
  samples: 5,
  samplesBefore: 5,
  pValue: 0.004,
  low: 0.25,
  high: 0.5,
  confidence: 0.9,
};

function stateDir(real: AuditRecord[], dry: AuditRecord[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'ebpf-tuner-audit-'));
  dirs.push(dir);
  for (const [file, recs] of [
    [STATE_DB, real],
    [DRY_RUN_DB, dry],
  ] as const) {
    const db = new Database(join(dir, file));
    const log = new AuditLog(db);
    for (const r of recs) log.record(r);
    db.close();
  }
  return dir;
}

describe('log and explain over the real and the dry-run audit', () => {
  const dir = () =>
    stateDir(
      [
        { ...base, id: 'r-1', time: 1_000, kind: 'applied', from: 'weight=100', to: 'weight=75' },
        { ...base, id: 'r-2', time: 7_000, kind: 'kept', ref: 'r-1', reason: 'kept', outcome: 'kept', verdict },
      ],
      [{ ...base, id: 'd-1', time: 4_000, kind: 'dry-run', from: 'weight=100', to: 'weight=75' }],
    );

  it('merges both in time order and marks the dry-run ones', () => {
    const rows = JSON.parse(logCommand({ stateDir: dir(), json: true })) as AuditRecord[];
    expect(rows.map((r) => [r.id, r.dryRun ?? false])).toEqual([
      ['r-1', false],
      ['d-1', true],
      ['r-2', false],
    ]);
    expect(rows[2]!.verdict).toEqual(verdict);
    expect(logCommand({ stateDir: dir() })).toMatch(/d-1 {2}\[dry run\] dry-run/);
  });

  it('explains a dry-run decision as one that changed nothing and was not judged', () => {
    const text = explainCommand({ stateDir: dir(), id: 'd-1' });
    expect(text).toMatch(/dry run, nothing was changed/);
    expect(text).toMatch(/no verdict/);
  });

  it('explains a real change with its verdict and uncertainty', () => {
    expect(explainCommand({ stateDir: dir(), id: 'r-1' })).toContain(
      'verdict: kept — median 8000 before, 5000 after: 38% better (90% CI 25% to 50%, p = 0.004; 5 ticks before, 5 after)',
    );
  });

  it('reads an audit written before verdicts were stored', () => {
    const d = mkdtempSync(join(tmpdir(), 'ebpf-tuner-audit-'));
    dirs.push(d);
    const db = new Database(join(d, STATE_DB));
    db.exec('CREATE TABLE decisions (id TEXT PRIMARY KEY, time INTEGER NOT NULL, kind TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, rule TEXT NOT NULL, reason TEXT NOT NULL, from_value TEXT, to_value TEXT, outcome TEXT, evidence TEXT, ref TEXT, expected TEXT)');
    db.prepare("INSERT INTO decisions (id, time, kind, action, target, rule, reason) VALUES ('o-1', 1, 'applied', 'cpu_weight', 'batch', 'r', 'old')").run();
    db.close();
    expect(JSON.parse(logCommand({ stateDir: d, json: true }))).toMatchObject([{ id: 'o-1', kind: 'applied' }]);
    // Opening it for writing adds the column.
    const rw = new Database(join(d, STATE_DB));
    new AuditLog(rw).record({ ...base, id: 'o-2', time: 2, kind: 'kept', verdict });
    rw.close();
    expect(JSON.parse(logCommand({ stateDir: d, json: true })).at(-1).verdict).toEqual(verdict);
  });
});
