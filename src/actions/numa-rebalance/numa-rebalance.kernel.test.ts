/**
 * numa_rebalance against the real kernel of a one-node host: migrate_pages(2) runs for real (node 0 to node 0
 * moves nothing and returns 0), and cpuset.cpus / cpuset.mems of a real v1 cpuset cgroup are written, journaled
 * and restored. The two-node logic is covered against the fake sysfs/procfs tree in numa-rebalance.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target } from '../../core/types.js';
import { readKnob } from '../../cgroup/cgroup.js';
import { cgroupId, detectLayout } from '../../cgroup/layout.js';
import { Journal } from '../../journal/journal.js';
import { readTopology } from '../../signals/numa/numa.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess, type TestCgroup } from '../../testing/cgroups.js';
import { KnobWriter } from '../knob-writer.js';
import { migratePages } from './migrate.js';
import { createNumaRebalanceAction } from './numa-rebalance.js';

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('kernel tests create cgroups under /sys/fs/cgroup: run them as root');
  if (detectLayout().controllers.cpuset === undefined) throw new Error('numa_rebalance needs a cpuset controller, and this host mounts none');
});
afterAll(async () => {
  await cleanupAll();
});

let cs: TestCgroup;
let proc: SpawnedProcess;
let stateDir: string;
let journal: Journal;
beforeEach(async () => {
  cs = makeTestCgroup('cpuset');
  // A process with some touched memory, so there are pages to (not) move.
  proc = await spawnInCgroup(cs.path, process.execPath, ['-e', 'const b = Buffer.alloc(32 << 20, 1); setInterval(() => b[0]++, 1000)']);
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-numa-kernel-'));
  journal = Journal.open(stateDir, silentLogger);
});
afterEach(async () => {
  journal.close();
  await killAndWait(proc);
  cs.remove();
  fs.rmSync(stateDir, { recursive: true, force: true });
});

const target = (): Target => ({ name: 'db', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: cs.path, version: 1, id: cgroupId(cs.path) } });
const writer = (scope = [cs.path]) => new KnobWriter({ journal, log: silentLogger, scope, layout: detectLayout() });

describe('migrate_pages on the real kernel', () => {
  it('node 0 to node 0 moves nothing and returns 0; a missing process is PID_NOT_FOUND', () => {
    const n = 200;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) expect(migratePages(proc.pid, [0], [0])).toBe(0);
    console.log(`migrate_pages(0 → 0) of a 32 MiB process: ${(Number(process.hrtime.bigint() - t0) / 1000 / n).toFixed(1)} µs per call`);
    expect(() => migratePages(0x3fffff, [0], [0])).toThrow(expect.objectContaining({ code: 'PID_NOT_FOUND' }));
  });
});

describe('numa_rebalance on a real v1 cpuset cgroup', () => {
  it('homes the CPUs on node 0 and reverts the original cpuset.cpus', () => {
    const topo = readTopology();
    expect(topo.nodes.length).toBeGreaterThanOrEqual(1);
    const node0 = topo.nodes[0]!;
    // An original that differs from node 0's CPUs: its first CPU only.
    fs.writeFileSync(path.join(cs.path, 'cpuset.cpus'), String(node0.cpus[0]));
    const a = createNumaRebalanceAction();
    expect(a.read(target())).toEqual({ cpusNode: node0.id, memNode: node0.id });
    const res = a.apply(a.plan(target(), { cpusNode: node0.id }), writer());
    expect(res.changed).toBe(node0.cpus.length > 1);
    expect(readKnob(path.join(cs.path, 'cpuset.cpus'))).toBe(readKnob(`/sys/devices/system/node/node${node0.id}/cpulist`));
    a.revert(target(), writer());
    expect(readKnob(path.join(cs.path, 'cpuset.cpus'))).toBe(String(node0.cpus[0]));
    expect(journal.active()).toEqual([]);
  });

  it('moving the memory to node 0 runs migrate_pages for real on the target process, in scope only', () => {
    const calls: { pid: number; ret: number }[] = [];
    const a = createNumaRebalanceAction({
      migrate: (pid, from, to) => {
        const ret = migratePages(pid, from, to);
        calls.push({ pid, ret });
        return ret;
      },
    });
    const plan = a.plan(target(), { memNode: 0 });
    // cpuset.mems is already 0 on a one-node host: nothing to write, the pages are moved all the same.
    expect(plan.changes).toEqual([]);
    expect(() => a.apply(plan, writer(['/sys/fs/cgroup/cpuset/ebpf-tuner-elsewhere']))).toThrow(expect.objectContaining({ code: 'OUT_OF_SCOPE' }));
    expect(calls).toEqual([]);
    a.apply(plan, writer());
    expect(calls).toEqual([{ pid: proc.pid, ret: 0 }]);
    expect(readKnob(path.join(cs.path, 'cpuset.mems'))).toBe('0');
  });
});
