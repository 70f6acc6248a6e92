import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target } from '../../core/types.js';
import { readKnob } from '../../cgroup/cgroup.js';
import { cgroupId, cgroupVersionOf, detectLayout } from '../../cgroup/layout.js';
import { Journal } from '../../journal/journal.js';
import { restoreAll } from '../../journal/restore.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type TestCgroup } from '../../testing/cgroups.js';
import { KnobWriter } from '../knob-writer.js';
import { cpuWeight } from './cpu-weight.js';

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('kernel tests create cgroups under /sys/fs/cgroup: run them as root');
});
afterAll(async () => {
  await cleanupAll();
});

let cg: TestCgroup;
let stateDir: string;
let journal: Journal;
beforeEach(() => {
  cg = makeTestCgroup('cpu');
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-cpuw-kernel-'));
  journal = Journal.open(stateDir, silentLogger);
});
afterEach(() => {
  journal.close();
  cg.remove();
  fs.rmSync(stateDir, { recursive: true, force: true });
});

function target(dir: string, name = 'noisy'): Target {
  return { name, role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: dir, version: cgroupVersionOf(dir), id: cgroupId(dir) } };
}

const writerFor = (dirs: string[], dryRun = false) =>
  new KnobWriter({ journal, log: silentLogger, scope: dirs, dryRun, layout: detectLayout() });

describe('cpu_weight on real v1 cpu cgroups', () => {
  it('writes cpu.shares, journals the original and reverts it', async () => {
    const noisy = cg.child('noisy');
    const t = target(noisy.path);
    expect(t.scope).toMatchObject({ version: 1 });
    // Busy work inside, so the knob is changed under a live task group.
    const p = await spawnInCgroup(noisy.path, process.execPath, ['-e', 'for(;;){}']);
    try {
      const w = writerFor([cg.path]);
      expect(cpuWeight.read(t)).toEqual({ weight: 100, idle: 0 });
      const res = cpuWeight.apply(cpuWeight.plan(t, { weight: 25 }), w);
      expect(res.changed).toBe(true);
      expect(readKnob(path.join(noisy.path, 'cpu.shares'))).toBe('256');
      expect(cpuWeight.read(t)).toEqual({ weight: 25, idle: 0 });
      expect(journal.active()).toMatchObject([{ path: path.join(noisy.path, 'cpu.shares'), original: '1024', lastWritten: '256' }]);

      cpuWeight.apply(cpuWeight.plan(t, { weight: 10 }), w);
      expect(readKnob(path.join(noisy.path, 'cpu.shares'))).toBe('102');
      expect(journal.active()[0].original).toBe('1024');

      expect(cpuWeight.revert(t, w)).toMatchObject([{ outcome: 'restored', wrote: true }]);
      expect(readKnob(path.join(noisy.path, 'cpu.shares'))).toBe('1024');
    } finally {
      await killAndWait(p);
    }
  });

  it('restoreAll from a fresh journal puts originals back and leaves an operator change alone', () => {
    const a = cg.child('a');
    const b = cg.child('b');
    fs.writeFileSync(path.join(a.path, 'cpu.shares'), '2048');
    const w = writerFor([cg.path]);
    cpuWeight.apply(cpuWeight.plan(target(a.path, 'a'), { weight: 50 }), w);
    cpuWeight.apply(cpuWeight.plan(target(b.path, 'b'), { weight: 50 }), w);
    // An operator takes b over.
    fs.writeFileSync(path.join(b.path, 'cpu.shares'), '3000');
    journal.close();

    journal = Journal.open(stateDir, silentLogger);
    const r = restoreAll(journal, silentLogger);
    expect(r.restored.map((x) => x.target)).toEqual(['a']);
    expect(r.overridden).toMatchObject([{ target: 'b', observed: '3000', original: '1024' }]);
    expect(readKnob(path.join(a.path, 'cpu.shares'))).toBe('2048');
    expect(readKnob(path.join(b.path, 'cpu.shares'))).toBe('3000');
  });

  it('a removed cgroup is reported vanished on restore', () => {
    const gone = cg.child('gone');
    cpuWeight.apply(cpuWeight.plan(target(gone.path), { weight: 50 }), writerFor([cg.path]));
    fs.rmdirSync(gone.path);
    expect(restoreAll(journal, silentLogger).vanished).toHaveLength(1);
  });

  it('dry-run leaves cpu.shares and the journal untouched', () => {
    const t = target(cg.child('d').path);
    const res = cpuWeight.apply(cpuWeight.plan(t, { weight: 5 }), writerFor([cg.path], true));
    expect(res.results[0]).toMatchObject({ status: 'dry-run', previous: '1024', value: '51' });
    expect(readKnob(path.join(cg.path, 'd', 'cpu.shares'))).toBe('1024');
    expect(journal.all()).toEqual([]);
  });

  it('refuses the cpu controller root even when the scope includes it', () => {
    const root = '/sys/fs/cgroup/cpu';
    const before = readKnob(path.join(root, 'cpu.shares'));
    const t = target(root, 'root');
    expect(() => cpuWeight.apply(cpuWeight.plan(t, { weight: 5 }), writerFor([root]))).toThrow(
      expect.objectContaining({ code: 'OUT_OF_SCOPE' }),
    );
    expect(readKnob(path.join(root, 'cpu.shares'))).toBe(before);
  });
});

/** CPU time of `pid` so far, ns: the first field of /proc/PID/schedstat. */
const cpuNs = (pid: number): number => Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The share of one CPU each pid got over `ms`, by /proc/PID/schedstat. */
async function shareOver(pids: number[], ms: number): Promise<number[]> {
  const before = pids.map(cpuNs);
  const t0 = process.hrtime.bigint();
  await sleep(ms);
  const wall = Number(process.hrtime.bigint() - t0);
  return pids.map((p, i) => (cpuNs(p) - before[i]!) / wall);
}

describe('cpu_weight below the floor: cpu.idle on real v1 cpu cgroups', () => {
  const idleOf = (dir: string) => readKnob(path.join(dir, 'cpu.idle'));
  const sharesOf = (dir: string) => readKnob(path.join(dir, 'cpu.shares'));

  it('idle 1 makes the kernel give the group the idle weight; revert puts cpu.idle back, then the weight', () => {
    const noisy = cg.child('noisy');
    // An operator's weight, which leaving idle alone would not bring back (the kernel resets it to the default).
    fs.writeFileSync(path.join(noisy.path, 'cpu.shares'), '2048');
    const t = target(noisy.path);
    const w = writerFor([cg.path]);
    expect(cpuWeight.read(t)).toEqual({ weight: 200, idle: 0 });
    cpuWeight.apply(cpuWeight.plan(t, { weight: 10 }), w);
    const res = cpuWeight.apply(cpuWeight.plan(t, { idle: 1 }), w);
    expect(res.changed).toBe(true);
    expect(idleOf(noisy.path)).toBe('1');
    // The kernel's idle weight (WEIGHT_IDLEPRIO) as v1 shows it.
    expect(sharesOf(noisy.path)).toBe('3');
    expect(cpuWeight.read(t)).toEqual({ weight: 1, idle: 1 });
    // Both originals are journaled; the kernel's rewrite of cpu.shares is recorded as ours, not as another writer's.
    expect(journal.active()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: path.join(noisy.path, 'cpu.shares'), original: '2048', lastWritten: '3' }),
        expect.objectContaining({ path: path.join(noisy.path, 'cpu.idle'), original: '0', lastWritten: '1' }),
      ]),
    );
    // A weight while idle is refused (the kernel would answer EINVAL), and nothing is written.
    expect(() => cpuWeight.plan(t, { weight: 50 })).toThrow(/cpu\.idle is 1/);

    expect(cpuWeight.revert(t, w).map((r) => [path.basename(r.path), r.outcome])).toEqual([
      ['cpu.idle', 'restored'],
      ['cpu.shares', 'restored'],
    ]);
    expect(idleOf(noisy.path)).toBe('0');
    expect(sharesOf(noisy.path)).toBe('2048');
    expect(journal.active()).toEqual([]);
  });

  it('leaving idle with a weight writes both, and restoreAll from a fresh journal (a crash) puts both originals back', () => {
    const noisy = cg.child('noisy');
    const t = target(noisy.path);
    const w = writerFor([cg.path]);
    cpuWeight.apply(cpuWeight.plan(t, { idle: 1 }), w);
    cpuWeight.apply(cpuWeight.plan(t, { idle: 0, weight: 40 }), w);
    expect([idleOf(noisy.path), sharesOf(noisy.path)]).toEqual(['0', '410']);
    cpuWeight.apply(cpuWeight.plan(t, { idle: 1 }), w);
    journal.close();

    journal = Journal.open(stateDir, silentLogger);
    const r = restoreAll(journal, silentLogger);
    expect(r.overridden).toEqual([]);
    expect(r.restored.map((x) => path.basename(x.path)).sort()).toEqual(['cpu.idle', 'cpu.shares']);
    expect([idleOf(noisy.path), sharesOf(noisy.path)]).toEqual(['0', '1024']);
  });

  it('an idle group yields the CPU to a sibling, as /proc/PID/schedstat shows', async () => {
    // Two single-threaded spinners on the same CPU, one per sibling group: equal weights split it evenly; with the
    // noisy group idle, the other gets nearly all of it.
    const a = cg.child('a');
    const b = cg.child('b');
    const spin = ['-c', '1', '/bin/sh', '-c', 'while :; do :; done'];
    const pa = await spawnInCgroup(a.path, 'taskset', spin);
    const pb = await spawnInCgroup(b.path, 'taskset', spin);
    try {
      const [equalA, equalB] = await shareOver([pa.pid, pb.pid], 1000);
      cpuWeight.apply(cpuWeight.plan(target(b.path, 'b'), { idle: 1 }), writerFor([cg.path]));
      const [idleA, idleB] = await shareOver([pa.pid, pb.pid], 1000);
      console.log(
        `CPU 1 share, equal weights: a ${(equalA! * 100).toFixed(1)}% b ${(equalB! * 100).toFixed(1)}%; ` +
          `b idle: a ${(idleA! * 100).toFixed(1)}% b ${(idleB! * 100).toFixed(1)}%`,
      );
      expect(Math.abs(equalA! - equalB!)).toBeLessThan(0.2);
      expect(idleA!).toBeGreaterThan(0.9);
      expect(idleB!).toBeLessThan(0.1);
    } finally {
      await killAndWait(pb);
      await killAndWait(pa);
    }
  });
});
