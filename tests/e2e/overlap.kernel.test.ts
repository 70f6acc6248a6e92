/**
 * Overlapping targets through `top --once --json`: a pid target whose process also sits in a cgroup target. Each
 * target names a set of tasks and neither owns them, so both must see the same events — run-queue switch-ins and
 * futex waits — rather than one of them seeing none. Checked against the kernel's own count of the process's
 * timeslices (/proc/<pid>/task/<tid>/schedstat, third field) over the call.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess } from '../../src/testing/cgroups.js';
import { runCli, tempDir } from './helpers.js';

afterAll(async () => {
  await cleanupAll();
});

function slices(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) n += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[2]);
  return n;
}

type Snap = { targets: Record<string, { runqlat: { count: number; switchesOut: number }; futex?: { count: number } }> };

describe('overlapping targets through the CLI', () => {
  it('a process in both a pid target and a cgroup target is counted by both', async () => {
    const cg = makeTestCgroup('cpu');
    const dir = tempDir();
    const procs: SpawnedProcess[] = [];
    try {
      // Four threads contending for one lock: context switches and futex waits, all in one process.
      const p = await spawnInCgroup(cg.path, toolPath('futex-contend'), ['--threads', '4']);
      procs.push(p);
      // Listed in both orders, so neither position in the file decides who sees the process.
      for (const order of [['box', 'one'], ['one', 'box']]) {
        const lines: Record<string, string> = {
          box: `  - {name: box, cgroup: ${cg.path}, role: noisy}`,
          one: `  - {name: one, pids: [${p.pid}], role: protect}`,
        };
        const config = dir.file('c.yaml', `targets:\n${order.map((n) => lines[n]).join('\n')}\n`);
        const before = slices(p.pid);
        const r = runCli(['top', '--once', '--json', '--config', config]);
        const kernel = slices(p.pid) - before;
        expect(r.code, r.stderr).toBe(0);
        const snap = JSON.parse(r.stdout.trim().split('\n')[0]!) as Snap;
        const box = snap.targets.box!;
        const one = snap.targets.one!;
        const detail = `order ${order.join(',')}: futex box ${box.futex?.count} one ${one.futex?.count}; box ${JSON.stringify(box.runqlat)} one ${JSON.stringify(one.runqlat)}, kernel ${kernel}`;
        expect(one.runqlat.count, detail).toBeGreaterThan(50);
        // The cgroup holds nothing but this process, and both see the same events in the same window — up to the
        // odd event that lands between the reads of the two slots (a map read is not atomic across entries).
        expect(Math.abs(box.runqlat.count - one.runqlat.count), detail).toBeLessThanOrEqual(2);
        expect(Math.abs(box.runqlat.switchesOut - one.runqlat.switchesOut), detail).toBeLessThanOrEqual(2);
        expect(one.runqlat.count, detail).toBeLessThanOrEqual(kernel * 1.05 + 5);
        expect(one.futex?.count ?? 0, detail).toBeGreaterThan(0);
        expect(Math.abs((box.futex?.count ?? 0) - (one.futex?.count ?? 0)), detail).toBeLessThanOrEqual(2);
      }
    } finally {
      for (const p of procs) await killAndWait(p);
      cg.remove();
      dir.remove();
    }
  });
});
