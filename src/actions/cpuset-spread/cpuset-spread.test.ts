import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TunerError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import type { Target } from '../../core/types.js';
import { cgroupOfPidIn } from '../../cgroup/cgroup.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../../cgroup/fake-cgroup2.js';
import { detectLayout, type CgroupLayout } from '../../cgroup/layout.js';
import { Journal } from '../../journal/journal.js';
import { createFakeNuma, type FakeNuma } from '../../signals/numa/fake-numa.js';
import { KnobWriter, knobIO, registerKnobScheme } from '../knob-writer.js';
import { affinityKnobPath, parseAffinityKnobPath } from './affinity.js';
import { chooseCpus, createCpusetSpreadAction, CPUSET_SPREAD } from './cpuset-spread.js';

describe('chooseCpus', () => {
  it('grows by keeping the CPUs in use and adding preferred, then lowest, allowed CPUs', () => {
    expect(chooseCpus([0], [0, 1, 2, 3], 2)).toEqual([0, 1]);
    expect(chooseCpus([0], [0, 1, 2, 3], 2, [3])).toEqual([0, 3]);
    expect(chooseCpus([0], [0, 1, 2, 3], 3, [3, 9])).toEqual([0, 1, 3]);
    expect(chooseCpus([5], [0, 1], 2)).toEqual([0, 1]);
  });

  it('shrinks by keeping preferred CPUs first (pinning), then the lowest in use', () => {
    expect(chooseCpus([0, 1, 2, 3], [0, 1, 2, 3], 2)).toEqual([0, 1]);
    expect(chooseCpus([0, 1, 2, 3], [0, 1, 2, 3], 2, [3, 2])).toEqual([2, 3]);
  });

  it('always returns 1..|allowed| allowed CPUs, and never drops a current CPU when growing', () => {
    const set = fc.uniqueArray(fc.integer({ min: 0, max: 63 }), { maxLength: 16 });
    fc.assert(
      fc.property(set, set.filter((a) => a.length > 0), fc.integer({ min: -3, max: 80 }), set, (cur, allowed, n, prefer) => {
        const out = chooseCpus(cur, allowed, n, prefer);
        expect(out.length).toBe(Math.max(1, Math.min(allowed.length, n)));
        expect(out.every((c) => allowed.includes(c))).toBe(true);
        expect(out).toEqual([...out].sort((a, b) => a - b));
        const kept = cur.filter((c) => allowed.includes(c));
        if (out.length >= kept.length) expect(kept.every((c) => out.includes(c))).toBe(true);
      }),
    );
  });
});

describe('affinity knob paths', () => {
  it('name one thread for its lifetime', () => {
    expect(affinityKnobPath({ tid: 42, starttime: 9001 })).toBe('affinity:42@9001');
    expect(parseAffinityKnobPath('affinity:42@9001')).toEqual({ tid: 42, starttime: 9001 });
    expect(() => parseAffinityKnobPath('affinity:42')).toThrow(/expected affinity:<tid>@<starttime>/);
  });
});

describe('cpuset_spread in cpuset mode, on a fake cgroup v2 tree', () => {
  let fake: FakeCgroup2;
  let stateDir: string;
  let journal: Journal;
  let target: Target;

  beforeEach(() => {
    fake = createFakeCgroup2();
    // A four-CPU parent, whatever this host has.
    const parent = fake.mkdir('app.slice', { subtreeControl: ['cpuset', 'cpu'] });
    fs.writeFileSync(path.join(parent, 'cpuset.cpus.effective'), '0-3\n');
    const dir = fake.mkdir('app.slice/db');
    fs.writeFileSync(path.join(dir, 'cpuset.cpus.effective'), '0-3\n');
    target = { name: 'db', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: dir, version: 2, id: 1n } };
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-spread-test-'));
    journal = Journal.open(stateDir, silentLogger);
  });
  afterEach(() => {
    journal.close();
    fake.remove();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  const action = () => createCpusetSpreadAction({ layout: fake.layout });
  const writer = (dryRun = false) => new KnobWriter({ journal, log: silentLogger, dryRun, scope: [fake.path('app.slice')], layout: fake.layout });
  const cpus = () => fs.readFileSync(fake.path('app.slice/db/cpuset.cpus'), 'utf8');

  it('reads the cpuset size (an empty cpuset.cpus inherits the effective set) and declares cpuset.cpus first', () => {
    expect(action().read(target)).toEqual({ cpus: 0, cpuset: 4 });
    expect(action().knobs(target)).toEqual([
      { id: `cpuset_spread:${fake.path('app.slice/db/cpuset.cpus')}`, path: fake.path('app.slice/db/cpuset.cpus'), target: 'db' },
    ]);
  });

  it('pins to fewer CPUs, preferring the named ones, and spreads back out', () => {
    const a = action();
    const p = a.plan(target, { cpuset: 2, prefer: '3' });
    expect(p).toMatchObject({ desired: { cpuset: 2, cpulist: '0,3' }, changes: [{ from: '', to: '0,3' }], notes: [] });
    a.apply(p, writer());
    expect(cpus()).toBe('0,3\n');
    expect(a.read(target).cpuset).toBe(2);
    const wider = a.plan(target, { cpuset: 3 });
    expect(wider.changes).toMatchObject([{ from: '0,3', to: '0-1,3' }]);
    expect(a.plan(target, { cpuset: 9 }).notes).toEqual(["cpuset 9 adjusted to 4 (the target's cpusets allow 0-3)"]);
  });

  it('pins to an exact list, refusing CPUs outside the parent', () => {
    expect(action().plan(target, { cpuset: 2, cpulist: '2-3' }).changes).toMatchObject([{ to: '2-3' }]);
    expect(() => action().plan(target, { cpuset: 2, cpulist: '2-5' })).toThrow(/must be non-empty and inside the CPUs its cpusets allow \(0-3\)/);
  });

  it('refuses malformed requests with the reason', () => {
    expect(() => action().plan(target, { cpuset: 2, cpus: 2 })).toThrow(/exactly one of cpus .* and cpuset/);
    expect(() => action().plan(target, {})).toThrow(/exactly one of cpus/);
    expect(() => action().plan(target, { cpuset: 'two' })).toThrow(/desired.cpuset must be a finite number/);
    expect(() => action().plan(target, { cpuset: 2, prefer: 'x' })).toThrow(/desired.prefer/);
    const noCpuset: Target = { ...target, scope: { kind: 'cgroup', path: fake.mkdir('plain'), version: 2, id: 2n } };
    fs.rmSync(path.join(fake.path('plain'), 'cpuset.cpus'));
    expect(() => action().plan(noCpuset, { cpuset: 1 })).toThrow(expect.objectContaining({ code: 'CGROUP_UNSUPPORTED' }));
  });

  it('restores from the journal: a count of CPUs cannot say which list the cpuset had', () => {
    const a = action();
    expect(a.restoresFromJournal).toBe(true);
    a.apply(a.plan(target, { cpuset: 1 }), writer());
    expect(cpus()).toBe('0\n');
    expect(a.revert(target, writer())).toMatchObject([{ outcome: 'restored', original: '' }]);
    expect(cpus()).toBe('\n');
    expect(journal.active()).toEqual([]);
  });
});

describe('cpuset_spread in affinity mode, planned on a fake procfs', () => {
  let numa: FakeNuma;
  const layout: CgroupLayout = { mode: 'v2', controllers: {}, mounts: [] };
  const target: Target = { name: 'db', role: 'protect', slot: 0, scope: { kind: 'pids', pids: [300] } };
  const masks = new Map<number, number[]>([
    [300, [0]],
    [301, [0]],
    [302, [0, 2]],
  ]);

  beforeEach(() => {
    numa = createFakeNuma([{ cpus: '0-1' }, { cpus: '2-3' }]);
    numa.addProcess({ pid: 300, threads: [{ tid: 300, cpu: 0 }, { tid: 301, cpu: 0, state: 'R' }, { tid: 302, cpu: 0, state: 'R' }] });
  });
  afterEach(() => numa.remove());

  const action = () =>
    createCpusetSpreadAction({ layout, procRoot: numa.procRoot, sysRoot: numa.sysRoot, getAffinity: (tid) => masks.get(tid) ?? [] });

  it('reads the union of the thread masks and plans one knob per thread that differs', () => {
    const a = action();
    expect(a.read(target)).toEqual({ cpus: 2 });
    const p = a.plan(target, { cpus: 2, prefer: '3' });
    // Union {0,2} already has 2 CPUs: every thread gets that set; 302 has it already.
    expect(p.desired).toEqual({ cpus: 2, cpulist: '0,2' });
    expect(p.changes).toEqual([
      { knob: { id: 'affinity:300@1000', path: 'affinity:300@1000', target: 'db' }, from: '0', to: '0,2' },
      { knob: { id: 'affinity:301@1000', path: 'affinity:301@1000', target: 'db' }, from: '0', to: '0,2' },
    ]);
    expect(a.plan(target, { cpus: 3, prefer: '3' }).desired.cpulist).toBe('0,2-3');
    expect(a.knobs(target).map((k) => k.id)).toEqual(['affinity:300@1000', 'affinity:301@1000', 'affinity:302@1000']);
  });

  it('a target without threads plans nothing', () => {
    const gone: Target = { ...target, scope: { kind: 'pids', pids: [999] } };
    expect(action().plan(gone, { cpus: 2 })).toMatchObject({ changes: [], notes: ['the target has no threads'] });
  });
});

describe('KnobWriter with a knob scheme (a thread knob)', () => {
  // An in-memory knob on this test process's own thread: scope is decided by the real cgroup it is in.
  const values = new Map<string, string>();
  let alive = true;
  registerKnobScheme({
    scheme: 'testthread',
    io: {
      read: (p) => {
        if (!alive) throw new TunerError('CGROUP_NOT_FOUND', `read ${p}: thread exited`);
        return values.get(p) ?? 'orig';
      },
      write: (p, v) => {
        if (!alive) throw new TunerError('CGROUP_NOT_FOUND', `write ${p}: thread exited`);
        values.set(p, v);
      },
    },
    task: () => ({ tid: process.pid, tgid: process.pid }),
  });
  const knob = { id: 'testthread:self', path: 'testthread:self', target: 'me' };

  let stateDir: string;
  let journal: Journal;
  let layout: CgroupLayout;
  let ownCgroup: string;
  beforeEach(() => {
    values.clear();
    alive = true;
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-scheme-test-'));
    journal = Journal.open(stateDir, silentLogger);
    layout = detectLayout();
    ownCgroup = cgroupOfPidIn(process.pid, layout.mounts[0]!);
  });
  afterEach(() => {
    journal.close();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });
  const writer = (o: { scope?: string[]; pids?: number[]; deny?: { path: string; subtree: boolean; reason: string }[] } = {}) =>
    new KnobWriter({ journal, log: silentLogger, layout, scope: o.scope ?? [ownCgroup], deny: o.deny ?? [], ...(o.pids ? { pids: o.pids } : {}) });

  it('journals, writes and restores through the scheme, scope-checked by the thread cgroup', () => {
    const w = writer();
    expect(w.set(knob, 'test', 'new')).toMatchObject({ status: 'written', previous: 'orig', firstWrite: true });
    expect(journal.get(knob.id)).toMatchObject({ original: 'orig', lastWritten: 'new', state: 'active' });
    expect(w.restore(knob.id)).toMatchObject({ outcome: 'restored', wrote: true });
    expect(values.get(knob.path)).toBe('orig');
  });

  it('refuses a thread outside every target, or in a denied cgroup; accepts it by pid', () => {
    expect(() => writer({ scope: ['/nonexistent/cgroup'] }).set(knob, 'test', 'x')).toThrow(
      expect.objectContaining({ code: 'OUT_OF_SCOPE', message: expect.stringMatching(/outside every configured target/) }),
    );
    expect(() => writer({ deny: [{ path: ownCgroup, subtree: false, reason: "the agent's own cgroup" }] }).set(knob, 'test', 'x')).toThrow(
      /which the agent never changes/,
    );
    expect(writer({ scope: [], pids: [process.pid] }).set(knob, 'test', 'x').status).toBe('written');
    expect(values.get(knob.path)).toBe('x');
  });

  it('a knob whose thread is gone restores as vanished; plain files still go to the file IO', () => {
    writer().set(knob, 'test', 'new');
    alive = false;
    expect(writer().restoreAll().vanished).toMatchObject([{ knobId: knob.id }]);
    const file = path.join(stateDir, 'plain');
    fs.writeFileSync(file, '5\n');
    expect(knobIO().read(file)).toBe('5');
  });
});
