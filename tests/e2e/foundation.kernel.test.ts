/**
 * The first complete loop, end to end on the real kernel through the real CLI: a victim and a sibling with CPU hogs
 * in v1 cgroups the test creates; the agent lowers the sibling's weight, and puts every original back on SIGTERM,
 * and after kill -9 through `rollback`. Dry-run leaves every cgroup file byte-identical.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { killAndWait, type SpawnedProcess, type TestCgroup } from '../../src/testing/cgroups.js';
import { noisyNeighborConfig, noisyNeighborScene, runCli, spawnHogs, startAgent, waitUntil } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const shares = (cg: TestCgroup) => Number(readFileSync(join(cg.path, 'cpu.shares'), 'utf8'));

// Victim and hogs share CPU 1 (see spawnVictim); each test starts the hogs when it is ready for them.
const scene = noisyNeighborScene({ hogs: false });

function config(extra = ''): string {
  return scene.state.file('config.yaml', noisyNeighborConfig(scene.web.path, scene.batch.path, extra));
}

async function startHogs(): Promise<SpawnedProcess> {
  const h = await spawnHogs(scene.batch.path);
  scene.procs.push(h);
  return h;
}

describe('foundation loop: runqlat → cpu_weight → journal → restore', () => {
  it('lowers the noisy sibling within 5 s of contention and restores both on SIGTERM', async () => {
    const agent = startAgent(['--config', config(), '--state-dir', scene.state.path]);
    scene.procs.push(agent);
    await agent.waitFor((l) => l.msg === 'agent running');
    expect(shares(scene.batch)).toBe(1024);
    await startHogs();
    const took = await waitUntil(() => shares(scene.batch) < 1024, 5000);
    console.log(`contention → sibling cpu.shares lowered to ${shares(scene.batch)} in ${took} ms`);
    expect(shares(scene.web)).toBe(1024);
    // What is changed right now, and why.
    const status = JSON.parse(runCli(['status', '--state-dir', scene.state.path, '--json']).stdout) as { running: boolean; changes: { target: string; path: string; original: string }[] };
    expect(status.running).toBe(true);
    expect(status.changes).toEqual([expect.objectContaining({ target: 'batch', path: join(scene.batch.path, 'cpu.shares'), original: '1024' })]);
    const log = JSON.parse(runCli(['log', '--state-dir', scene.state.path, '--json', '--since', '1m']).stdout) as { id: string; kind: string; action: string }[];
    const applied = log.find((r) => r.kind === 'applied' && r.action === 'cpu_weight');
    expect(applied).toBeDefined();
    const why = runCli(['explain', applied!.id, '--state-dir', scene.state.path]);
    expect(why.code, why.stderr).toBe(0);
    expect(why.stdout).toMatch(/why: web run-queue p99 .* for 2 ticks/);
    expect(why.stdout).toMatch(/evidence:/);
    agent.child.kill('SIGTERM');
    const exit = await agent.exited;
    expect(exit.code).toBe(0);
    expect(shares(scene.batch)).toBe(1024);
    expect(shares(scene.web)).toBe(1024);
    expect(agent.lines.some((l) => l.msg === 'agent stopped; originals restored')).toBe(true);
  });

  it('a second SIGTERM while stopping is the same request: the restore finishes and the exit is 0', async () => {
    // What a supervisor that passes a stop on more than once (the DaemonSet's entrypoint) or an impatient operator does.
    const agent = startAgent(['--config', config(), '--state-dir', scene.state.path]);
    scene.procs.push(agent);
    await agent.waitFor((l) => l.msg === 'agent running');
    await startHogs();
    await waitUntil(() => shares(scene.batch) < 1024, 15_000);
    agent.child.kill('SIGTERM');
    await agent.waitFor((l) => l.msg === 'stopping');
    agent.child.kill('SIGTERM');
    const exit = await agent.exited;
    expect(exit.code).toBe(0);
    expect(exit.signal).toBe(null);
    expect(shares(scene.batch)).toBe(1024);
    expect(shares(scene.web)).toBe(1024);
    expect(agent.lines.some((l) => l.msg === 'agent stopped; originals restored')).toBe(true);
  });

  it('after kill -9, rollback restores the originals without starting the agent', async () => {
    const agent = startAgent(['--config', config(), '--state-dir', scene.state.path]);
    scene.procs.push(agent);
    await agent.waitFor((l) => l.msg === 'agent running');
    await startHogs();
    await waitUntil(() => shares(scene.batch) < 1024, 15_000); // a precondition here: the 5 s goal is the first test's
    const lowered = shares(scene.batch);
    agent.child.kill('SIGKILL');
    await agent.exited;
    expect(shares(scene.batch)).toBe(lowered); // nothing ran on the way down
    const r = runCli(['rollback', '--state-dir', scene.state.path, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { restored: { path: string; original: string }[] };
    expect(out.restored.map((x) => x.path)).toContain(join(scene.batch.path, 'cpu.shares'));
    expect(shares(scene.batch)).toBe(1024);
    // A second rollback has nothing left to do.
    expect(JSON.parse(runCli(['rollback', '--state-dir', scene.state.path, '--json']).stdout).restored).toEqual([]);
  });

  it('after kill -9, the next start restores first', async () => {
    const agent = startAgent(['--config', config(), '--state-dir', scene.state.path]);
    scene.procs.push(agent);
    await agent.waitFor((l) => l.msg === 'agent running');
    const hog = await startHogs();
    await waitUntil(() => shares(scene.batch) < 1024, 15_000); // a precondition here: the 5 s goal is the first test's
    agent.child.kill('SIGKILL');
    await agent.exited;
    await killAndWait(hog);
    const again = startAgent(['--config', config(), '--state-dir', scene.state.path]);
    scene.procs.push(again);
    await again.waitFor((l) => l.msg === 'restored knobs left changed by a previous run');
    expect(shares(scene.batch)).toBe(1024);
    again.child.kill('SIGTERM');
    expect((await again.exited).code).toBe(0);
  });

  it('leaves a knob someone else changed alone, and says so', async () => {
    const agent = startAgent(['--config', config(), '--state-dir', scene.state.path]);
    scene.procs.push(agent);
    await agent.waitFor((l) => l.msg === 'agent running');
    await startHogs();
    await waitUntil(() => shares(scene.batch) < 1024, 15_000); // a precondition here: the 5 s goal is the first test's
    // An administrator sets their own value.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(scene.batch.path, 'cpu.shares'), '777');
    agent.child.kill('SIGTERM');
    await agent.exited;
    expect(shares(scene.batch)).toBe(777);
    expect(agent.lines.some((l) => String(l.msg).includes('another writer') || String(l.msg).includes('changed by someone else'))).toBe(true);
  });

  it('--dry-run decides and logs but leaves every cgroup file byte-identical', async () => {
    const files = (cg: TestCgroup) =>
      readdirSync(cg.path)
        .filter((f) => !/stat|usage|procs|tasks/.test(f))
        .map((f) => [f, readFileSync(join(cg.path, f))] as const);
    const before = [...files(scene.web), ...files(scene.batch)];
    const agent = startAgent(['--config', config(), '--state-dir', scene.state.path, '--dry-run']);
    scene.procs.push(agent);
    await agent.waitFor((l) => l.msg === 'agent running');
    await startHogs();
    await agent.waitFor((l) => l.kind === 'dry-run' && l.action === 'cpu_weight', 8000);
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    const after = [...files(scene.web), ...files(scene.batch)];
    expect(after.map(([f, b]) => [f, b.toString('hex')])).toEqual(before.map(([f, b]) => [f, b.toString('hex')]));
    expect(existsSync(join(scene.state.path, 'state.db'))).toBe(false);
  });

  /** The agent under the given `noisy_neighbor: …`, `guardrails: …` and `closed_loop: …` lines; the sibling's cpu.shares as sampled for `ms`. */
  async function sharesUnder(noisy: string, guardrails: string, closedLoop: string, ms: number, tick = '500ms'): Promise<number[]> {
    const file = scene.state.file(
      'steps.yaml',
      `tick: ${tick}
policy:
  ${noisy}
  pressure_backoff: {enabled: false}
  cpuset_spread: {enabled: false}
  numa_rebalance: {enabled: false}
  io_prefetch: {enabled: false}
${guardrails}
${closedLoop}
targets:
  - {name: web, cgroup: ${scene.web.path}, role: protect}
  - {name: batch, cgroup: ${scene.batch.path}, role: noisy}
`,
    );
    const agent = startAgent(['--config', file, '--state-dir', scene.state.path]);
    scene.procs.push(agent);
    await agent.waitFor((l) => l.msg === 'agent running');
    const hogs = await startHogs();
    const seen: number[] = [];
    for (const t0 = Date.now(); Date.now() - t0 < ms; await sleep(50)) {
      const s = shares(scene.batch);
      if (seen.at(-1) !== s) seen.push(s);
    }
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    expect(shares(scene.batch)).toBe(1024);
    await killAndWait(hogs);
    return seen;
  }

  it('never steps the weight below min_weight, as cpu.shares shows', async () => {
    // weight 100 × (1 − 0.75) = 25 is below min_weight 60, so the step lands on 60: v1 shares round(60 × 1024 / 100).
    const seen = await sharesUnder(
      'noisy_neighbor: {p99_threshold_us: 3000, trigger_ticks: 1, calm_ticks: 1000, calm_fraction: 0.1, step_fraction: 0.75, min_weight: 60}',
      'guardrails: {cooldown: 0s}',
      'closed_loop: {window_ticks: 100}',
      6000,
    );
    console.log(`cpu.shares seen: ${seen.join(' → ')}`);
    expect(seen).toEqual([1024, 614]);
  });

  it('reverts a change that misses the closed loop\'s margin and does not retry it within the penalty', async () => {
    // A 99% improvement is out of reach: the first step is judged after one tick, reverted, and not tried again.
    const seen = await sharesUnder('noisy_neighbor: {p99_threshold_us: 3000, trigger_ticks: 1, step_fraction: 0.3}', 'guardrails: {cooldown: 0s}', 'closed_loop: {window_ticks: 1, margin: 0.99, penalty: 1h}', 6000);
    console.log(`cpu.shares seen: ${seen.join(' → ')}`);
    expect(seen).toEqual([1024, 717, 1024]);
  });

  it('makes no more than max_changes_per_minute changes, reverts included', async () => {
    // Without a penalty the rule would step again after each revert; a budget of two changes allows the step and its revert.
    const seen = await sharesUnder(
      'noisy_neighbor: {p99_threshold_us: 3000, trigger_ticks: 1, step_fraction: 0.3}',
      'guardrails: {cooldown: 0s, max_changes_per_minute: 2}',
      'closed_loop: {window_ticks: 1, margin: 0.99, penalty: 0s}',
      6000,
    );
    console.log(`cpu.shares seen: ${seen.join(' → ')}`);
    expect(seen).toEqual([1024, 717, 1024]);
  });

  it('with event_driven, the kernel\'s wake brings the step long before the first tick', async () => {
    // A 10 s tick: in these 6 s no regular tick comes at all, so a step can only follow an early tick taken on the
    // runqlat program's wake; without event_driven the same scene sees no step.
    const noisy = (on: boolean) => `noisy_neighbor: {p99_threshold_us: 3000, trigger_ticks: 1, step_fraction: 0.3, event_driven: ${on}}`;
    const woken = await sharesUnder(noisy(true), 'guardrails: {cooldown: 0s}', 'closed_loop: {window_ticks: 100}', 6000, '10s');
    const ticked = await sharesUnder(noisy(false), 'guardrails: {cooldown: 0s}', 'closed_loop: {window_ticks: 100}', 6000, '10s');
    console.log(`cpu.shares seen: event_driven ${woken.join(' → ')}; tick only ${ticked.join(' → ')}`);
    expect(woken).toEqual([1024, 717]);
    expect(ticked).toEqual([1024]);
  });

  it('takes no further step on a knob while the closed loop is still judging the last one (window_ticks)', async () => {
    // 100 ticks of 500 ms: the first change is still being judged when the test ends, so it stays the only one.
    const seen = await sharesUnder('noisy_neighbor: {p99_threshold_us: 3000, trigger_ticks: 1, step_fraction: 0.3}', 'guardrails: {cooldown: 0s}', 'closed_loop: {window_ticks: 100}', 6000);
    console.log(`cpu.shares seen: ${seen.join(' → ')}`);
    expect(seen).toEqual([1024, 717]);
  });
});

describe('bad input: one clear error, a non-zero exit, no write', () => {
  const cases: [string, (cg: { victim: string; sibling: string }) => string, RegExp][] = [
    ['wrong type', (c) => `targets:\n  - {name: web, cgroup: ${c.victim}, role: 42}\n`, /targets\[0\]\.role/],
    ['unknown key', (c) => `tick: 1s\ntickk: 2s\ntargets:\n  - {name: web, cgroup: ${c.victim}, role: protect}\n`, /tickk/],
    ['negative interval', (c) => `tick: -5s\ntargets:\n  - {name: web, cgroup: ${c.victim}, role: protect}\n`, /tick/],
    ['missing cgroup', (c) => `targets:\n  - {name: web, cgroup: ${c.victim}/nope, role: protect}\n`, /does not exist/],
    ['missing pid', () => `targets:\n  - {name: db, pids: [999999999], role: protect}\n`, /999999999/],
  ];
  for (const [name, text, re] of cases) {
    it(name, () => {
      const before = [shares(scene.web), shares(scene.batch)];
      const f = scene.state.file('bad.yaml', text({ victim: scene.web.path, sibling: scene.batch.path }));
      const r = runCli(['run', '--config', f, '--state-dir', join(scene.state.path, 'st'), '--duration', '1']);
      expect(r.code).not.toBe(0);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(re);
      expect(lines[0]).toMatch(/^ebpf-tuner run: /);
      expect([shares(scene.web), shares(scene.batch)]).toEqual(before);
      expect(existsSync(join(scene.state.path, 'st'))).toBe(false);
    });
  }
});

describe('check', () => {
  it('reports the hybrid cgroup layout and that fentry is unavailable here', () => {
    const r = runCli(['check', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as { ok: boolean; items: { name: string; ok: boolean; detail: string }[] };
    expect(rep.ok).toBe(true);
    const item = (n: string) => rep.items.find((i) => i.name === n)!;
    expect(item('cgroup').detail).toMatch(/^hybrid/);
    expect(item('cgroup').detail).toMatch(/cpu: v1 at \/sys\/fs\/cgroup\/cpu/);
    expect(item('attach:fentry').ok).toBe(false);
    expect(item('attach:tp_btf').ok).toBe(true);
  });
});
