/**
 * noisy_neighbor's calm restore, end to end through the CLI on real v1 cgroups: the rule's first step here is
 * cpu.idle on the neighbour (min_weight 100). Once the victim is gone its protect target is calm, but the neighbour's
 * hogs still want the CPU — by their own /proc/PID/task/TID/schedstat — so the step holds (giving the share back would
 * bring the waiting back). Only when the hogs end too does the calm restore put cpu.idle and cpu.shares back, and its
 * reason says the neighbour's demand was below `release_below_cpus`. While it holds, `ebpf-tuner status`, the HTTP API
 * (/api/status, /api/targets) and the agent's log say so, why and since when; after the restore, none of them does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { killAndWait } from '../../src/testing/cgroups.js';
import { noisyNeighborConfig, noisyNeighborScene, runCli, startAgent, waitUntil } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const scene = noisyNeighborScene();
const knob = (file: string) => Number(readFileSync(`${scene.batch.path}/${file}`, 'utf8').trim());
const CALM_TICKS = 3;

/** CPUs `pid`'s threads wanted over `ms`: time on a CPU plus time waiting for one, from each thread's schedstat. */
async function demandCpus(pid: number, ms: number): Promise<number> {
  const read = () =>
    readdirSync(`/proc/${pid}/task`).reduce((sum, tid) => {
      const [cpu, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      return sum + cpu! + wait!;
    }, 0);
  const before = read();
  await sleep(ms);
  return (read() - before) / (ms * 1e6);
}

interface HoldRow {
  target: string;
  action: string;
  rule: string;
  cause: string;
  reason: string;
  since: number;
}

interface LogRow {
  id: string;
  kind: string;
  action: string;
  reason: string;
}

describe('noisy_neighbor calm restore with release_below_cpus', () => {
  it('holds cpu.idle while the neighbour still wants the CPU, and restores once it has stopped', { timeout: 120_000 }, async () => {
    const config = scene.state.file(
      'config.yaml',
      // The closed loop's verdict is a precondition here, not what is tested: 8 ticks after the step (not 5) and a
      // laxer significance keep a loaded machine's one slow tick from reverting a step that halved the waits.
      noisyNeighborConfig(scene.web.path, scene.batch.path, 'closed_loop: {window_ticks: 8, significance: 0.2}\n').replace(
        'noisy_neighbor: {p99_threshold_us: 3000}',
        `noisy_neighbor: {p99_threshold_us: 3000, trigger_ticks: 3, calm_ticks: ${CALM_TICKS}, min_weight: 100, release_below_cpus: 0.5}`,
      ),
    );
    const agent = startAgent(['--config', config, '--state-dir', scene.state.path, '--listen', '127.0.0.1:0']);
    scene.procs.push(agent);
    const { url } = (await agent.waitFor((l) => l.msg === 'http listening')) as { url: string };
    await agent.waitFor((l) => l.msg === 'agent running');
    const api = async <T>(path: string): Promise<T> => (await (await fetch(new URL(path, url))).json()) as T;
    const status = () => runCli(['status', '--state-dir', scene.state.path]).stdout;
    const statusHolds = () => (JSON.parse(runCli(['status', '--state-dir', scene.state.path, '--json']).stdout) as { holds: HoldRow[] }).holds;
    await waitUntil(() => knob('cpu.idle') === 1, 15_000, 'cpu.idle of the noisy sibling set');
    // The closed loop keeps the step before the scene changes: a verdict taken on a vanished victim would say nothing.
    const log = () => JSON.parse(runCli(['log', '--state-dir', scene.state.path, '--json', '--since', '5m']).stdout) as LogRow[];
    await waitUntil(() => log().some((r) => r.kind === 'kept'), 20_000, () => `the closed loop keeps the cpu.idle step (log: ${log().map((r) => `${r.kind} ${r.reason}`).join(' | ')})`);

    const [victim, hogs] = scene.procs;
    const linesAtKill = agent.lines.length;
    await killAndWait(victim!);
    // Calm for well over calm_ticks, while the hogs still want far more than release_below_cpus.
    const demand = await demandCpus(hogs!.pid, (CALM_TICKS + 4) * 1000);
    console.log(`hogs' demand while the victim is gone: ${demand.toFixed(2)} CPUs by schedstat`);
    expect(demand).toBeGreaterThan(0.5);
    expect(knob('cpu.idle')).toBe(1);
    expect(log().filter((r) => r.reason.startsWith('calm:'))).toEqual([]);

    // Held, and said so: why (the neighbour's demand against release_below_cpus) and since when.
    const busy = /^protect targets calm for 3 ticks \(calm_ticks\), but batch still wants \d+(\.\d+)? CPU ≥ release_below_cpus 0\.5$/;
    const heldNow = status();
    console.log(`ebpf-tuner status while held:\n${heldNow}`);
    expect(heldNow).toContain('1 held on purpose (not given back yet):');
    expect(heldNow).toMatch(/ {2}batch cpu_weight held by noisy-neighbor since \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(for \d+s\): protect targets calm for 3 ticks/);
    const [held] = statusHolds();
    expect(held).toMatchObject({ target: 'batch', action: 'cpu_weight', rule: 'noisy-neighbor', cause: 'noisy-busy' });
    expect(held!.reason).toMatch(busy);
    const { holds: apiHolds } = await api<{ holds: HoldRow[] }>('/api/status');
    expect(apiHolds).toMatchObject([{ target: 'batch', cause: 'noisy-busy', since: held!.since }]);
    expect(apiHolds[0]!.reason).toMatch(busy);
    const { targets } = await api<{ targets: { name: string; holds?: HoldRow[] }[] }>('/api/targets');
    expect(targets.find((t) => t.name === 'batch')?.holds).toMatchObject([{ cause: 'noisy-busy' }]);
    expect(targets.find((t) => t.name === 'web')?.holds).toBeUndefined();
    // explain of the step says why it is still in effect.
    const step = log().find((r) => r.kind === 'applied');
    const stepWhy = runCli(['explain', step!.id, '--state-dir', scene.state.path]);
    expect(stepWhy.stdout.trimEnd().split('\n').at(-1)).toMatch(/^now: batch cpu_weight held by noisy-neighbor since .*: protect targets calm for 3 ticks \(calm_ticks\), but batch still wants/);
    // Logged once per change of state, not every tick. Before the victim went, a slow tick of it on a loaded machine
    // may have taken the hold back to protect-not-calm for a while (hot ticks included, one state); since it went, the
    // first window may still hold its last waits, and every tick after it is calm with the neighbour busy: at most two
    // lines over the 7 ticks the demand was measured.
    const holding = (from = 0) => agent.lines.slice(from).filter((l) => typeof l.msg === 'string' && l.msg.startsWith('holding batch cpu_weight:'));
    const causes = holding().map((l) => String(l.cause));
    for (let i = 1; i < causes.length; i++) expect(causes[i], causes.join(' → ')).not.toBe(causes[i - 1]);
    expect(causes.at(-1)).toBe('noisy-busy');
    expect(holding(linesAtKill).length).toBeLessThanOrEqual(2);
    const heldLines = holding().length;

    await killAndWait(hogs!);
    await waitUntil(() => knob('cpu.idle') === 0 && knob('cpu.shares') === 1024, (CALM_TICKS + 6) * 1000, 'cpu.idle and cpu.shares restored');
    const restore = log().find((r) => r.kind === 'restored' && r.reason.startsWith('calm:'));
    expect(restore, log().map((r) => `${r.kind} ${r.reason}`).join('\n')).toBeDefined();
    const why = runCli(['explain', restore!.id, '--state-dir', scene.state.path]);
    expect(why.code, why.stderr).toBe(0);
    expect(why.stdout).toMatch(/why: calm: every protect target's run-queue p99 < .* for 3 ticks .* and batch wanted less than 0\.5 CPU for as long \(0 CPU now\); restoring batch cpu\.idle 1 and cpu\.weight → their journaled originals/);

    // Restored: nothing is held any more, and the log said when the hold ended.
    expect(status()).not.toContain('held');
    expect(statusHolds()).toEqual([]);
    expect((await api<{ holds: HoldRow[] }>('/api/status')).holds).toEqual([]);
    expect(holding()).toHaveLength(heldLines);
    expect(agent.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('no longer holding batch cpu_weight'))).toBe(true);

    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
  });
});
