/**
 * The step below the weight floor, end to end through the CLI on real v1 cgroups: with min_weight at the default
 * weight there is no weight step to take, so the agent's first answer to the contention is cpu.idle 1 on the noisy
 * sibling. The victim's run-queue wait, read from /proc/PID/schedstat, falls; SIGTERM puts cpu.idle and cpu.shares
 * back, and after kill -9 `rollback` does.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { noisyNeighborConfig, noisyNeighborScene, runCli, startAgent, waitUntil } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const scene = noisyNeighborScene();
const knob = (file: string) => readFileSync(join(scene.batch.path, file), 'utf8').trim();

/** Run-queue wait of `pid` per second of wall time, ms/s: the second field of /proc/PID/schedstat. */
async function waitRate(pid: number, ms: number): Promise<number> {
  const waitNs = () => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
  const before = waitNs();
  await sleep(ms);
  return (waitNs() - before) / 1e6 / (ms / 1000);
}

/** min_weight at the sibling's current weight: the weight step has nowhere to go, so the next step is cpu.idle. */
function config(minWeight: number): string {
  return scene.state.file(
    'config.yaml',
    noisyNeighborConfig(scene.web.path, scene.batch.path, 'guardrails: {cooldown: 0s}\nclosed_loop: {window_ticks: 100}\n').replace(
      'noisy_neighbor: {p99_threshold_us: 3000}',
      `noisy_neighbor: {p99_threshold_us: 3000, trigger_ticks: 1, min_weight: ${minWeight}, idle_at_floor: true}`,
    ),
  );
}

async function idleStep(minWeight: number): Promise<ReturnType<typeof startAgent>> {
  const agent = startAgent(['--config', config(minWeight), '--state-dir', scene.state.path]);
  scene.procs.push(agent);
  await agent.waitFor((l) => l.msg === 'agent running');
  await waitUntil(() => knob('cpu.idle') === '1', 8000, 'cpu.idle 1 on the noisy sibling');
  return agent;
}

describe('noisy_neighbor idle_at_floor: cpu.idle on the noisy sibling', () => {
  it('sets cpu.idle when the weight is at min_weight, the victim waits less, and SIGTERM restores both knobs', async () => {
    expect([knob('cpu.idle'), knob('cpu.shares')]).toEqual(['0', '1024']);
    const before = await waitRate(scene.victim.pid, 2000);
    const agent = await idleStep(100);
    // The kernel gives an idle group its idle weight.
    expect(knob('cpu.shares')).toBe('3');
    const after = await waitRate(scene.victim.pid, 2000);
    console.log(`victim run-queue wait: ${before.toFixed(1)} ms/s beside the hogs, ${after.toFixed(1)} ms/s with the hogs' group idle`);
    expect(after).toBeLessThan(before / 2);

    const status = JSON.parse(runCli(['status', '--state-dir', scene.state.path, '--json']).stdout) as { changes: { path: string; original: string }[] };
    expect(status.changes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: join(scene.batch.path, 'cpu.idle'), original: '0' }),
        expect.objectContaining({ path: join(scene.batch.path, 'cpu.shares'), original: '1024' }),
      ]),
    );
    const log = JSON.parse(runCli(['log', '--state-dir', scene.state.path, '--json', '--since', '1m']).stdout) as { id: string; kind: string; action: string }[];
    const applied = log.find((r) => r.kind === 'applied' && r.action === 'cpu_weight');
    expect(applied).toBeDefined();
    const why = runCli(['explain', applied!.id, '--state-dir', scene.state.path]);
    expect(why.code, why.stderr).toBe(0);
    expect(why.stdout).toMatch(/at the weight floor \(100, min_weight 100\); cpu\.idle 0 → 1/);

    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    expect([knob('cpu.idle'), knob('cpu.shares')]).toEqual(['0', '1024']);
  });

  it('after kill -9, rollback puts cpu.idle back first, then the weight', async () => {
    // An operator's weight before the agent starts: leaving idle alone would reset it to the default.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(scene.batch.path, 'cpu.shares'), '2048');
    const agent = await idleStep(200);
    agent.child.kill('SIGKILL');
    await agent.exited;
    expect([knob('cpu.idle'), knob('cpu.shares')]).toEqual(['1', '3']);
    const r = runCli(['rollback', '--state-dir', scene.state.path]);
    expect(r.code, r.stderr).toBe(0);
    expect([knob('cpu.idle'), knob('cpu.shares')]).toEqual(['0', '2048']);
  });
});
