/**
 * Cgroup statistics on the real kernel's v1 hierarchies: the test creates the same relative path under the cpu,
 * cpuacct and memory mounts, caps the cpu cgroup at 0.2 CPU (cfs_quota_us 20000 per 100000) and runs two spinning
 * threads in it, plus a process that holds 64 MiB of anonymous memory in the memory cgroup.
 *
 * Ground truth: the quota (the cgroup cannot use more than 0.2 CPU, and two threads that never sleep use all of it),
 * the threads' own on-CPU time (/proc/<pid>/task/<tid>/schedstat), and the bytes the memory holder touched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { errnoCode } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import type { Target, TargetSignals } from '../../core/types.js';
import { cgroupId, detectLayout } from '../../cgroup/layout.js';
import { toolPath } from '../../bpf/paths.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess } from '../../testing/cgroups.js';
import { CgstatSignal, type CgstatWindow } from './cgstat.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const layout = detectLayout();

function onCpuNs(pid: number): number {
  let sum = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) sum += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
  return sum;
}

/** The twin of a test cgroup in another v1 hierarchy: same name, so cleanupAll() also finds it. */
function twin(controller: string, name: string): { path: string; remove(): void } {
  const c = layout.controllers[controller];
  if (!c || c.version !== 1) throw new Error(`this host has no v1 ${controller} hierarchy, which the v1 test needs`);
  const dir = path.join(c.mount, name);
  fs.mkdirSync(dir);
  return {
    path: dir,
    remove(): void {
      for (let i = 0; ; i++) {
        try {
          for (const pid of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
            try {
              fs.writeFileSync(path.join(c.mount, 'cgroup.procs'), pid);
            } catch (e) {
              if (errnoCode(e) !== 'ESRCH') throw e;
            }
          }
          fs.rmdirSync(dir);
          return;
        } catch (e) {
          if (errnoCode(e) === 'ENOENT') return;
          if (errnoCode(e) !== 'EBUSY' || i > 200) throw e;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        }
      }
    },
  };
}

afterAll(async () => {
  await cleanupAll();
});

describe('cgstat on the real kernel (cgroup v1)', () => {
  it('measures CPU used under a quota, its throttling, and memory, from cpu, cpuacct and memory hierarchies', async () => {
    const cpu = makeTestCgroup('cpu');
    const name = path.basename(cpu.path);
    const acct = twin('cpuacct', name);
    const mem = twin('memory', name);
    const signal = new CgstatSignal({ layout });
    let hog: SpawnedProcess | undefined;
    let holder: SpawnedProcess | undefined;
    try {
      fs.writeFileSync(path.join(cpu.path, 'cpu.cfs_period_us'), '100000');
      fs.writeFileSync(path.join(cpu.path, 'cpu.cfs_quota_us'), '20000');
      fs.writeFileSync(path.join(mem.path, 'memory.limit_in_bytes'), String(512 * 1024 * 1024));
      hog = await spawnInCgroup(cpu.path, toolPath('hog'), ['--threads', '2']);
      fs.writeFileSync(path.join(acct.path, 'cgroup.procs'), String(hog.pid));
      holder = await spawnInCgroup(
        mem.path,
        process.execPath,
        ['-e', "globalThis.keep = Buffer.alloc(64 * 1024 * 1024, 1); console.log('ready'); setInterval(() => {}, 1000);"],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve) => holder!.child.stdout!.once('data', () => resolve()));

      const targets: Target[] = [{ name: 'capped', role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: cpu.path, version: 1, id: cgroupId(cpu.path) } }];
      signal.start({ log: silentLogger, targets, cgroupVersion: 1 });
      await sleep(500);
      signal.collect(Date.now(), {});
      const cpu0 = onCpuNs(hog.pid);
      const windows: CgstatWindow[] = [];
      for (let i = 0; i < 3; i++) {
        await sleep(1000);
        const out: Record<string, TargetSignals> = {};
        signal.collect(Date.now(), out);
        windows.push(out.capped.cgstat as CgstatWindow);
      }
      const truthUs = (onCpuNs(hog.pid) - cpu0) / 1000;
      const usedUs = windows.reduce((a, w) => a + w.cpuUsageUs, 0);
      for (const w of windows) {
        console.log(
          `cores ${w.cpuCores.toFixed(3)}, periods ${w.nrPeriods}, throttled ${w.nrThrottled} (${(w.throttledRatio * 100).toFixed(0)}%), ` +
            `throttled ${(w.throttledUs / 1000).toFixed(0)} ms, memory ${((w.memoryBytes ?? 0) / 2 ** 20).toFixed(1)} MiB ` +
            `(anon ${((w.anonBytes ?? 0) / 2 ** 20).toFixed(1)}, file ${((w.fileBytes ?? 0) / 2 ** 20).toFixed(1)}, limit ${((w.memoryLimitBytes ?? 0) / 2 ** 20).toFixed(0)} MiB)`,
        );
      }
      console.log(`cpu used over 3 windows: cpuacct ${(usedUs / 1000).toFixed(1)} ms vs the threads' schedstat ${(truthUs / 1000).toFixed(1)} ms`);

      for (const w of windows) {
        expect(w.version).toBe(1);
        expect(w.unavailable).toBeUndefined();
        // The quota is the ceiling.
        expect(w.cpuCores).toBeLessThan(0.25);
        // 100 ms periods: about ten per second.
        expect(w.nrPeriods).toBeGreaterThanOrEqual(8);
        expect(w.nrPeriods).toBeLessThanOrEqual(13);
        expect(w.memoryLimitBytes).toBe(512 * 1024 * 1024);
        expect(w.anonBytes).toBeGreaterThan(64 * 1024 * 1024);
        expect(w.memoryBytes).toBeGreaterThanOrEqual(w.anonBytes!);
      }
      // Two spinning threads reach the quota and are throttled in most periods — judged on the median window, so one
      // window in which other load on the host kept them below the quota does not decide it.
      const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      expect(median(windows.map((w) => w.cpuCores))).toBeGreaterThan(0.12);
      expect(median(windows.map((w) => w.throttledRatio))).toBeGreaterThan(0.5);
      expect(median(windows.map((w) => w.throttledUs))).toBeGreaterThan(100_000);
      // Same accounting, window edges apart: within 10%.
      expect(usedUs).toBeGreaterThan(truthUs * 0.9);
      expect(usedUs).toBeLessThan(truthUs * 1.1);
    } finally {
      signal.close();
      if (hog) await killAndWait(hog);
      if (holder) await killAndWait(holder);
      acct.remove();
      mem.remove();
      cpu.remove();
    }
  });

  it('says which part is missing when a v1 cgroup has no twin in cpuacct or memory', () => {
    const cpu = makeTestCgroup('cpu');
    const signal = new CgstatSignal({ layout });
    try {
      signal.start({ log: silentLogger, targets: [{ name: 'lonely', role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: cpu.path, version: 1, id: cgroupId(cpu.path) } }], cgroupVersion: 1 });
      const out: Record<string, TargetSignals> = {};
      signal.collect(Date.now() + 1000, out);
      const w = out.lonely.cgstat as CgstatWindow;
      expect(w.nrPeriods).toBe(0);
      expect(w.unavailable).toEqual([
        expect.stringMatching(/^cpuacct: the target has no cgroup in the cpuacct hierarchy \(.* does not exist\) — fix: /),
        expect.stringMatching(/^memory: the target has no cgroup in the memory hierarchy \(.* does not exist\) — fix: /),
      ]);
    } finally {
      signal.close();
      cpu.remove();
    }
  });
});
