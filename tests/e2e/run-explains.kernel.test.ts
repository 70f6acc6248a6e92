/**
 * What `run` says about itself while it runs, through the real CLI: the NUMA rule that has nothing to do on a
 * one-node host says so once at start (and numa_maps is never read), and `/api/status` reports the agent's state.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupAll, killAndWait } from '../../src/testing/cgroups.js';
import { CLI, startAgent, tempDir } from './helpers.js';

afterAll(async () => {
  await cleanupAll();
});

const nodes = (() => {
  try {
    return readdirSync('/sys/devices/system/node').filter((n) => /^node\d+$/.test(n)).length;
  } catch {
    return 0;
  }
})();

describe('run explains itself', () => {
  it('says once at start that NUMA balancing has nothing to do on a one-node host, and why', async () => {
    // The host this runs on: one node (or a kernel without NUMA). A multi-node host is the other branch.
    expect(nodes, 'this test needs a one-node host').toBeLessThanOrEqual(1);
    const state = tempDir();
    const agent = startAgent(['--dry-run', '--duration', '3', '--state-dir', state.path, '--config', state.file('c.yaml', `tick: 500ms\ntargets:\n  - {name: me, pids: [${process.pid}], role: protect}\n`)]);
    try {
      expect((await agent.exited).code, agent.stderr()).toBe(0);
      const said = agent.lines.filter((l) => typeof l.msg === 'string' && /numa_rebalance has nothing to do/.test(l.msg));
      expect(said).toHaveLength(1);
      expect(said[0]!.msg).toMatch(/one NUMA node, so every memory access is local; numa_maps is not read/);
      expect(agent.lines.some((l) => l.msg === 'numa sampling numa_maps')).toBe(false);
    } finally {
      await killAndWait(agent);
      state.remove();
    }
  });

  it('never opens a numa_maps on a one-node host, even with a target whose process holds memory', () => {
    expect(nodes, 'this test needs a one-node host').toBeLessThanOrEqual(1);
    const state = tempDir();
    try {
      const trace = join(state.path, 'strace.out');
      const cfg = state.file('c.yaml', `tick: 500ms\npolicy:\n  numa_rebalance: {sample_ticks: 1}\ntargets:\n  - {name: me, pids: [${process.pid}], role: protect}\n`);
      // Every file the agent and its threads open, over six ticks that would each sample numa_maps on two nodes.
      const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=openat,open', '-o', trace, CLI, 'run', '--dry-run', '--duration', '3', '--state-dir', state.path, '--config', cfg], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stderr).toBe(0);
      const opened = readFileSync(trace, 'utf8');
      expect(opened).toMatch(/\/proc\/\d+\/(task\/\d+\/)?stat"/); // the trace sees the agent's /proc reads
      expect(opened).not.toMatch(/numa_maps/);
    } finally {
      state.remove();
    }
  });

  it('/api/status reports the running agent as ready', async () => {
    const state = tempDir();
    const agent = startAgent(['--listen', '127.0.0.1:0', '--state-dir', state.path]);
    try {
      const { url } = (await agent.waitFor((l) => l.msg === 'http listening')) as { url: string };
      await agent.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('agent running'));
      let status: { state?: string; ready?: boolean } = {};
      for (let i = 0; i < 100 && status.ready !== true; i++) {
        status = (await (await fetch(new URL('/api/status', url))).json()) as typeof status;
        if (status.ready !== true) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status.ready).toBe(true);
      // Before the fix: "unknown" — the server started after the agent and never heard it become ready.
      expect(status.state).toBe('ready');
      agent.child.kill('SIGTERM');
      expect((await agent.exited).code).toBe(0);
    } finally {
      await killAndWait(agent);
      state.remove();
    }
  });
});
