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
      expect(cpuWeight.read(t)).toEqual({ weight: 100 });
      const res = cpuWeight.apply(cpuWeight.plan(t, { weight: 25 }), w);
      expect(res.changed).toBe(true);
      expect(readKnob(path.join(noisy.path, 'cpu.shares'))).toBe('256');
      expect(cpuWeight.read(t)).toEqual({ weight: 25 });
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
