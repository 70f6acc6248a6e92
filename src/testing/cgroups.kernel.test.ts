import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listProcs } from '../cgroup/cgroup.js';
import { TEST_CGROUP_PREFIX, cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, spawnTracked } from './cgroups.js';

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('kernel tests create cgroups under /sys/fs/cgroup: run them as root');
});
afterAll(async () => {
  await cleanupAll();
});

describe('test cgroup helpers on the real cpu hierarchy', () => {
  it('create, nest, move processes in, and remove deepest first', async () => {
    const cg = makeTestCgroup('cpu');
    expect(path.basename(cg.path)).toMatch(new RegExp(`^${TEST_CGROUP_PREFIX}${process.pid}-[0-9a-f]{8}$`));
    expect(fs.existsSync(path.join(cg.path, 'cpu.shares'))).toBe(true);
    const child = cg.child('inner');
    const grandchild = child.child('deeper');

    const p = await spawnInCgroup(grandchild.path, 'sleep', ['300']);
    expect(listProcs(grandchild.path)).toEqual([p.pid]);
    // The process runs the command, not the shell that put it there.
    await expect.poll(() => fs.readFileSync(`/proc/${p.pid}/comm`, 'utf8').trim()).toBe('sleep');

    const q = spawnTracked('sleep', ['300']);
    cg.moveIn(q.pid);
    expect(listProcs(cg.path)).toEqual([q.pid]);

    // remove() moves what is left to the root and kills nothing.
    cg.remove();
    cg.remove();
    expect(fs.existsSync(cg.path)).toBe(false);
    expect(listProcs(cg.root)).toEqual(expect.arrayContaining([p.pid, q.pid]));
    expect(fs.existsSync(`/proc/${p.pid}`)).toBe(true);

    await killAndWait(p);
    await killAndWait(q.pid);
    expect(p.child.signalCode).toBe('SIGKILL');
    expect(fs.existsSync(`/proc/${q.pid}`)).toBe(false);
  });

  it('a v1 cpuset test cgroup accepts tasks (cpus and mems are inherited)', async () => {
    const cg = makeTestCgroup('cpuset');
    try {
      const p = await spawnInCgroup(cg.path, 'sleep', ['300']);
      expect(listProcs(cg.path)).toEqual([p.pid]);
      await killAndWait(p);
    } finally {
      cg.remove();
    }
  });

  it('cleanupAll ends tracked processes and removes leftovers of dead test processes only', async () => {
    const root = '/sys/fs/cgroup/cpu';
    const mine = makeTestCgroup('cpu');
    const p = await spawnInCgroup(mine.path, 'sleep', ['300']);
    // A pid that cannot be alive (beyond pid_max) stands for a crashed test run.
    const stale = path.join(root, `${TEST_CGROUP_PREFIX}99999999-deadbeef`);
    fs.mkdirSync(path.join(stale, 'sub'), { recursive: true });
    // A live process's test cgroup (pid 1 is always alive) must be left for it.
    const live = path.join(root, `${TEST_CGROUP_PREFIX}1-cafebabe`);
    fs.mkdirSync(live);
    try {
      const removed = await cleanupAll();
      expect(removed).toEqual(expect.arrayContaining([mine.path, stale]));
      expect(removed).not.toContain(live);
      expect(fs.existsSync(mine.path)).toBe(false);
      expect(fs.existsSync(stale)).toBe(false);
      expect(fs.existsSync(live)).toBe(true);
      expect(p.child.exitCode !== null || p.child.signalCode !== null).toBe(true);
    } finally {
      fs.rmdirSync(live);
    }
  });
});
