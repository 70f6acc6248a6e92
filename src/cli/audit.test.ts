import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuditLog, DRY_RUN_DB, type AuditRecord } from '../audit/audit.js';
import { HoldTable } from '../audit/holds.js';
import { PID_FILE } from '../agent/agent.js';
import { silentLogger } from '../core/log.js';
import type { Verdict } from '../engine/closed-loop.js';
import type { Hold } from '../engine/holds.js';
import { busyHold } from '../testing/holds.js';
import { Journal } from '../journal/journal.js';
import { explainCommand, logCommand, statusCommand } from './audit.js';
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

describe('status and explain of a change held on purpose', () => {
  const since = Date.UTC(2026, 0, 5, 12, 0, 9);
  const hold = busyHold(since);

  /** A state directory with batch's cpu.weight changed, the hold, and (when `running`) this process as the agent. */
  function held(running: boolean, holds: Hold[] = [hold]): string {
    const dir = mkdtempSync(join(tmpdir(), 'ebpf-tuner-holds-'));
    dirs.push(dir);
    const journal = Journal.open(dir, silentLogger);
    const e = journal.remember({ id: 'batch/cpu.weight', path: '/sys/fs/cgroup/batch/cpu.weight', target: 'batch', action: 'cpu_weight' }, '100');
    journal.intend(e.knobId, '10');
    journal.wrote(e.knobId, '10');
    new AuditLog(journal.db).record({ ...base, id: 'r-1', time: since - 30_000, kind: 'applied', from: 'weight=100', to: 'weight=10' });
    new HoldTable(journal.db).replace(holds);
    journal.close();
    if (running) writeFileSync(join(dir, PID_FILE), `${process.pid}\n`);
    return dir;
  }

  afterEach(() => {
    vi.useRealTimers();
  });
  const at = (ms: number) => vi.useFakeTimers({ toFake: ['Date'], now: ms });

  it('status says what is held, why and since when', () => {
    at(since + 66_000);
    const text = statusCommand({ stateDir: held(true) });
    expect(text).toContain('1 held on purpose (not given back yet):');
    expect(text).toContain(
      '  batch cpu_weight held by noisy-neighbor since 2026-01-05 12:00:09Z (for 1m 6s): protect targets calm for 5 ticks (calm_ticks), but batch still wants 1.91 CPU ≥ release_below_cpus 0.1',
    );
    // Numbers older than a tick or two say how old they are.
    at(since + 80_000);
    expect(statusCommand({ stateDir: held(true) })).toMatch(/\(for 1m 20s\): .* release_below_cpus 0\.1 \[as of 2026-01-05 12:01:14Z\]$/m);
    const json = JSON.parse(statusCommand({ stateDir: held(true), json: true })) as { holds: Hold[] };
    expect(json.holds).toEqual([hold]);
  });

  it('status shows no hold of an agent that is not running, or of a change no longer in effect', () => {
    expect(statusCommand({ stateDir: held(false) })).not.toContain('held');
    expect(JSON.parse(statusCommand({ stateDir: held(true, [{ ...hold, target: 'gone' }]), json: true }))).toMatchObject({ holds: [] });
  });

  it('explain of the held change says it is held now, and why', () => {
    at(since + 65_000);
    expect(explainCommand({ stateDir: held(true), id: 'r-1' }).split('\n').at(-1)).toBe(
      'now: batch cpu_weight held by noisy-neighbor since 2026-01-05 12:00:09Z (for 1m 5s): protect targets calm for 5 ticks (calm_ticks), but batch still wants 1.91 CPU ≥ release_below_cpus 0.1',
    );
    expect(explainCommand({ stateDir: held(false), id: 'r-1' })).not.toContain('now:');
  });
});
