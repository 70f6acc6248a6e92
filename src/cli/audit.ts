/**
 * `ebpf-tuner log`, `status` and `explain`: read the audit trail and the journal in the state directory, while the
 * agent runs or after it stopped. `log` and `explain` also read the dry runs' audit (DRY_RUN_DB) and mark what came
 * from it. Read-only: nothing is created when there is no state yet.
 */
import Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TunerError } from '../core/errors.js';
import { AuditLog, DRY_RUN_DB, type AuditRecord } from '../audit/audit.js';
import { auditTime as time, explainText, holdLine } from '../audit/explain.js';
import { HoldTable } from '../audit/holds.js';
import type { Hold } from '../engine/holds.js';
import { Journal, type JournalEntry } from '../journal/journal.js';

import { PID_FILE } from '../agent/agent.js';
import { StateDirLock } from '../journal/ownership.js';
import { stateDbIfAny } from './state-access.js';

function openDb(stateDir: string, cmd: string, name?: string): Database.Database | undefined {
  const file = stateDbIfAny(stateDir, cmd, false, name);
  if (file === undefined) return undefined;
  try {
    return new Database(file, { readonly: true, fileMustExist: true });
  } catch (e) {
    throw new TunerError('JOURNAL', `open ${file}: ${e instanceof Error ? e.message : String(e)} — check --state-dir`);
  }
}

function hasTable(db: Database.Database, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

function records(db: Database.Database, opts: { since?: number; limit?: number; target?: string }): AuditRecord[] {
  if (!hasTable(db, 'decisions')) return [];
  // AuditLog's constructor creates its table; on a read-only handle query through the same row mapping instead.
  return AuditLog.queryReadOnly(db, opts);
}

/** The real runs' audit and the dry runs' one, each open when it exists; the caller closes them. */
function openAudits(stateDir: string, cmd: string): { db: Database.Database; dryRun: boolean }[] {
  const out: { db: Database.Database; dryRun: boolean }[] = [];
  try {
    const real = openDb(stateDir, cmd);
    if (real) out.push({ db: real, dryRun: false });
    const dry = openDb(stateDir, cmd, DRY_RUN_DB);
    if (dry) out.push({ db: dry, dryRun: true });
    return out;
  } catch (e) {
    for (const o of out) o.db.close();
    throw e;
  }
}

const mark = (rec: AuditRecord, dryRun: boolean): AuditRecord => (dryRun ? { ...rec, dryRun: true } : rec);

export function logCommand(opts: { stateDir: string; json?: boolean; since?: number; target?: string; limit?: number }): string {
  const audits = openAudits(opts.stateDir, 'log');
  if (audits.length === 0) return opts.json ? '[]' : `no decisions recorded in ${opts.stateDir}`;
  try {
    const since = opts.since !== undefined ? Date.now() - opts.since : 0;
    const limit = opts.limit ?? 200;
    const rows = audits
      .flatMap(({ db, dryRun }) => records(db, { since, target: opts.target, limit }).map((r) => mark(r, dryRun)))
      .sort((a, b) => b.time - a.time || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
      .slice(0, limit)
      .reverse();
    if (opts.json) return JSON.stringify(rows);
    if (rows.length === 0) return 'no decisions in that period';
    return rows
      .map((r) => {
        const change = r.from || r.to ? ` ${r.from ?? '?'} → ${r.to ?? '?'}` : '';
        const origin = r.dryRun ? '[dry run] ' : '';
        return `${time(r.time)}  ${r.id}  ${origin}${r.kind.padEnd(10)} ${r.action} ${r.target}${change}  ${r.reason}${r.outcome ? ` [${r.outcome}]` : ''}`;
      })
      .join('\n');
  } finally {
    for (const a of audits) a.db.close();
  }
}

function agentPid(stateDir: string): number | undefined {
  const holder = StateDirLock.holder(stateDir);
  if (holder !== undefined) return holder.pid;
  try {
    const pid = Number(readFileSync(join(stateDir, PID_FILE), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

export function statusCommand(opts: { stateDir: string; json?: boolean }): string {
  // First: a state directory this user cannot read must fail here, not read as "not running, no changes".
  const db = openDb(opts.stateDir, 'status');
  const pid = agentPid(opts.stateDir);
  let knobs: JournalEntry[] = [];
  let last: AuditRecord | undefined;
  let holds: Hold[] = [];
  try {
    if (db && hasTable(db, 'knobs')) knobs = Journal.entriesReadOnly(db);
    if (db) last = records(db, { limit: 1 })[0];
    // Holds are the running agent's reasons; a stopped (or crashed) agent holds nothing.
    if (db && pid !== undefined) holds = HoldTable.readOnly(db);
  } finally {
    db?.close();
  }
  const active = knobs.filter((k) => k.state === 'active');
  // Only for changes still in effect: a row written just before a restore must not outlive it here.
  holds = holds.filter((h) => active.some((k) => k.target === h.target && k.action === h.action));
  const overridden = knobs.filter((k) => k.state === 'overridden');
  const status = {
    running: pid !== undefined,
    pid,
    stateDir: opts.stateDir,
    changes: active.map((k) => ({ target: k.target, action: k.action, path: k.path, original: k.original, value: k.lastWritten, since: k.updatedAt })),
    overridden: overridden.map((k) => ({ target: k.target, action: k.action, path: k.path, original: k.original, observed: k.observed })),
    holds,
    lastDecision: last ? { id: last.id, time: last.time, kind: last.kind, target: last.target, reason: last.reason } : undefined,
  };
  if (opts.json) return JSON.stringify(status);
  const lines = [pid ? `agent running (pid ${pid})` : `agent not running (state in ${opts.stateDir})`];
  if (active.length === 0) lines.push('no changes in effect: every knob holds its original value');
  else {
    lines.push(`${active.length} change(s) in effect:`);
    for (const k of active) lines.push(`  ${k.target}  ${k.path}: ${k.original} → ${k.lastWritten ?? '(being written)'}  (${k.action}, since ${time(k.updatedAt)})`);
  }
  if (holds.length > 0) {
    lines.push(`${holds.length} held on purpose (not given back yet):`);
    const now = Date.now();
    for (const h of holds) lines.push(`  ${holdLine(h, now)}`);
  }
  for (const k of overridden) lines.push(`  left alone: ${k.path} was changed by another writer to ${k.observed} (original ${k.original})`);
  if (last) lines.push(`last decision: ${last.id} ${last.kind} ${last.action} ${last.target} at ${time(last.time)}`);
  return lines.join('\n');
}

export function explainCommand(opts: { stateDir: string; id: string; json?: boolean }): string {
  const audits = openAudits(opts.stateDir, 'explain');
  try {
    const withDecisions = audits.filter((a) => hasTable(a.db, 'decisions'));
    if (withDecisions.length === 0) {
      throw new TunerError('CLI_USAGE', `explain ${opts.id}: no decisions recorded in ${opts.stateDir} — check --state-dir`);
    }
    let found: { rec: AuditRecord; related: AuditRecord[] } | undefined;
    for (const { db, dryRun } of withDecisions) {
      const rec = AuditLog.getReadOnly(db, opts.id);
      if (rec) {
        found = { rec: mark(rec, dryRun), related: AuditLog.relatedReadOnly(db, opts.id).map((r) => mark(r, dryRun)) };
        break;
      }
    }
    if (!found) throw new TunerError('CLI_USAGE', `explain ${opts.id}: no such decision — list them with: ebpf-tuner log`);
    const { rec, related } = found;
    const held = currentHold(opts.stateDir, rec);
    if (opts.json) return JSON.stringify(held ? { decision: rec, related, held } : { decision: rec, related });
    return explainText(rec, related, held, Date.now());
  } finally {
    for (const a of audits) a.db.close();
  }
}

/**
 * The hold the running agent keeps now on the change `rec` made, if any: for a forward change still in effect, why it
 * has not been given back. Undefined for a dry run, a restore, or when no agent runs.
 */
function currentHold(stateDir: string, rec: AuditRecord): Hold | undefined {
  if (rec.dryRun || rec.kind !== 'applied' || agentPid(stateDir) === undefined) return undefined;
  const db = openDb(stateDir, 'explain');
  try {
    return db ? HoldTable.readOnly(db).find((h) => h.target === rec.target && h.action === rec.action && h.since >= rec.time) : undefined;
  } finally {
    db?.close();
  }
}
