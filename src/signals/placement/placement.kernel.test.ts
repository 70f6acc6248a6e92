/**
 * The placement signal against the real kernel: two busy threads pinned to CPU 0 (taskset) in a real cpu cgroup
 * must show up as a pile-up on CPU 0, with both CPUs of the root cpuset allowed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target, TargetSignals } from '../../core/types.js';
import { cgroupId } from '../../cgroup/layout.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess, type TestCgroup } from '../../testing/cgroups.js';
import { PlacementSignal, type PlacementStats } from './placement.js';
import { onlineCpus } from './procfs.js';

const HOG = path.resolve('tools/bin/hog');

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('kernel tests create cgroups under /sys/fs/cgroup: run them as root');
  if (!fs.existsSync(HOG)) throw new Error(`${HOG} is missing: build the test workloads with make -C tools`);
  if (onlineCpus().length < 2) throw new Error('a pile-up needs an idle second CPU: this host has one CPU online');
});
afterAll(async () => {
  await cleanupAll();
});

let cg: TestCgroup | undefined;
let hog: SpawnedProcess | undefined;
afterEach(async () => {
  if (hog !== undefined) await killAndWait(hog);
  hog = undefined;
  cg?.remove();
  cg = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pinnedHog(): Promise<{ target: Target; pid: number }> {
  cg = makeTestCgroup('cpu');
  hog = await spawnInCgroup(cg.path, 'taskset', ['-c', '0', HOG, '--threads', '2', '--duration-s', '120']);
  // taskset execs the hog in place; wait for its two spinning threads.
  for (let i = 0; i < 200 && fs.readdirSync(`/proc/${hog.pid}/task`).length < 3; i++) await sleep(10);
  return {
    pid: hog.pid,
    target: { name: 'svc', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: cg.path, version: 1, id: cgroupId(cg.path) } },
  };
}

describe('placement on the real kernel', () => {
  it('sees two pinned busy threads piled up on CPU 0 while CPU 1 is allowed', async () => {
    const { target } = await pinnedHog();
    // Any CPU not fully busy counts idle: the host is shared with other test runs.
    const sig = new PlacementSignal({ idleBelow: 1 });
    sig.start({ log: silentLogger, targets: [target], cgroupVersion: 1 });
    try {
      const seen: PlacementStats[] = [];
      for (let i = 0; i < 8; i++) {
        await sleep(100);
        const out: Record<string, TargetSignals> = {};
        sig.collect(Date.now(), out);
        seen.push(out.svc!.placement as PlacementStats);
      }
      for (const s of seen) {
        expect(s.threads).toBe(3);
        expect(s.allowedCpus).toBeGreaterThanOrEqual(2);
      }
      // Spinning threads are always runnable: both sit on CPU 0 in every sample.
      expect(seen.filter((s) => s.pileup === 2 && s.pileupCpu === 0).length).toBeGreaterThanOrEqual(6);
      const host = sig.hostWindow()!;
      expect(host.cpus.length).toBeGreaterThanOrEqual(2);
      expect(host.cpus[0]).toBeGreaterThan(0.5);
      console.log(
        `placement: pileup=${seen.at(-1)!.pileup} on CPU ${seen.at(-1)!.pileupCpu}, idle=${JSON.stringify(seen.at(-1)!.idle)}, host busy=${host.cpus.map((b) => b.toFixed(2)).join(',')}`,
      );

      // Cost of one collect for this target (3 threads), as the agent pays it each tick.
      const n = 500;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) sig.collect(Date.now(), {});
      const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
      console.log(`placement collect: ${us.toFixed(1)} µs per tick for 1 target of 3 threads (${(us / 3).toFixed(1)} µs per thread incl. /proc/stat)`);
    } finally {
      sig.close();
    }
  });
});
