import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import { Journal } from './journal.js';

let dir: string;
let journal: Journal | undefined;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-journal-test-'));
});
afterEach(() => {
  journal?.close();
  journal = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

const knob = (id = 'cpu_weight:/cg/a/cpu.weight') => ({ id, path: '/cg/a/cpu.weight', target: 'a', action: 'cpu_weight' });

describe('Journal', () => {
  it('creates a private state dir and database with WAL and synchronous=FULL', () => {
    const stateDir = path.join(dir, 'state', 'nested');
    journal = Journal.open(stateDir, silentLogger);
    expect(fs.statSync(stateDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(stateDir, 'state.db')).mode & 0o777).toBe(0o600);
    expect(journal.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(journal.db.pragma('synchronous', { simple: true })).toBe(2);
    expect(journal.db.prepare("SELECT version FROM schema_versions WHERE component = 'journal'").get()).toEqual({ version: 1 });
  });

  it('tightens an existing state dir to 0700', () => {
    const stateDir = path.join(dir, 'loose');
    fs.mkdirSync(stateDir, { mode: 0o755 });
    fs.chmodSync(stateDir, 0o755);
    journal = Journal.open(stateDir, silentLogger);
    expect(fs.statSync(stateDir).mode & 0o777).toBe(0o700);
  });

  it('keeps the first original while the entry is active', () => {
    journal = Journal.open(dir, silentLogger);
    const e = journal.remember(knob(), '100');
    expect(e).toMatchObject({ original: '100', lastWritten: null, pending: null, state: 'active' });
    journal.intend(e.knobId, '50');
    expect(journal.get(e.knobId)?.pending).toBe('50');
    journal.wrote(e.knobId, '50');
    expect(journal.remember(knob(), '50').original).toBe('100');
    expect(journal.get(e.knobId)).toMatchObject({ original: '100', lastWritten: '50', pending: null, state: 'active' });
    expect(journal.active().map((x) => x.knobId)).toEqual([e.knobId]);
  });

  it('re-arms an entry that is no longer active with a fresh original', () => {
    journal = Journal.open(dir, silentLogger);
    journal.remember(knob(), '100');
    journal.wrote(knob().id, '50');
    journal.markRestored(knob().id);
    expect(journal.active()).toEqual([]);
    const e = journal.remember(knob(), '200');
    expect(e).toMatchObject({ original: '200', lastWritten: null, state: 'active', observed: null });
  });

  it('records overridden (with the observed value) and vanished states', () => {
    journal = Journal.open(dir, silentLogger);
    journal.remember(knob('a'), '1');
    journal.remember(knob('b'), '2');
    journal.markOverridden('a', '77');
    journal.markVanished('b');
    expect(journal.get('a')).toMatchObject({ state: 'overridden', observed: '77' });
    expect(journal.get('b')?.state).toBe('vanished');
    expect(journal.active()).toEqual([]);
    expect(journal.all()).toHaveLength(2);
    journal.forget('a');
    expect(journal.get('a')).toBeUndefined();
  });

  it('refuses to record writes for knobs it has no active entry for', () => {
    journal = Journal.open(dir, silentLogger);
    expect(() => journal!.wrote('nope', '1')).toThrow(expect.objectContaining({ code: 'JOURNAL' }));
    expect(() => journal!.intend('nope', '1')).toThrow(/call remember\(\) before writing/);
    expect(() => journal!.markRestored('nope')).toThrow(/not in the journal/);
  });

  it('refuses to re-point an active knob id at another path', () => {
    journal = Journal.open(dir, silentLogger);
    journal.remember(knob(), '1');
    expect(() => journal!.remember({ ...knob(), path: '/elsewhere' }, '1')).toThrow(/knob ids must be stable/);
  });

  it('keeps entries across close and reopen', () => {
    journal = Journal.open(dir, silentLogger);
    journal.remember(knob('a'), '100');
    journal.wrote('a', '50');
    journal.remember(knob('b'), 'max 100000');
    journal.close();
    journal.close();
    expect(journal.isOpen).toBe(false);
    expect(() => journal!.active()).toThrow(/is closed/);

    journal = Journal.open(dir, silentLogger);
    expect(journal.active().map((e) => [e.knobId, e.original, e.lastWritten])).toEqual([
      ['a', '100', '50'],
      ['b', 'max 100000', null],
    ]);
  });

  it('lets other modules keep their own tables in the same database', () => {
    journal = Journal.open(dir, silentLogger);
    journal.db.exec('CREATE TABLE audit (id INTEGER PRIMARY KEY, msg TEXT)');
    journal.db.prepare('INSERT INTO audit (msg) VALUES (?)').run('hello');
    journal.close();
    journal = Journal.open(dir, silentLogger);
    expect(journal.db.prepare('SELECT msg FROM audit').all()).toEqual([{ msg: 'hello' }]);
  });

  it('refuses a journal written by a newer schema', () => {
    journal = Journal.open(dir, silentLogger);
    journal.close();
    const db = new Database(path.join(dir, 'state.db'));
    db.prepare("UPDATE schema_versions SET version = 99 WHERE component = 'journal'").run();
    db.close();
    expect(() => Journal.open(dir, silentLogger)).toThrow(/schema version 99 is newer/);
  });

  it('fails with JOURNAL when the state dir cannot be created', () => {
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, '');
    expect(() => Journal.open(path.join(file, 'sub'), silentLogger)).toThrow(expect.objectContaining({ code: 'JOURNAL' }));
  });
});
