/**
 * cpuset_spread (default mode: per-thread affinity) on a pid target whose threads sit in the controller roots — every
 * process of a host without cgroup management. Affinity is a knob of each thread alone, so the roots' deny rule (which
 * is about writing the roots' files) does not apply: the agent spreads the piled-up threads and puts every mask back
 * on SIGTERM. Checked against the threads' own Cpus_allowed_list in /proc/<pid>/task/<tid>/status.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import { cleanupAll, killAndWait, spawnTracked, type SpawnedProcess } from '../../src/testing/cgroups.js';
import { startAgent, tempDir, waitUntil, type AgentProcess } from './helpers.js';

afterAll(async () => {
  await cleanupAll();
});

function masks(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => /^Cpus_allowed_list:\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))![1]!);
}

/** Waits until `taskset` has exec'd the hog and all its spinning threads exist (the main thread and `threads`). */
async function hogRunning(pid: number, threads: number): Promise<void> {
  await waitUntil(
    () => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'hog' && readdirSync(`/proc/${pid}/task`).length === threads + 1,
    10_000,
    `hog ${pid} running with ${threads} threads`,
  );
}

function cgroupLine(pid: number, controller: string): string {
  return readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.split(':')[1]?.split(',').includes(controller)) ?? '';
}

/** The cpuset_spread rule alone, set by `cpusetSpread` (its `cpuset_spread:` line), for process `pid` as the protect target. */
function spreadConfig(pid: number, cpusetSpread: string): string {
  return `tick: 500ms
policy:
  noisy_neighbor: {enabled: false}
  pressure_backoff: {enabled: false}
  numa_rebalance: {enabled: false}
  io_prefetch: {enabled: false}
  ${cpusetSpread}
targets:
  - {name: app, pids: [${pid}], role: protect}
`;
}

describe('cpuset_spread on a pid target in the controller roots, through the agent', () => {
  it('spreads the piled-up threads by affinity and restores their masks on exit', async () => {
    const state = tempDir();
    const procs: (SpawnedProcess | AgentProcess)[] = [];
    try {
      // Two spinning threads confined to CPU 1: a pile-up while CPU 0 is allowed. A process started here sits in the
      // cpu and cpuset roots, as every process does on a host nobody has split into cgroups.
      const hog = spawnTracked('taskset', ['-c', '1', toolPath('hog'), '--threads', '2']);
      procs.push(hog);
      await hogRunning(hog.pid, 2);
      expect(cgroupLine(hog.pid, 'cpu')).toMatch(/:\/$/);
      expect(cgroupLine(hog.pid, 'cpuset')).toMatch(/:\/$/);
      const before = masks(hog.pid);
      expect(new Set(before)).toEqual(new Set(['1']));
      // Any CPU not fully busy counts as idle, and one tick of pile-up is enough: other work on this host keeps the
      // other CPU busy at times, and must not decide the test.
      const config = state.file('c.yaml', spreadConfig(hog.pid, 'cpuset_spread: {idle_below: 1, trigger_ticks: 1}'));
      const agent = startAgent(['--config', config, '--state-dir', state.path]);
      procs.push(agent);
      const d = await agent.waitFor((l) => l.decision !== undefined && l.action === 'cpuset_spread' && l.kind !== 'refused', 90_000);
      // Before the fix: kind "failed", outcome "... a cgroup controller root, which the agent never changes".
      expect(d.kind, JSON.stringify(d)).toBe('applied');
      const spread = masks(hog.pid);
      expect(spread.filter((m) => m === '0-1').length, spread.join(' ')).toBeGreaterThanOrEqual(2);
      agent.child.kill('SIGTERM');
      expect((await agent.exited).code).toBe(0);
      expect(masks(hog.pid)).toEqual(before);
    } finally {
      for (const p of procs) await killAndWait(p);
      state.remove();
    }
  }, 180_000);

  it('with pin_cpus pins the piled-up threads to exactly those CPUs, and restores their masks on exit', async () => {
    const state = tempDir();
    const procs: (SpawnedProcess | AgentProcess)[] = [];
    try {
      const hog = spawnTracked('taskset', ['-c', '1', toolPath('hog'), '--threads', '2']);
      procs.push(hog);
      await hogRunning(hog.pid, 2);
      const before = masks(hog.pid);
      expect(new Set(before)).toEqual(new Set(['1']));
      const config = state.file('c.yaml', spreadConfig(hog.pid, 'cpuset_spread: {mode: affinity, min_pileup: 2, idle_below: 1, trigger_ticks: 1, calm_ticks: 1000, pin_cpus: "0"}'));
      const agent = startAgent(['--config', config, '--state-dir', state.path]);
      procs.push(agent);
      const d = await agent.waitFor((l) => l.decision !== undefined && l.action === 'cpuset_spread' && l.kind !== 'refused', 90_000);
      expect(d.kind, JSON.stringify(d)).toBe('applied');
      const pinned = masks(hog.pid);
      expect(pinned.filter((m) => m === '0').length, pinned.join(' ')).toBeGreaterThanOrEqual(2);
      expect(pinned.filter((m) => m === '0-1'), pinned.join(' ')).toEqual([]);
      agent.child.kill('SIGTERM');
      expect((await agent.exited).code).toBe(0);
      expect(masks(hog.pid)).toEqual(before);
    } finally {
      for (const p of procs) await killAndWait(p);
      state.remove();
    }
  }, 180_000);
});
