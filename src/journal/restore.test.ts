import diagnostics_channel from 'node:diagnostics_channel';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TunerError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import { kernelKnobIO, type KnobIO } from '../cgroup/cgroup.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../cgroup/fake-cgroup2.js';
import { Journal } from './journal.js';
import type { KnobEvent } from '../core/events.js';
import { restoreAll } from './restore.js';

let fake: FakeCgroup2;
let stateDir: string;
let journal: Journal;

beforeEach(() => {
  fake = createFakeCgroup2();
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-restore-test-'));
  journal = Journal.open(stateDir, silentLogger);
});
afterEach(() => {
  journal.close();
  fake.remove();
  fs.rmSync(stateDir, { recursive: true, force: true });
});

const read = (p: string): string => fs.readFileSync(p, 'utf8');

/** Journal a knob and change it as the writer would have. */
function changed(rel: string, file: string, value: string): { id: string; path: string } {
  const p = path.join(fake.mkdir(rel), file);
  const id = `test:${p}`;
  journal.remember({ id, path: p, target: rel, action: 'test' }, read(p).trimEnd());
  journal.wrote(id, value);
  fs.writeFileSync(p, value + '\n');
  return { id, path: p };
}

describe('restoreAll', () => {
  it('writes the original back where the knob still holds our value', () => {
    const a = changed('a', 'cpu.weight', '50');
    const b = changed('b', 'cpu.max', '20000 100000');
    const r = restoreAll(journal, silentLogger);
    expect(r.restored.map((x) => x.knobId).sort()).toEqual([a.id, b.id].sort());
    expect(r.restored.every((x) => x.wrote)).toBe(true);
    expect(read(a.path)).toBe('100\n');
    expect(read(b.path)).toBe('max 100000\n');
    expect(journal.active()).toEqual([]);
    expect(journal.get(a.id)?.state).toBe('restored');
  });

  it('compares normalized values: whitespace differences are still ours', () => {
    const b = changed('b', 'cpu.max', '20000 100000');
    fs.writeFileSync(b.path, '20000   100000\n');
    expect(restoreAll(journal, silentLogger).restored).toHaveLength(1);
    expect(read(b.path)).toBe('max 100000\n');
  });

  it('leaves a knob another writer changed alone, and reports it', () => {
    const a = changed('a', 'cpu.weight', '50');
    fs.writeFileSync(a.path, '300\n');
    const events: KnobEvent[] = [];
    const sub = (m: unknown) => events.push(m as KnobEvent);
    diagnostics_channel.subscribe('tuner:actions:knob', sub);
    try {
      const r = restoreAll(journal, silentLogger);
      expect(r.overridden).toMatchObject([{ knobId: a.id, observed: '300', original: '100', wrote: false }]);
    } finally {
      diagnostics_channel.unsubscribe('tuner:actions:knob', sub);
    }
    expect(read(a.path)).toBe('300\n');
    expect(journal.get(a.id)).toMatchObject({ state: 'overridden', observed: '300' });
    expect(events).toMatchObject([{ kind: 'overridden', knobId: a.id, observed: '300' }]);
  });

  it('marks a knob whose cgroup is gone as vanished', () => {
    const a = changed('a', 'cpu.weight', '50');
    fake.rmdir('a');
    const r = restoreAll(journal, silentLogger);
    expect(r.vanished.map((x) => x.knobId)).toEqual([a.id]);
    expect(journal.get(a.id)?.state).toBe('vanished');
    expect(fs.existsSync(a.path)).toBe(false);
  });

  it('counts a knob already back at its original as restored without writing', () => {
    const a = changed('a', 'cpu.weight', '50');
    fs.writeFileSync(a.path, '100\n');
    const r = restoreAll(journal, silentLogger);
    expect(r.restored).toMatchObject([{ knobId: a.id, wrote: false }]);
  });

  it('recognizes a value written just before a crash (pending) as ours', () => {
    const p = path.join(fake.mkdir('a'), 'cpu.weight');
    const id = 'test:pending';
    journal.remember({ id, path: p, target: 'a', action: 'test' }, '100');
    journal.intend(id, '40');
    fs.writeFileSync(p, '40\n'); // the write happened; the process died before recording it
    expect(restoreAll(journal, silentLogger).restored).toHaveLength(1);
    expect(read(p)).toBe('100\n');
  });

  it('reports a failing knob and carries on with the rest; the failed one stays active for a retry', () => {
    const a = changed('a', 'cpu.weight', '50');
    const b = changed('b', 'cpu.weight', '60');
    const io: KnobIO = {
      read: kernelKnobIO.read,
      write: (p, v) => {
        if (p === a.path) throw new TunerError('ACTION_EPERM', `write ${p} = "${v}": permission denied (EACCES)`);
        kernelKnobIO.write(p, v);
      },
    };
    const r = restoreAll(journal, silentLogger, { io });
    expect(r.failed).toMatchObject([{ knobId: a.id, observed: '50' }]);
    expect(r.failed[0].error?.code).toBe('ACTION_EPERM');
    expect(r.restored.map((x) => x.knobId)).toEqual([b.id]);
    expect(journal.active().map((e) => e.knobId)).toEqual([a.id]);
    expect(restoreAll(journal, silentLogger).restored.map((x) => x.knobId)).toEqual([a.id]);
  });

  it('turns unexpected errors into a failed item instead of throwing', () => {
    changed('a', 'cpu.weight', '50');
    const io: KnobIO = {
      read: () => {
        throw new Error('boom');
      },
      write: kernelKnobIO.write,
    };
    const r = restoreAll(journal, silentLogger, { io });
    expect(r.failed[0].error).toMatchObject({ code: 'INTERNAL' });
  });

  it('restores newest first', () => {
    changed('a', 'cpu.weight', '50');
    changed('b', 'cpu.weight', '60');
    const order: string[] = [];
    const io: KnobIO = { read: kernelKnobIO.read, write: (p, v) => (order.push(p), kernelKnobIO.write(p, v)) };
    restoreAll(journal, silentLogger, { io });
    expect(order).toEqual([fake.path('b/cpu.weight'), fake.path('a/cpu.weight')]);
  });

  it('in dry-run reports the same outcomes and changes neither knob nor journal', () => {
    const a = changed('a', 'cpu.weight', '50');
    const b = changed('b', 'cpu.weight', '60');
    fs.writeFileSync(b.path, '999\n');
    const r = restoreAll(journal, silentLogger, { dryRun: true });
    expect(r.restored.map((x) => x.knobId)).toEqual([a.id]);
    expect(r.overridden.map((x) => x.knobId)).toEqual([b.id]);
    expect(read(a.path)).toBe('50\n');
    expect(journal.active()).toHaveLength(2);
  });

  it('restores only what the filter accepts', () => {
    const a = changed('a', 'cpu.weight', '50');
    const b = changed('b', 'cpu.weight', '60');
    restoreAll(journal, silentLogger, { filter: (e) => e.target === 'b' });
    expect(read(a.path)).toBe('50\n');
    expect(read(b.path)).toBe('100\n');
  });
});
