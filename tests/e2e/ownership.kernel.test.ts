/**
 * One owner per knob, through the real CLI on real v1 cgroups the test creates: a second agent — with its own state
 * directory or with the same one — never manages a knob a live agent holds, never journals that agent's value as an
 * original, and `rollback` never runs under a live agent. Afterwards every knob holds its true original. And a user
 * who cannot read the root-only state directory is told so, never "nothing to restore".
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import type { TestCgroup } from '../../src/testing/cgroups.js';
import { CLI, noisyNeighborConfig, noisyNeighborScene, runCli, startAgent, waitUntil } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const shares = (cg: TestCgroup) => Number(readFileSync(join(cg.path, 'cpu.shares'), 'utf8'));

const scene = noisyNeighborScene();

function config(): string {
  // Hold each change for the whole test: this is about who owns the knob, not whether the change helped.
  return scene.state.file('config.yaml', noisyNeighborConfig(scene.web.path, scene.batch.path, 'closed_loop: {window_ticks: 600}\n'));
}

beforeEach(() => {
  // Readable by all (the state directories inside stay the agent's 0700), so another user can be pointed at them.
  chmodSync(scene.state.path, 0o755);
});

function agent(stateDir: string) {
  const a = startAgent(['--config', config(), '--state-dir', stateDir]);
  scene.procs.push(a);
  return a;
}

describe('one owner per knob', () => {
  it('a second agent with its own state directory is refused the knob, journals nothing, and the original survives both', async () => {
    const first = agent(join(scene.state.path, 'a'));
    await first.waitFor((l) => l.msg === 'agent running');
    await waitUntil(() => shares(scene.batch) < 1024, 8000);
    const lowered = shares(scene.batch);

    const second = agent(join(scene.state.path, 'b'));
    await second.waitFor((l) => l.msg === 'agent running');
    const refusal = await second.waitFor((l) => l.kind === 'refused' && String(l.outcome).startsWith('KNOB_CLAIMED'), 15_000);
    expect(String(refusal.outcome)).toContain(`pid ${first.pid}`);
    expect(shares(scene.batch)).toBe(lowered);
    const b = JSON.parse(runCli(['status', '--state-dir', join(scene.state.path, 'b'), '--json']).stdout) as { changes: unknown[] };
    expect(b.changes).toEqual([]);
    expect(second.lines.some((l) => l.msg === 'wrote knob')).toBe(false);

    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
    // The knob is free now; the second agent may take it, but only with the true original journaled.
    await sleep(3000);
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    expect(shares(scene.batch)).toBe(1024);
    for (const l of second.lines.filter((x) => x.msg === 'wrote knob')) expect(l.from).toBe('1024');
  });

  it('a second agent or a rollback on a live agent\'s state directory is refused, naming the live pid', async () => {
    const dir = join(scene.state.path, 'a');
    const first = agent(dir);
    await first.waitFor((l) => l.msg === 'agent running');
    await waitUntil(() => shares(scene.batch) < 1024, 8000);
    const lowered = shares(scene.batch);

    const second = runCli(['run', '--config', config(), '--state-dir', dir, '--duration', '2']);
    expect(second.code).toBe(3);
    expect(second.stderr).toContain(`ebpf-tuner run: run the agent: state directory ${dir} is in use by a running agent, pid ${first.pid}`);
    expect(second.stderr).toContain('— fix: stop that agent first');
    expect(second.stdout).not.toContain('restored knobs left changed by a previous run');

    const rollback = runCli(['rollback', '--state-dir', dir]);
    expect(rollback.code).toBe(3);
    expect(rollback.stderr).toContain(`pid ${first.pid}`);
    expect(shares(scene.batch)).toBe(lowered);
    const status = JSON.parse(runCli(['status', '--state-dir', dir, '--json']).stdout) as { running: boolean; pid: number };
    expect(status).toMatchObject({ running: true, pid: first.pid });

    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
    expect(shares(scene.batch)).toBe(1024);
  });

  it('rollback and status as a user who cannot read the journal fail naming the path and the fix', async () => {
    const dir = join(scene.state.path, 'a');
    const first = agent(dir);
    await first.waitFor((l) => l.msg === 'agent running');
    await waitUntil(() => shares(scene.batch) < 1024, 8000);
    first.child.kill('SIGKILL');
    await first.exited;
    const lowered = shares(scene.batch);

    const asNobody = (args: string[]) => {
      const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    for (const cmd of ['rollback', 'status']) {
      const r = asNobody([cmd, '--state-dir', dir]);
      expect(r.code, `${cmd}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.stdout).not.toMatch(/nothing to restore|not running|no changes/);
      expect(r.stderr).toContain(`ebpf-tuner ${cmd}: read ${join(dir, 'state.db')}: permission denied (EACCES) — fix: run it as root`);
    }
    expect(shares(scene.batch)).toBe(lowered);
    const r = runCli(['rollback', '--state-dir', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(shares(scene.batch)).toBe(1024);
  });
});
