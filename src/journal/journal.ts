/**
 * The durable journal of original knob values: before the agent changes any knob it records what was there, so
 * that a later run — after a clean stop, a crash or a SIGKILL — can put it back. One SQLite database in the state
 * directory; other parts of the agent (the audit log) add their own tables to it through `db`.
 *
 * Durability: WAL with synchronous=FULL, so every committed statement has been fsynced before the call returns.
 * A write is bracketed by `intend` (the value about to be written) and `wrote` (it was), so a crash between the
 * two still leaves enough to tell our value from someone else's.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { TunerError, errnoCode } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { KnobRef } from '../core/types.js';

export type KnobState = 'active' | 'restored' | 'overridden' | 'vanished';

export interface JournalEntry {
  knobId: string;
  path: string;
  target: string;
  action: string;
  /** The value found before our first write, without its trailing newline. */
  original: string;
  /** The last value we wrote and saw succeed; null until the first write completes. */
  lastWritten: string | null;
  /** A value we were about to write when the process last stopped (a crash between `intend` and `wrote`). */
  pending: string | null;
  state: KnobState;
  /** The value seen when another writer was detected (state 'overridden'). */
  observed: string | null;
  /** ms since the epoch. */
  createdAt: number;
  updatedAt: number;
}

const JOURNAL_SCHEMA_VERSION = 1;
const DB_FILE = 'state.db';

interface Row {
  knob_id: string;
  path: string;
  target: string;
  action: string;
  original: string;
  last_written: string | null;
  pending: string | null;
  state: KnobState;
  observed: string | null;
  created_at: number;
  updated_at: number;
}

function toEntry(r: Row): JournalEntry {
  return {
    knobId: r.knob_id,
    path: r.path,
    target: r.target,
    action: r.action,
    original: r.original,
    lastWritten: r.last_written,
    pending: r.pending,
    state: r.state,
    observed: r.observed,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function ensureStateDir(stateDir: string): void {
  try {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    // mkdir's mode is filtered by the umask and ignored for a directory that already exists.
    if ((fs.statSync(stateDir).mode & 0o777) !== 0o700) fs.chmodSync(stateDir, 0o700);
  } catch (e) {
    throw new TunerError(
      'JOURNAL',
      `create state directory ${stateDir}: ${errnoCode(e) ?? String(e)} — choose a writable state_dir (the agent keeps its journal there)`,
      { cause: e },
    );
  }
}

export class Journal {
  /** The database handle, for modules that keep their own tables here. The `knobs` table belongs to the journal. */
  readonly db: Database.Database;
  readonly file: string;
  private readonly log: Logger;
  private readonly stmts: ReturnType<typeof prepare>;

  private constructor(db: Database.Database, file: string, log: Logger) {
    this.db = db;
    this.file = file;
    this.log = log;
    this.stmts = prepare(db);
  }

  static open(stateDir: string, log: Logger): Journal {
    const dir = path.resolve(stateDir);
    ensureStateDir(dir);
    const file = path.join(dir, DB_FILE);
    let db: Database.Database | undefined;
    try {
      // Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database file's mode.
      fs.closeSync(fs.openSync(file, 'a', 0o600));
      fs.chmodSync(file, 0o600);
      db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      migrate(db);
    } catch (e) {
      db?.close();
      if (e instanceof TunerError) throw e;
      throw new TunerError(
        'JOURNAL',
        `open journal ${file}: ${e instanceof Error ? e.message : String(e)} — check the state directory is writable and the file is not corrupt (move it aside to start over; originals recorded in it are then lost)`,
        { cause: e },
      );
    }
    const j = new Journal(db, file, log.child({ module: 'journal' }));
    const n = j.active().length;
    if (n > 0) j.log.info({ file, active: n }, 'journal has knobs still changed by a previous run');
    return j;
  }

  /**
   * Every knob in a journal database opened elsewhere (read-only, by `status` while an agent may be running),
   * most recently changed first.
   */
  static entriesReadOnly(db: Database.Database): JournalEntry[] {
    return (db.prepare('SELECT * FROM knobs ORDER BY updated_at DESC').all() as Row[]).map(toEntry);
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  /**
   * Record the value a knob had before our first write. Idempotent: while an entry is active its original is kept,
   * whatever is passed now (the knob then holds our value, not the original). An entry that is no longer active
   * (restored, overridden, vanished) is re-armed with the new original.
   */
  remember(knob: KnobRef & { action: string }, original: string): JournalEntry {
    return this.tx(`remember ${knob.id}`, () => {
      const now = Date.now();
      const cur = this.stmts.get.get(knob.id) as Row | undefined;
      if (cur?.state === 'active') {
        if (cur.path !== knob.path) {
          throw new TunerError(
            'JOURNAL',
            `remember knob ${knob.id}: it is journaled for ${cur.path} but now names ${knob.path} — knob ids must be stable per path`,
          );
        }
        return toEntry(cur);
      }
      if (cur === undefined) {
        this.stmts.insert.run({ knob_id: knob.id, path: knob.path, target: knob.target, action: knob.action, original, now });
      } else {
        this.stmts.rearm.run({ knob_id: knob.id, path: knob.path, target: knob.target, action: knob.action, original, now });
      }
      return toEntry(this.stmts.get.get(knob.id) as Row);
    });
  }

  /** Record the value about to be written, before writing it. */
  intend(knobId: string, value: string): void {
    this.updateActive('intend', knobId, () => this.stmts.intend.run({ knob_id: knobId, value, now: Date.now() }));
  }

  /** Record a value as written (clears any pending one). */
  wrote(knobId: string, value: string): void {
    this.updateActive('record write of', knobId, () => this.stmts.wrote.run({ knob_id: knobId, value, now: Date.now() }));
  }

  /** The write announced by `intend` did not happen. */
  cancelPending(knobId: string): void {
    this.updateActive('cancel pending write of', knobId, () => this.stmts.cancel.run({ knob_id: knobId, now: Date.now() }));
  }

  /** Entries whose knob may still hold a value of ours, oldest first. */
  active(): JournalEntry[] {
    this.assertOpen('list active knobs');
    return (this.stmts.active.all() as Row[]).map(toEntry);
  }

  all(): JournalEntry[] {
    this.assertOpen('list knobs');
    return (this.stmts.all.all() as Row[]).map(toEntry);
  }

  get(knobId: string): JournalEntry | undefined {
    this.assertOpen(`read knob ${knobId}`);
    const r = this.stmts.get.get(knobId) as Row | undefined;
    return r === undefined ? undefined : toEntry(r);
  }

  markRestored(knobId: string): void {
    this.setState(knobId, 'restored', null);
  }

  /** Another writer changed the knob after us: it is theirs now, and we neither write nor restore it. */
  markOverridden(knobId: string, observed: string): void {
    this.setState(knobId, 'overridden', observed);
  }

  /** The knob's file is gone (its cgroup was removed): there is nothing to restore. */
  markVanished(knobId: string): void {
    this.setState(knobId, 'vanished', null);
  }

  /** Drop an entry entirely, e.g. when an operator hands an overridden knob back to the agent. */
  forget(knobId: string): void {
    this.assertOpen(`forget knob ${knobId}`);
    this.stmts.forget.run(knobId);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private setState(knobId: string, state: KnobState, observed: string | null): void {
    this.assertOpen(`mark knob ${knobId} ${state}`);
    const info = this.stmts.setState.run({ knob_id: knobId, state, observed, now: Date.now() });
    if (info.changes === 0) {
      throw new TunerError('JOURNAL', `mark knob ${knobId} ${state}: it is not in the journal`);
    }
  }

  private updateActive(verb: string, knobId: string, run: () => Database.RunResult): void {
    this.assertOpen(`${verb} knob ${knobId}`);
    if (run().changes === 0) {
      throw new TunerError('JOURNAL', `${verb} knob ${knobId}: it has no active journal entry — call remember() before writing`);
    }
  }

  private tx<T>(what: string, fn: () => T): T {
    this.assertOpen(what);
    try {
      return this.db.transaction(fn).immediate();
    } catch (e) {
      if (e instanceof TunerError) throw e;
      throw new TunerError('JOURNAL', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
  }

  private assertOpen(what: string): void {
    if (!this.db.open) throw new TunerError('JOURNAL', `${what}: the journal ${this.file} is closed`);
  }
}

function migrate(db: Database.Database): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_versions (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL
  )`);
  const row = db.prepare('SELECT version FROM schema_versions WHERE component = ?').get('journal') as
    | { version: number }
    | undefined;
  if (row !== undefined && row.version > JOURNAL_SCHEMA_VERSION) {
    throw new TunerError(
      'JOURNAL',
      `open journal: its schema version ${row.version} is newer than this agent's (${JOURNAL_SCHEMA_VERSION}) — run the newer agent to restore, or upgrade this one`,
    );
  }
  if (row === undefined) {
    db.transaction(() => {
      db.exec(`CREATE TABLE knobs (
        knob_id TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        target TEXT NOT NULL,
        action TEXT NOT NULL,
        original TEXT NOT NULL,
        last_written TEXT,
        pending TEXT,
        state TEXT NOT NULL CHECK (state IN ('active', 'restored', 'overridden', 'vanished')),
        observed TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      )`);
      db.exec('CREATE INDEX knobs_state ON knobs(state)');
      db.prepare('INSERT INTO schema_versions (component, version) VALUES (?, ?)').run('journal', JOURNAL_SCHEMA_VERSION);
    })();
  }
}

function prepare(db: Database.Database) {
  return {
    get: db.prepare('SELECT * FROM knobs WHERE knob_id = ?'),
    active: db.prepare("SELECT * FROM knobs WHERE state = 'active' ORDER BY created_at, rowid"),
    all: db.prepare('SELECT * FROM knobs ORDER BY created_at, rowid'),
    insert: db.prepare(`INSERT INTO knobs (knob_id, path, target, action, original, last_written, pending, state, observed, created_at, updated_at)
      VALUES (@knob_id, @path, @target, @action, @original, NULL, NULL, 'active', NULL, @now, @now)`),
    rearm: db.prepare(`UPDATE knobs SET path = @path, target = @target, action = @action, original = @original,
      last_written = NULL, pending = NULL, state = 'active', observed = NULL, created_at = @now, updated_at = @now
      WHERE knob_id = @knob_id`),
    intend: db.prepare("UPDATE knobs SET pending = @value, updated_at = @now WHERE knob_id = @knob_id AND state = 'active'"),
    wrote: db.prepare(
      "UPDATE knobs SET last_written = @value, pending = NULL, updated_at = @now WHERE knob_id = @knob_id AND state = 'active'",
    ),
    cancel: db.prepare("UPDATE knobs SET pending = NULL, updated_at = @now WHERE knob_id = @knob_id AND state = 'active'"),
    setState: db.prepare(
      'UPDATE knobs SET state = @state, observed = @observed, pending = NULL, updated_at = @now WHERE knob_id = @knob_id',
    ),
    forget: db.prepare('DELETE FROM knobs WHERE knob_id = ?'),
  };
}
