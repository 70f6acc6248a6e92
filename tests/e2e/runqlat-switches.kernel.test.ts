/**
 * runqlat's voluntary and involuntary context switches through `top --once --json`, against the kernel's own
 * counters: /proc/<pid>/task/<tid>/status voluntary_ctxt_switches and nonvoluntary_ctxt_switches, summed over the
 * threads and read before and after the call (so the kernel's counts cover the agent's one window and more).
 *
 * A CPU hog pinned beside another hog on the same CPU is switched out almost only by preemption; a victim that
 * sleeps between short bursts almost only by blocking. Each target's split must match the kernel's split.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import { cleanupAll, killAndWait, spawnTracked, type SpawnedProcess } from '../../src/testing/cgroups.js';
import { runCli, tempDir } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterAll(async () => {
  await cleanupAll();
});

function ctxSwitches(pid: number): { voluntary: number; involuntary: number } {
  let voluntary = 0;
  let involuntary = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)![1]);
    involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)![1]);
  }
  return { voluntary, involuntary };
}

type Runqlat = { switchesOut: number; voluntary: number; involuntary: number; wakeups: number; count: number };

describe('runqlat context switches through the CLI', () => {
  it('splits voluntary and involuntary switches as /proc/<pid>/status does', async () => {
    const dir = tempDir();
    const procs: SpawnedProcess[] = [];
    try {
      const hog = spawnTracked('taskset', ['-c', '1', toolPath('hog'), '--threads', '1']);
      const rival = spawnTracked('taskset', ['-c', '1', toolPath('hog'), '--threads', '1']);
      const sleeper = spawnTracked('taskset', ['-c', '0', toolPath('victim'), '--period-us', '5000', '--work-us', '100', '--quiet']);
      procs.push(hog, rival, sleeper);
      await sleep(500); // taskset has exec'd the tools
      const config = dir.file(
        'c.yaml',
        `targets:\n  - {name: hog, pids: [${hog.pid}], role: noisy}\n  - {name: sleeper, pids: [${sleeper.pid}], role: protect}\n`,
      );
      const before = { hog: ctxSwitches(hog.pid), sleeper: ctxSwitches(sleeper.pid) };
      const r = runCli(['top', '--once', '--json', '--config', config]);
      const after = { hog: ctxSwitches(hog.pid), sleeper: ctxSwitches(sleeper.pid) };
      expect(r.code, r.stderr).toBe(0);
      const snap = JSON.parse(r.stdout.trim().split('\n')[0]!) as { targets: Record<string, { runqlat: Runqlat }> };

      for (const name of ['hog', 'sleeper'] as const) {
        const q = snap.targets[name]!.runqlat;
        const kv = after[name].voluntary - before[name].voluntary;
        const ki = after[name].involuntary - before[name].involuntary;
        const detail = `${name}: agent ${q.voluntary} voluntary / ${q.involuntary} involuntary, kernel ${kv} / ${ki}`;
        expect(q.switchesOut, detail).toBeGreaterThan(50);
        expect(q.voluntary + q.involuntary, detail).toBe(q.switchesOut);
        // The window lies inside the kernel's interval: neither count can exceed the kernel's (5% + 5 for the reads
        // racing the last switches).
        expect(q.voluntary, detail).toBeLessThanOrEqual(kv * 1.05 + 5);
        expect(q.involuntary, detail).toBeLessThanOrEqual(ki * 1.05 + 5);
        // And the split matches: the share of involuntary switches within 0.15 of the kernel's.
        expect(Math.abs(q.involuntary / q.switchesOut - ki / (kv + ki)), detail).toBeLessThan(0.15);
        // Wakeups are the switch-ins that did not follow a preemption.
        expect(q.wakeups, detail).toBe(Math.max(0, q.count - q.involuntary));
      }
      // The ground truth this relies on: the hog is preempted, the sleeper blocks.
      expect(after.hog.involuntary - before.hog.involuntary).toBeGreaterThan(after.hog.voluntary - before.hog.voluntary);
      expect(after.sleeper.voluntary - before.sleeper.voluntary).toBeGreaterThan(after.sleeper.involuntary - before.sleeper.involuntary);
    } finally {
      for (const p of procs) await killAndWait(p);
      dir.remove();
    }
  });
});
