/**
 * cgroup v2 for real, through the CLI, inside a freshly booted VM (Debian's 6.1 and 6.12 kernels): the noisy-neighbour
 * loop on cpu.weight with restore after SIGTERM and after kill -9 + rollback, and its cpu.idle step below the floor;
 * pressure_backoff on cpu.max; cpuset_spread in cpuset.cpus mode; per-cgroup PSI with a trigger on a cgroup's own
 * pressure file; cgstat from cpu.stat and memory.*, checked against the files; a threaded subtree; and pattern targets
 * over a systemd-like and a kubelet-like tree that pick up a cgroup created while the agent runs and let go of one that
 * is removed.
 */
import { readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess, type TestCgroup } from '../../src/testing/cgroups.js';
import { runCli, tempDir, type AgentProcess } from '../e2e/helpers.js';
import { CG, getJson, mkcg, port, read, report, requireVm, sleep, startVmAgent, stopVmAgent, waitUntil } from './helpers.js';

/** Generous: the VM's CPUs are emulated (TCG), several times slower than the host's. */
const SLOW = 60_000;

/** A policy section with one rule on (with `settings`) and every other off, so each test sees one loop. */
function policy(rule: string, settings = ''): string {
  const rules = ['noisy_neighbor', 'pressure_backoff', 'cpuset_spread', 'numa_rebalance', 'io_prefetch'];
  return 'policy:\n' + rules.map((r) => `  ${r}: {enabled: ${r === rule}${r === rule && settings ? `, ${settings}` : ''}}`).join('\n') + '\n';
}

let base: TestCgroup;
let state: ReturnType<typeof tempDir>;
const procs: SpawnedProcess[] = [];
/** Cgroups made outside the test prefix (layouts users have), removed deepest first after each test. */
const made: string[] = [];

beforeAll(() => requireVm());
beforeEach(() => {
  base = makeTestCgroup('cpu');
  state = tempDir();
});
afterEach(async () => {
  for (const p of procs.splice(0)) await killAndWait(p);
  base.remove();
  for (const dir of made.splice(0).sort((a, b) => b.length - a.length)) removeTree(dir);
  state.remove();
});
afterAll(async () => {
  await cleanupAll();
});

function removeTree(dir: string): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return;
  }
  for (const e of entries) removeTree(join(dir, e));
  for (let i = 0; i < 200; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

async function run(cg: string, cmd: string, args: string[]): Promise<SpawnedProcess> {
  const p = await spawnInCgroup(cg, cmd, args);
  procs.push(p);
  return p;
}

const agent = (config: string, extra: string[] = []): AgentProcess => startVmAgent(state, procs, config, extra);
const stop = stopVmAgent;

/** A victim that needs 60% of CPU 1 beside hogs on the same CPU: under EEVDF it waits only when it exceeds its share. */
async function contention(victimCg: string, noisyCg: string): Promise<void> {
  await run(victimCg, 'taskset', ['-c', '1', toolPath('victim'), '--period-us', '4000', '--work-us', '2400', '--quiet']);
  await run(noisyCg, 'taskset', ['-c', '1', toolPath('hog'), '--threads', '4']);
}

function noisyConfig(web: string, batch: string): string {
  return `tick: 1s
${policy('noisy_neighbor', 'p99_threshold_us: 3000')}targets:
  - {name: web, cgroup: ${web}, role: protect}
  - {name: batch, cgroup: ${batch}, role: noisy}
`;
}

describe('noisy neighbour on cpu.weight (cgroup v2)', () => {
  it('lowers the noisy sibling, explains it, and restores both on SIGTERM', async () => {
    const web = base.child('web').path;
    const batch = base.child('batch').path;
    const weight = (d: string) => Number(read(join(d, 'cpu.weight')));
    const a = agent(noisyConfig(web, batch));
    await a.waitFor((l) => l.msg === 'agent running', SLOW);
    expect(weight(batch)).toBe(100);
    await contention(web, batch);
    const took = await waitUntil(() => weight(batch) < 100, SLOW, 'batch cpu.weight lowered');
    console.log(`contention → batch cpu.weight ${weight(batch)} after ${took} ms`);
    expect(weight(web)).toBe(100);
    const status = JSON.parse(runCli(['status', '--state-dir', join(state.path, 'state'), '--json']).stdout) as { changes: { path: string; original: string }[] };
    expect(status.changes).toEqual([expect.objectContaining({ path: join(batch, 'cpu.weight'), original: '100' })]);
    await stop(a);
    expect(weight(batch)).toBe(100);
    expect(weight(web)).toBe(100);
  });

  it('after kill -9, rollback restores cpu.weight without starting the agent', async () => {
    const web = base.child('web').path;
    const batch = base.child('batch').path;
    const weight = (d: string) => Number(read(join(d, 'cpu.weight')));
    const a = agent(noisyConfig(web, batch));
    await a.waitFor((l) => l.msg === 'agent running', SLOW);
    await contention(web, batch);
    await waitUntil(() => weight(batch) < 100, SLOW, 'batch cpu.weight lowered');
    const lowered = weight(batch);
    a.child.kill('SIGKILL');
    await a.exited;
    expect(weight(batch)).toBe(lowered);
    const r = runCli(['rollback', '--state-dir', join(state.path, 'state'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { restored: { path: string }[] }).restored.map((x) => x.path)).toContain(join(batch, 'cpu.weight'));
    expect(weight(batch)).toBe(100);
  });

  it('at min_weight sets cpu.idle, and after kill -9 rollback puts cpu.idle back, then the weight', async () => {
    const web = base.child('web').path;
    const batch = base.child('batch').path;
    const file = (f: string) => read(join(batch, f));
    // An operator's weight, which is also the floor: the weight step has nowhere to go, so the step is cpu.idle.
    writeFileSync(join(batch, 'cpu.weight'), '50');
    const a = agent(`tick: 1s
${policy('noisy_neighbor', 'p99_threshold_us: 3000, trigger_ticks: 1, min_weight: 50, idle_at_floor: true')}targets:
  - {name: web, cgroup: ${web}, role: protect}
  - {name: batch, cgroup: ${batch}, role: noisy}
`);
    await a.waitFor((l) => l.msg === 'agent running', SLOW);
    await contention(web, batch);
    const took = await waitUntil(() => file('cpu.idle') === '1', SLOW, 'batch cpu.idle 1');
    // An idle group's cpu.weight shows the kernel's idle weight: 0 on 6.1, 1 on 6.12.
    console.log(`contention → batch cpu.idle 1 after ${took} ms; cpu.weight reads ${file('cpu.weight')}`);
    expect(['0', '1']).toContain(file('cpu.weight'));
    a.child.kill('SIGKILL');
    await a.exited;
    expect(file('cpu.idle')).toBe('1');
    const r = runCli(['rollback', '--state-dir', join(state.path, 'state'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { restored: { path: string }[] }).restored.map((x) => x.path)).toEqual([join(batch, 'cpu.idle'), join(batch, 'cpu.weight')]);
    expect([file('cpu.idle'), file('cpu.weight')]).toEqual(['0', '50']);
  });
});

describe('pressure_backoff on cpu.max (cgroup v2)', () => {
  it('lowers the offender quota under sustained pressure and puts "max" back on SIGTERM', async () => {
    const web = base.child('web').path;
    const batch = base.child('batch').path;
    const cpuMax = () => read(join(batch, 'cpu.max'));
    const before = cpuMax();
    expect(before).toMatch(/^max \d+$/);
    const a = agent(`tick: 1s
${policy('pressure_backoff', 'psi_some_avg10_threshold: 10, trigger_ticks: 2')}targets:
  - {name: web, cgroup: ${web}, role: protect}
  - {name: batch, cgroup: ${batch}, role: noisy}
`);
    await a.waitFor((l) => l.msg === 'agent running', SLOW);
    await run(web, toolPath('victim'), ['--period-us', '5000', '--work-us', '1000', '--quiet']);
    await run(batch, 'stress-ng', ['--cpu', '4', '--timeout', '300s', '--quiet']);
    await waitUntil(() => !cpuMax().startsWith('max'), 2 * SLOW, 'batch cpu.max lowered');
    const [quota, period] = cpuMax().split(' ').map(Number);
    console.log(`pressure → batch cpu.max ${quota} ${period}`);
    expect(quota).toBeGreaterThan(0);
    // The kernel enforces it: the group is throttled.
    await waitUntil(() => Number(/nr_throttled (\d+)/.exec(read(join(batch, 'cpu.stat')))?.[1]) > 0, SLOW, 'batch throttled');
    await stop(a);
    expect(cpuMax()).toBe(before);
  });
});

describe('cpuset_spread in cpuset.cpus mode (cgroup v2)', () => {
  it('widens a piled-up target cpuset and restores it on SIGTERM', async () => {
    const web = base.child('web').path;
    writeFileSync(join(web, 'cpuset.cpus'), '0\n');
    // Under emulated CPUs the agent itself keeps the other CPU half busy: count it idle below 95%.
    const a = agent(`tick: 1s
${policy('cpuset_spread', 'mode: cpuset, trigger_ticks: 2, idle_below: 0.95')}targets:
  - {name: web, cgroup: ${web}, role: protect}
`);
    await a.waitFor((l) => l.msg === 'agent running', SLOW);
    await run(web, toolPath('hog'), ['--threads', '2']);
    await waitUntil(() => read(join(web, 'cpuset.cpus')) !== '0', 2 * SLOW, 'web cpuset.cpus widened');
    console.log(`pile-up → web cpuset.cpus ${read(join(web, 'cpuset.cpus'))}`);
    expect(read(join(web, 'cpuset.cpus.effective'))).toBe('0-1');
    await stop(a);
    expect(read(join(web, 'cpuset.cpus'))).toBe('0');
  });
});

describe('per-cgroup PSI and cgstat (cgroup v2)', () => {
  it('arms a trigger on a target cgroup cpu.pressure that fires under load, and reports the cgroup own pressure and stats', async () => {
    const web = base.child('web').path;
    const http = port();
    const a = agent(
      `tick: 1s
signals:
  psi:
    triggers: [{resource: cpu, kind: some, stall: 100ms, window: 2s, target: web}]
${policy('none')}targets:
  - {name: web, cgroup: ${web}, role: protect}
`,
      ['--listen', `127.0.0.1:${http}`],
    );
    await a.waitFor((l) => l.msg === 'http listening', SLOW);
    // The server is bound before the agent starts (/readyz says 503 until then).
    await a.waitFor((l) => l.msg === 'agent running', SLOW);
    // Two hogs on one CPU in the target: each waits for the other, so the cgroup's own "some" stall is ~100%.
    await run(web, 'taskset', ['-c', '0', toolPath('hog'), '--threads', '2']);
    const fired = await a.waitFor((l) => l.msg === 'PSI trigger fired', SLOW);
    expect(fired.path).toBe(join(web, 'cpu.pressure'));
    // avg10 is a 10 s running average: let it rise.
    await sleep(10_000);
    type Tick = { time: number; windowMs: number; targets: Record<string, { psi?: { cgroup?: { cpu?: { someAvg10: number; someStallUs: number } } }; cgstat?: CgstatWindow }> };
    type CgstatWindow = { cpuUsageUs: number; memoryBytes?: number; unavailable?: string[] };
    const snap = await getJson<{ last: Tick; history: Tick[] }>(`http://127.0.0.1:${http}/api/signals`);
    const usageFile = Number(/usage_usec (\d+)/.exec(read(join(web, 'cpu.stat')))?.[1]);
    const t = snap.last.targets.web!;
    const own = Number(/^some avg10=([\d.]+)/m.exec(read(join(web, 'cpu.pressure')))?.[1]);
    console.log(`web cpu.pressure avg10 agent ${t.psi?.cgroup?.cpu?.someAvg10} file ${own}; cgstat ${JSON.stringify(t.cgstat)}`);
    // One of the two hogs always waits: the cgroup's "some" stall is most of every second, and its average agrees
    // with the file read a moment later.
    expect(t.psi?.cgroup?.cpu?.someStallUs).toBeGreaterThan(500_000);
    expect(t.psi?.cgroup?.cpu?.someAvg10).toBeGreaterThan(30);
    expect(Math.abs(t.psi!.cgroup!.cpu!.someAvg10 - own)).toBeLessThan(20);
    // cgstat from cpu.stat: the CPU time of every tick since start adds up to the cgroup's usage_usec (read just after
    // the last tick, so it may be ahead by the time since then: one CPU for at most ~2 s here). One tick alone is no
    // measure: a trigger wakes the agent for an early tick, and a window of a few ms is below accounting granularity.
    expect(t.cgstat?.unavailable).toBeUndefined();
    const summed = snap.history.reduce((sum, h) => sum + (h.targets.web?.cgstat?.cpuUsageUs ?? 0), 0);
    console.log(`web CPU: agent's ticks add up to ${summed} µs, cpu.stat usage_usec ${usageFile} µs`);
    expect(summed).toBeLessThanOrEqual(usageFile);
    expect(summed).toBeGreaterThan(usageFile - 2_000_000);
    // Memory as memory.current says, within what a tick can change.
    const current = Number(read(join(web, 'memory.current')));
    expect(t.cgstat?.memoryBytes).toBeGreaterThan(0);
    expect(Math.abs(t.cgstat!.memoryBytes! - current)).toBeLessThan(Math.max(4 << 20, current * 0.5));
    await stop(a);
  });
});

describe('a threaded subtree (cgroup.type threaded)', () => {
  it('attributes threads by their own cgroup and lowers the noisy thread group cpu.weight', async () => {
    // A process's threads split into two threaded cgroups: a victim thread group and a hog thread group.
    const app = base.child('app');
    const domain = app.path;
    const vt = app.child('victim').path;
    const ht = app.child('hogs').path;
    // A threaded domain passes down only threaded controllers (cpu, cpuset, pids): the domain ones go first.
    for (const c of ['io', 'memory', 'hugetlb', 'rdma', 'misc']) {
      try {
        writeFileSync(join(domain, 'cgroup.subtree_control'), `-${c}\n`);
      } catch {
        // not enabled here
      }
    }
    for (const d of [vt, ht]) writeFileSync(join(d, 'cgroup.type'), 'threaded\n');
    expect(read(join(domain, 'cgroup.type'))).toBe('domain threaded');
    const victim = await run(domain, 'taskset', ['-c', '1', toolPath('victim'), '--period-us', '4000', '--work-us', '2400', '--quiet']);
    const hogs = await run(domain, 'taskset', ['-c', '1', toolPath('hog'), '--threads', '4']);
    writeFileSync(join(vt, 'cgroup.procs'), `${victim.pid}\n`);
    writeFileSync(join(ht, 'cgroup.procs'), `${hogs.pid}\n`);
    // Threads the hog starts later are born in its threaded cgroup.
    await waitUntil(() => read(join(ht, 'cgroup.threads')).split('\n').length >= 4, SLOW, 'hog threads in their threaded cgroup');
    expect(read(join(domain, 'cgroup.threads'))).toBe('');
    const http = port();
    const a = agent(noisyConfig(vt, ht), ['--listen', `127.0.0.1:${http}`]);
    await a.waitFor((l) => l.msg === 'http listening', SLOW);
    // The server is bound before the agent starts (/readyz says 503 until then).
    await a.waitFor((l) => l.msg === 'agent running', SLOW);
    await waitUntil(() => Number(read(join(ht, 'cpu.weight'))) < 100, SLOW, 'threaded hogs cpu.weight lowered');
    type Snap = { last: { targets: Record<string, { runqlat?: { count: number; oncpuUs: number } }> } };
    const snap = await getJson<Snap>(`http://127.0.0.1:${http}/api/signals`);
    expect(snap.last.targets.web?.runqlat?.count).toBeGreaterThan(0);
    expect(snap.last.targets.batch?.runqlat?.oncpuUs).toBeGreaterThan(0);
    await stop(a);
    expect(read(join(ht, 'cpu.weight'))).toBe('100');
  });
});

describe('pattern targets over the layouts users have', () => {
  it('one line selects every pod of a QoS class: a pod created after start is picked up, a removed one let go of', async () => {
    // kubelet's systemd-driver layout.
    const qos = 'kubepods.slice/kubepods-burstable.slice';
    const pod = (uid: string, id: string) => `${qos}/kubepods-burstable-pod${uid}.slice/cri-containerd-${id}.scope`;
    made.push(join(CG, 'kubepods.slice'), join(CG, 'system.slice'));
    const first = mkcg(pod('11111111_aaaa', 'aaa111'));
    // A systemd service tree beside it: the protected web service.
    const web = mkcg('system.slice/web.service');
    const http = port();
    const a = agent(
      `tick: 1s
${policy('none')}targets:
  - {name: web, cgroup: ${web}, role: protect}
  - {name: burstable, cgroup_pattern: ${CG}/${qos}/kubepods-burstable-pod*.slice/cri-containerd-*.scope, role: noisy, max_matches: 8}
`,
      ['--listen', `127.0.0.1:${http}`],
    );
    await a.waitFor((l) => l.msg === 'http listening', SLOW);
    // The server is bound before the agent starts (/readyz says 503 until then).
    await a.waitFor((l) => l.msg === 'agent running', SLOW);
    const name = (p: string) => `burstable/${p.slice(join(CG, qos).length + 1)}`;
    type Targets = { targets: { name: string }[] };
    const names = async () => (await getJson<Targets>(`http://127.0.0.1:${http}/api/targets`)).targets.map((t) => t.name);
    expect(await names()).toEqual(['web', name(first)]);

    // A pod starts while the agent runs, with a busy container.
    const second = mkcg(pod('22222222_bbbb', 'bbb222'));
    await run(second, toolPath('hog'), ['--threads', '1']);
    await a.waitFor((l) => l.msg === 'targets changed' && JSON.stringify(l.added).includes('bbb222'), SLOW);
    expect(await names()).toEqual(['web', name(first), name(second)]);
    // Its tasks are attributed to it by their cgroup v2 id, in the kernel: the agent sees a good part of the on-CPU
    // time the cgroup's own cpu.stat counts (it is picked up within 5 ticks of appearing), and never more.
    type Tick = { targets: Record<string, { runqlat?: { count: number; oncpuUs: number } }> };
    await sleep(5000);
    const { history } = await getJson<{ history: Tick[] }>(`http://127.0.0.1:${http}/api/signals`);
    const usage = Number(/usage_usec (\d+)/.exec(read(join(second, 'cpu.stat')))?.[1]);
    const seen = history.reduce((sum, h) => sum + (h.targets[name(second)]?.runqlat?.oncpuUs ?? 0), 0);
    console.log(`new pod ${name(second)}: on-CPU ${(seen / 1e6).toFixed(2)} s seen by the agent, cpu.stat usage ${(usage / 1e6).toFixed(2)} s`);
    expect(seen).toBeGreaterThan(500_000);
    expect(seen).toBeLessThanOrEqual(usage * 1.02);

    // The first pod goes away: the agent lets go of it.
    removeTree(join(CG, qos, 'kubepods-burstable-pod11111111_aaaa.slice'));
    await a.waitFor((l) => l.msg === 'targets changed' && JSON.stringify(l.removed).includes('aaa111'), SLOW);
    expect(await names()).toEqual(['web', name(second)]);
    report('pattern-target', { pickedUp: name(second), lettingGo: name(first) });
    await stop(a);
  });
});
