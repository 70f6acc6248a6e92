import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type TestCgroup } from '../testing/cgroups.js';
import { cgroupOfPid, listProcs, listThreads, readKnob, writeKnob } from './cgroup.js';
import { cgroupId, cgroupVersionOf, controllerRootOf, detectLayout } from './layout.js';

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('kernel tests create cgroups under /sys/fs/cgroup: run them as root');
});
let cg: TestCgroup | undefined;
afterEach(() => {
  cg?.remove();
  cg = undefined;
});
afterAll(async () => {
  await cleanupAll();
});

describe('cgroup layout of this host', () => {
  it('is hybrid: cpu on its own v1 mount, a v2 tree without cpu', () => {
    const l = detectLayout();
    expect(l.mode).toBe('hybrid');
    expect(l.unified).toBe('/sys/fs/cgroup/unified');
    expect(l.controllers.cpu).toEqual({ version: 1, mount: '/sys/fs/cgroup/cpu', mountRoot: '/' });
    expect(l.controllers.memory.version).toBe(1);
    expect(l.controllers['name=systemd']?.mount).toBe('/sys/fs/cgroup/systemd');
    expect(cgroupVersionOf('/sys/fs/cgroup/cpu')).toBe(1);
    expect(cgroupVersionOf('/sys/fs/cgroup/unified')).toBe(2);
    expect(() => cgroupVersionOf('/sys/fs/cgroup')).toThrow(expect.objectContaining({ code: 'CGROUP_UNSUPPORTED' }));
    expect(controllerRootOf('/sys/fs/cgroup/cpu/x/y', l)).toBe('/sys/fs/cgroup/cpu');
  });
});

describe('cgroup files on real v1 cgroups', () => {
  it('gives each cgroup a distinct id: its kernfs inode', () => {
    cg = makeTestCgroup('cpu');
    const a = cgroupId(cg.path);
    const b = cgroupId(cg.child('b').path);
    expect(typeof a).toBe('bigint');
    expect(a).not.toBe(b);
    expect(a).toBe(fs.statSync(cg.path, { bigint: true }).ino);
  });

  it('lists procs and threads, and finds a process by /proc/<pid>/cgroup', async () => {
    cg = makeTestCgroup('cpu');
    // A node process has several threads, so tasks lists more than cgroup.procs.
    const p = await spawnInCgroup(cg.path, process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    try {
      await expect.poll(() => listThreads(cg!.path).length).toBeGreaterThan(1);
      expect(listProcs(cg.path)).toEqual([p.pid]);
      expect(listThreads(cg.path)).toContain(p.pid);
      expect(cgroupOfPid(p.pid, 'cpu', detectLayout())).toBe(cg.path);
      expect(cgroupOfPid(p.pid, 'cpuacct', detectLayout())).toBe('/sys/fs/cgroup/cpuacct');
    } finally {
      await killAndWait(p);
    }
    expect(() => cgroupOfPid(p.pid, 'cpu', detectLayout())).toThrow(expect.objectContaining({ code: 'PID_NOT_FOUND' }));
  });

  it('the kernel rejects a malformed value with EINVAL, mapped to ACTION_FAILED', () => {
    const c = (cg = makeTestCgroup('cpu'));
    const f = path.join(c.path, 'cpu.shares');
    expect(() => writeKnob(f, 'lots')).toThrow(expect.objectContaining({ code: 'ACTION_FAILED' }));
    expect(() => writeKnob(f, 'lots')).toThrow(/\(EINVAL\)/);
    expect(readKnob(f)).toBe('1024');
    writeKnob(f, '1'); // the kernel clamps instead of refusing
    expect(readKnob(f)).toBe('2');
    expect(() => writeKnob(path.join(c.path, 'cpu.weight'), '5')).toThrow(expect.objectContaining({ code: 'CGROUP_NOT_FOUND' }));
  });

  it('a knob of a removed cgroup reads as CGROUP_NOT_FOUND', () => {
    cg = makeTestCgroup('cpu');
    const f = path.join(cg.child('gone').path, 'cpu.shares');
    fs.rmdirSync(path.dirname(f));
    expect(() => readKnob(f)).toThrow(expect.objectContaining({ code: 'CGROUP_NOT_FOUND' }));
    expect(() => writeKnob(f, '5')).toThrow(expect.objectContaining({ code: 'CGROUP_NOT_FOUND' }));
  });
});
