/**
 * noisy_neighbor's second trigger, end to end through the CLI on real v1 cgroups: with `p99_threshold_us` far above
 * any wait, only `wait_share_threshold` — the share of its runnable time a protect target spent waiting for a CPU —
 * can make a tick hot. The share the agent acts on is checked against the victim's own /proc/PID/schedstat (run
 * delay against time on a CPU); without the key the same scene gets no step.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { noisyNeighborConfig, noisyNeighborScene, runCli, startAgent, waitUntil } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const scene = noisyNeighborScene();
const shares = () => Number(readFileSync(`${scene.batch.path}/cpu.shares`, 'utf8').trim());

/** Share of its runnable time `pid` spent waiting over `ms`: Δrun_delay ÷ (Δrun_delay + Δtime on a CPU), schedstat. */
async function waitShare(pid: number, ms: number): Promise<number> {
  const read = () => readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number);
  const [cpu0, wait0] = read();
  await sleep(ms);
  const [cpu1, wait1] = read();
  const wait = wait1! - wait0!;
  return wait / (wait + (cpu1! - cpu0!));
}

/** The p99 threshold far above any wait, with or without the share trigger. */
function config(withShare: boolean): string {
  const rule = withShare
    ? 'noisy_neighbor: {p99_threshold_us: 1000000, trigger_ticks: 2, wait_share_threshold: 0.1}'
    : 'noisy_neighbor: {p99_threshold_us: 1000000, trigger_ticks: 2}';
  return scene.state.file('config.yaml', noisyNeighborConfig(scene.web.path, scene.batch.path).replace('noisy_neighbor: {p99_threshold_us: 3000}', rule));
}

describe('noisy_neighbor wait_share_threshold', () => {
  it('steps on the share of time waiting when no wait reaches the p99 threshold, and says so with the share schedstat shows', async () => {
    const before = await waitShare(scene.victim.pid, 2000);
    expect(before).toBeGreaterThan(0.2);
    const agent = startAgent(['--config', config(true), '--state-dir', scene.state.path]);
    scene.procs.push(agent);
    await agent.waitFor((l) => l.msg === 'agent running');
    await waitUntil(() => shares() < 1024, 8000, 'cpu.shares of the noisy sibling lowered');
    const log = JSON.parse(runCli(['log', '--state-dir', scene.state.path, '--json', '--since', '1m']).stdout) as { id: string; kind: string; action: string }[];
    const applied = log.find((r) => r.kind === 'applied' && r.action === 'cpu_weight');
    expect(applied).toBeDefined();
    const why = runCli(['explain', applied!.id, '--state-dir', scene.state.path]);
    expect(why.code, why.stderr).toBe(0);
    const m = /why: web waited for a CPU ([\d.]+)% of its runnable time > 10% \(run-queue p99 [^)]+\) for 2 ticks/.exec(why.stdout);
    expect(m, why.stdout).not.toBeNull();
    const seen = Number(m![1]) / 100;
    console.log(`victim's share of runnable time waiting: ${(before * 100).toFixed(1)}% by schedstat before the agent, ${(seen * 100).toFixed(1)}% in the tick the agent acted on`);
    expect(Math.abs(seen - before)).toBeLessThan(0.2);
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    expect(shares()).toBe(1024);
  });

  it('without it the same scene gets no step', async () => {
    const agent = startAgent(['--config', config(false), '--state-dir', scene.state.path]);
    scene.procs.push(agent);
    await agent.waitFor((l) => l.msg === 'agent running');
    await sleep(5000);
    expect(shares()).toBe(1024);
    expect(agent.lines.filter((l) => l.kind === 'applied')).toEqual([]);
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
  });
});
