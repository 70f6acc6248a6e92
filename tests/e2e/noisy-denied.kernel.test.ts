/**
 * The noisy-neighbour rule beside a noisy target it may never change, through the real CLI: the busiest noisy
 * target is under guardrails.deny_cgroups, a second noisy target is allowed. The rule must hold back the busiest
 * target it may act on (the allowed one) rather than propose the denied one, be refused, and never act again.
 * Checked in the cgroups' own cpu.shares; every original is back after SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess, type TestCgroup } from '../../src/testing/cgroups.js';
import { type AgentProcess, spawnHogs, spawnVictim, startAgent, tempDir } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const shares = (cg: TestCgroup) => Number(readFileSync(join(cg.path, 'cpu.shares'), 'utf8'));

afterAll(async () => {
  await cleanupAll();
});

describe('noisy neighbour with a denied busiest target, through the agent', () => {
  it('lowers the busiest noisy target it may change, and leaves the denied one alone', async () => {
    const base = makeTestCgroup('cpu');
    const web = base.child('web');
    const big = base.child('big');
    const small = base.child('small');
    const state = tempDir();
    const procs: (SpawnedProcess | AgentProcess)[] = [];
    try {
      // The victim and the small hog share CPU 1; the big hog spins on both CPUs, so it is by far the busiest.
      procs.push(await spawnVictim(web.path));
      procs.push(await spawnHogs(big.path, '0,1'));
      procs.push(await spawnInCgroup(small.path, 'taskset', ['-c', '1', toolPath('hog'), '--threads', '2']));
      const config = state.file(
        'c.yaml',
        `tick: 1s
policy:
  noisy_neighbor: {p99_threshold_us: 3000, max_noisy_per_step: 1}
  pressure_backoff: {enabled: false}
  cpuset_spread: {enabled: false}
  numa_rebalance: {enabled: false}
  io_prefetch: {enabled: false}
guardrails: {deny_cgroups: [${big.path}]}
targets:
  - {name: web, cgroup: ${web.path}, role: protect}
  - {name: big, cgroup: ${big.path}, role: noisy}
  - {name: small, cgroup: ${small.path}, role: noisy}
`,
      );
      const agent = startAgent(['--config', config, '--state-dir', state.path]);
      procs.push(agent);
      const applied = await agent.waitFor((l) => l.decision !== undefined && l.action === 'cpu_weight' && l.kind === 'applied', 60_000);
      // Before the fix the rule proposed big every tick and was refused (DENIED); small was never lowered.
      expect(applied.target).toBe('small');
      expect(shares(small)).toBeLessThan(1024);
      expect(shares(big)).toBe(1024);
      expect(agent.lines.some((l) => l.decision !== undefined && l.target === 'big' && l.kind === 'refused')).toBe(false);
      agent.child.kill('SIGTERM');
      expect((await agent.exited).code).toBe(0);
      expect([shares(web), shares(big), shares(small)]).toEqual([1024, 1024, 1024]);
    } finally {
      for (const p of procs) await killAndWait(p);
      await sleep(50);
      base.remove();
      state.remove();
    }
  }, 120_000);
});
