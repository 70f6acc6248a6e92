/**
 * numa_rebalance for real, through the CLI, in a guest with two NUMA nodes (scripts/vm/test-vm.sh boots one per
 * kernel: node 0 = CPU 0, node 1 = CPU 1, half the memory each). A protect target's memory is bound to node 0
 * (numactl --membind=0) while its cpuset runs it on CPU 1: every access is remote. The agent's numa signal is checked
 * against /proc/PID/numa_maps and `numastat -p`, the rule fires, the action moves the CPUs to the memory (cpuset.cpus)
 * or the memory to the CPUs (cpuset.mems + migrate_pages), the remote fraction falls, and everything is restored on
 * SIGTERM and after kill -9 + rollback. With the kernel's own NUMA balancing on, the agent says so and moves no
 * memory until it is turned off.
 *
 * Fails — never skips — outside such a guest.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import type { NumaStats } from '../../src/signals/numa/numa.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess, type TestCgroup } from '../../src/testing/cgroups.js';
import { runCli, tempDir, type AgentProcess } from '../e2e/helpers.js';
import { getJson, kernelRelease, numaNodes, port, read, report, requireNumaVm, sleep, startVmAgent, stopVmAgent, waitUntil } from './helpers.js';

/** Generous: the VM's CPUs are emulated (TCG), several times slower than the host's. */
const SLOW = 60_000;
const MIB = 256;
const SYSCTL = '/proc/sys/kernel/numa_balancing';
/** How far the agent's numbers may be from the test's own reading of the same files a few seconds apart. */
const FRACTION_TOLERANCE = 0.05;
/** numa_maps against numastat (which rounds to 0.01 MiB) and against the agent: 1% or 2 MiB, whichever is larger. */
const mibTolerance = (mib: number) => Math.max(2, mib * 0.01);

let balancingAtStart: string | undefined;
let base: TestCgroup;
let state: ReturnType<typeof tempDir>;
const procs: SpawnedProcess[] = [];

beforeAll(() => {
  requireNumaVm();
  balancingAtStart = read(SYSCTL);
});
beforeEach(() => {
  // The kernel's balancer off unless a test turns it on: it is the other mover of the same pages.
  writeFileSync(SYSCTL, '0\n');
  base = makeTestCgroup('cpuset');
  state = tempDir();
});
afterEach(async () => {
  for (const p of procs.splice(0)) await killAndWait(p);
  base.remove();
  state.remove();
});
afterAll(async () => {
  if (balancingAtStart !== undefined) writeFileSync(SYSCTL, `${balancingAtStart}\n`);
  await cleanupAll();
});

/** A policy section with numa_rebalance on, moving `move` (cpus or memory), and every other rule off. */
function config(cg: string, move: 'cpus' | 'memory'): string {
  const rules = ['noisy_neighbor', 'pressure_backoff', 'cpuset_spread', 'io_prefetch'];
  return `tick: 1s
policy:
  numa_rebalance: {enabled: true, trigger_ticks: 2, sample_ticks: 1, move: ${move}}
${rules.map((r) => `  ${r}: {enabled: false}`).join('\n')}
targets:
  - {name: app, cgroup: ${cg}, role: protect}
`;
}

const agent = (cfg: string, extra: string[] = []): AgentProcess => startVmAgent(state, procs, cfg, extra);
const stop = stopVmAgent;

/** The target: a cgroup whose cpuset runs it on CPU 1 (node 1), with numa-touch's memory bound to node 0. */
async function farTarget(): Promise<{ cg: string; pid: number }> {
  const cg = base.child('app').path;
  writeFileSync(join(cg, 'cpuset.cpus'), '1\n');
  const p = await spawnInCgroup(cg, 'numactl', ['--membind=0', toolPath('numa-touch'), '--mib', String(MIB)]);
  procs.push(p);
  await waitUntil(() => total(numaMapsKb(p.pid)) >= MIB * 1024, SLOW, `numa-touch wrote its ${MIB} MiB`);
  return { cg, pid: p.pid };
}

/** kB per node from /proc/PID/numa_maps: N<node>=<pages> × kernelpagesize_kB, read here independently of the agent. */
function numaMapsKb(pid: number): Map<number, number> {
  const kb = new Map<number, number>();
  for (const line of readFileSync(`/proc/${pid}/numa_maps`, 'utf8').split('\n')) {
    const page = Number(/kernelpagesize_kB=(\d+)/.exec(line)?.[1] ?? 4);
    for (const m of line.matchAll(/ N(\d+)=(\d+)/g)) kb.set(Number(m[1]), (kb.get(Number(m[1])) ?? 0) + Number(m[2]) * page);
  }
  return kb;
}

const total = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/** MiB per node from the "Total" row of `numastat -p PID` (numactl's own reading of numa_maps). */
function numastatMib(pid: number): Map<number, number> {
  const out = execFileSync('numastat', ['-p', String(pid)], { encoding: 'utf8' });
  const header = /^\s+((?:Node \d+\s+)+)Total\s*$/m.exec(out);
  const row = /^Total\s+([\d.\s]+)$/m.exec(out);
  if (header === null || row === null) throw new Error(`numastat -p ${pid}: no Node/Total rows in:\n${out}`);
  const nodes = [...header[1]!.matchAll(/Node (\d+)/g)].map((m) => Number(m[1]));
  const values = row[1]!.trim().split(/\s+/).map(Number);
  return new Map(nodes.map((n, i) => [n, values[i]!]));
}

/** Each thread's last CPU (stat field 39) and CPU time (utime + stime, fields 14-15). */
function threads(pid: number): Map<number, { cpu: number; ticks: number }> {
  const out = new Map<number, { cpu: number; ticks: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // f[0] is field 3 (state): field N is f[N - 3].
      out.set(Number(tid), { cpu: Number(f[36]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // exited
    }
  }
  return out;
}

/** The CPU numa-touch's touching thread (its only thread besides the leader) last ran on. */
function toucherCpu(pid: number): number | undefined {
  return [...threads(pid)].find(([tid]) => tid !== pid)?.[1].cpu;
}

interface Measured {
  /** MiB per node. */
  mib: Record<string, number>;
  /** Share of the accesses expected remote: per thread, the memory not on its node, weighted by CPU time. */
  remote: number;
  /** The node the threads used most CPU time on. */
  cpuNode: number;
}

/** The target's placement as the test reads it, over `ms` of CPU time: the agent's definition, computed here. */
async function measure(pid: number, ms = 2000): Promise<Measured> {
  const nodeOf = new Map<number, number>();
  for (const [node, cpus] of numaNodes()) for (const c of cpus) nodeOf.set(c, node);
  const t0 = threads(pid);
  await sleep(ms);
  const t1 = threads(pid);
  const kb = numaMapsKb(pid);
  const weight = new Map<number, number>();
  for (const [tid, t] of t1) {
    const node = nodeOf.get(t.cpu)!;
    weight.set(node, (weight.get(node) ?? 0) + Math.max(0, t.ticks - (t0.get(tid)?.ticks ?? t.ticks)));
  }
  let w = 0;
  let remote = 0;
  for (const [node, x] of weight) {
    w += x;
    remote += x * (1 - (kb.get(node) ?? 0) / total(kb));
  }
  const cpuNode = [...weight].sort((a, b) => b[1] - a[1])[0]![0];
  return { mib: Object.fromEntries([...kb].map(([n, v]) => [String(n), Math.round((v / 1024) * 100) / 100])), remote: w > 0 ? remote / w : NaN, cpuNode };
}

/**
 * cpuset.mems back as it was. An empty original ("the parent's") cannot be written back while the cgroup has tasks
 * (the kernel refuses to empty a populated cpuset: ENOSPC), so the restore writes the parent's effective nodes: the
 * same nodes the empty list gave it.
 */
function expectMemsRestored(cg: string, original: string): void {
  const parent = read(join(cg, '..', 'cpuset.mems.effective'));
  expect(read(join(cg, 'cpuset.mems'))).toBe(original === '' ? parent : original);
  expect(read(join(cg, 'cpuset.mems.effective'))).toBe(parent);
}

/** numa_maps and numastat agree on where the memory is. */
function expectNumastatAgrees(pid: number, m: Measured): void {
  const ns = numastatMib(pid);
  for (const node of [0, 1]) {
    expect(Math.abs((m.mib[String(node)] ?? 0) - (ns.get(node) ?? 0)), `node ${node}: numa_maps ${m.mib[String(node)]} MiB, numastat ${ns.get(node)} MiB`).toBeLessThanOrEqual(
      mibTolerance(ns.get(node) ?? 0),
    );
  }
}

type AgentNuma = Pick<NumaStats, 'memKb' | 'memNode' | 'memShare' | 'cpuNode' | 'remoteFraction' | 'totalKb' | 'kernelBalancing'>;
type Signals = { last: Snap | null; history: Snap[] };
type Snap = { time: number; targets: Record<string, { numa?: AgentNuma }> };

const fmt = (x: number) => x.toFixed(3);

describe('numa_rebalance on two nodes', () => {
  it('measures the remote fraction as numa_maps and numastat show it, moves the CPUs to the memory, and restores them on SIGTERM and after kill -9 + rollback', async () => {
    const { cg, pid } = await farTarget();
    const before = await measure(pid);
    console.log(`before: remote fraction ${fmt(before.remote)}, memory ${JSON.stringify(before.mib)} MiB, threads on node ${before.cpuNode}`);
    expectNumastatAgrees(pid, before);
    expect(before.cpuNode).toBe(1);
    expect(before.mib['0']).toBeGreaterThanOrEqual(MIB);
    expect(before.remote).toBeGreaterThan(0.95);

    const http = port();
    const a = agent(config(cg, 'cpus'), ['--listen', `127.0.0.1:${http}`]);
    await a.waitFor((l) => l.msg === 'http listening', SLOW);
    // The server is bound before the agent starts (/readyz says 503 until then).
    await a.waitFor((l) => l.msg === 'agent running', SLOW);
    const applied = await a.waitFor((l) => l.action === 'numa_rebalance' && l.kind === 'applied', SLOW);
    expect(applied.msg).toMatch(/of app's \d+ MiB is on node 0 while its threads run mostly on node 1: .* moving its CPUs to node 0 \(cpuset\.cpus\)/);
    expect(read(join(cg, 'cpuset.cpus'))).toBe('0');

    // What the agent measured before it acted: the last sample with the threads still on node 1.
    const sig = await getJson<Signals>(`http://127.0.0.1:${http}/api/signals`);
    const seen = sig.history.map((s) => s.targets.app?.numa).filter((n): n is AgentNuma => n !== undefined && n.cpuNode === 1);
    expect(seen.length).toBeGreaterThanOrEqual(2);
    const agentBefore = seen.at(-1)!;
    console.log(`agent before: remote fraction ${fmt(agentBefore.remoteFraction)}, memKb ${JSON.stringify(agentBefore.memKb)}, memShare ${fmt(agentBefore.memShare)}`);
    expect(agentBefore).toMatchObject({ memNode: 0, cpuNode: 1, kernelBalancing: 0 });
    expect(Math.abs(agentBefore.remoteFraction - before.remote)).toBeLessThanOrEqual(FRACTION_TOLERANCE);
    for (const node of ['0', '1']) {
      expect(Math.abs((agentBefore.memKb[node] ?? 0) / 1024 - (before.mib[node] ?? 0))).toBeLessThanOrEqual(mibTolerance(before.mib[node] ?? 0));
    }

    // The threads follow the cpuset to node 0, where the memory is.
    await waitUntil(() => toucherCpu(pid) === 0, SLOW, 'the toucher thread runs on CPU 0');
    const after = await measure(pid);
    console.log(`after the nudge: remote fraction ${fmt(after.remote)}, memory ${JSON.stringify(after.mib)} MiB, threads on node ${after.cpuNode}`);
    expect(after.cpuNode).toBe(0);
    expect(after.remote).toBeLessThan(0.05);
    // The agent sees it too: its objective, judged by the closed loop.
    const seenAfter = await waitForAgent(http, (n) => n.cpuNode === 0 && n.remoteFraction < 0.05);
    console.log(`agent after: remote fraction ${fmt(seenAfter.remoteFraction)}`);

    await stop(a);
    expect(read(join(cg, 'cpuset.cpus'))).toBe('1');
    await waitUntil(() => toucherCpu(pid) === 1, SLOW, 'the toucher thread back on CPU 1');
    const restored = await measure(pid);
    console.log(`after SIGTERM (restored): remote fraction ${fmt(restored.remote)}, threads on node ${restored.cpuNode}`);
    expect(restored.remote).toBeGreaterThan(0.95);

    // Again, and this time the agent dies without restoring: rollback does it.
    const b = agent(config(cg, 'cpus'));
    await b.waitFor((l) => l.action === 'numa_rebalance' && l.kind === 'applied', SLOW);
    expect(read(join(cg, 'cpuset.cpus'))).toBe('0');
    b.child.kill('SIGKILL');
    await b.exited;
    expect(read(join(cg, 'cpuset.cpus'))).toBe('0');
    const r = runCli(['rollback', '--state-dir', join(state.path, 'state'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { restored: { path: string }[] }).restored.map((x) => x.path)).toContain(join(cg, 'cpuset.cpus'));
    expect(read(join(cg, 'cpuset.cpus'))).toBe('1');
    const rolledBack = await measure(pid);
    console.log(`after kill -9 + rollback: remote fraction ${fmt(rolledBack.remote)}`);
    expect(rolledBack.remote).toBeGreaterThan(0.95);

    report('numa_rebalance move: cpus', {
      kernel: kernelRelease(),
      remote: { before: before.remote, agentBefore: agentBefore.remoteFraction, after: after.remote, agentAfter: seenAfter.remoteFraction, restored: restored.remote, rolledBack: rolledBack.remote },
      memoryMib: before.mib,
    });
  });

  it('moves the memory to the CPUs (cpuset.mems + migrate_pages) when configured, and rollback after kill -9 restores cpuset.mems', async () => {
    const { cg, pid } = await farTarget();
    const before = await measure(pid);
    console.log(`before: remote fraction ${fmt(before.remote)}, memory ${JSON.stringify(before.mib)} MiB, threads on node ${before.cpuNode}`);
    expect(before.remote).toBeGreaterThan(0.95);
    const mems = read(join(cg, 'cpuset.mems'));

    const a = agent(config(cg, 'memory'));
    const applied = await a.waitFor((l) => l.action === 'numa_rebalance' && l.kind === 'applied', SLOW);
    expect(applied.msg).toMatch(/moving its memory to node 1 \(cpuset\.mems and migrate_pages\)/);
    expect(read(join(cg, 'cpuset.mems'))).toBe('1');
    await waitUntil(() => (numaMapsKb(pid).get(1) ?? 0) >= MIB * 1024, SLOW, `${MIB} MiB on node 1`);
    const after = await measure(pid);
    console.log(`after the nudge: remote fraction ${fmt(after.remote)}, memory ${JSON.stringify(after.mib)} MiB, threads on node ${after.cpuNode}`);
    expectNumastatAgrees(pid, after);
    expect(after.cpuNode).toBe(1);
    expect(after.remote).toBeLessThan(0.05);

    a.child.kill('SIGKILL');
    await a.exited;
    expect(read(join(cg, 'cpuset.mems'))).toBe('1');
    const r = runCli(['rollback', '--state-dir', join(state.path, 'state'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expectMemsRestored(cg, mems);
    // The pages stay where they were moved: the restored cpuset.mems allows node 1 too, and moving them back would
    // cost as much again (src/actions/numa-rebalance/README.md, Safety).
    const restored = await measure(pid);
    console.log(`after kill -9 + rollback (cpuset.mems "${read(join(cg, 'cpuset.mems'))}"): remote fraction ${fmt(restored.remote)}, memory ${JSON.stringify(restored.mib)} MiB`);
    expect(restored.remote).toBeLessThan(0.05);
    report('numa_rebalance move: memory', { kernel: kernelRelease(), remote: { before: before.remote, after: after.remote, restored: restored.remote }, memoryMib: { before: before.mib, after: after.mib } });
  });

  it('with kernel NUMA balancing on, says so at start and moves no memory; once it is off, moves it and restores on SIGTERM', async () => {
    writeFileSync(SYSCTL, '1\n');
    const { cg, pid } = await farTarget();
    const http = port();
    const a = agent(config(cg, 'memory'), ['--listen', `127.0.0.1:${http}`]);
    const said = await a.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('kernel NUMA balancing is on'), SLOW);
    expect(said.msg).toMatch(/kernel\.numa_balancing=1\): the kernel itself moves pages toward the threads that touch them, so numa_rebalance \(move: memory\) holds back/);
    await a.waitFor((l) => l.msg === 'http listening', SLOW);
    // The server is bound before the agent starts (/readyz says 503 until then).
    await a.waitFor((l) => l.msg === 'agent running', SLOW);
    // Far for many more samples than trigger_ticks, and nothing moves: the kernel is left to it.
    const far = await waitForAgent(http, (_n, h) => h.filter((x) => x.remoteFraction > 0.9 && x.kernelBalancing === 1).length >= 6);
    expect(read(join(cg, 'cpuset.mems'))).toBe('');
    expect(a.lines.some((l) => l.action === 'numa_rebalance'), 'no numa_rebalance decision while the kernel balances').toBe(false);
    const held = await measure(pid);
    console.log(`kernel balancing on: agent remote fraction ${fmt(far.remoteFraction)}, measured ${fmt(held.remote)}, memory ${JSON.stringify(held.mib)} MiB (MPOL_BIND memory the kernel does not move)`);

    writeFileSync(SYSCTL, '0\n');
    await a.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('kernel NUMA balancing turned off'), SLOW);
    await a.waitFor((l) => l.action === 'numa_rebalance' && l.kind === 'applied', SLOW);
    expect(read(join(cg, 'cpuset.mems'))).toBe('1');
    await waitUntil(() => (numaMapsKb(pid).get(1) ?? 0) >= MIB * 1024, SLOW, `${MIB} MiB on node 1`);
    const after = await measure(pid);
    console.log(`kernel balancing turned off → memory moved: remote fraction ${fmt(after.remote)}`);
    expect(after.remote).toBeLessThan(0.05);
    await stop(a);
    expectMemsRestored(cg, '');
    report('numa_rebalance with kernel.numa_balancing', { kernel: kernelRelease(), heldBackRemote: held.remote, afterTurnedOffRemote: after.remote });
  });

  it('honours min_memory_mb, dominance and remote_threshold before moving the CPUs, and restores them only after calm_ticks with the memory below dominance × calm_fraction', async () => {
    // app: 256 MiB on node 0 and 32 MiB on node 1, every thread on CPU 1 (node 1). Node 0's share of the memory and
    // the remote fraction are both 256/288 ≈ 0.89, and the total is ≈ 288 MiB.
    const cg = base.child('app').path;
    writeFileSync(join(cg, 'cpuset.cpus'), '1\n');
    const pids = [await touch(cg, 0, MIB), await touch(cg, 1, 32)];
    const start = placement(pids);
    console.log(`app: ${JSON.stringify(start.mib)} MiB, node 0 share ${fmt(start.share0)}`);
    expect(start.share0).toBeGreaterThan(0.85);
    expect(start.share0).toBeLessThan(0.92);
    expect(start.totalMib).toBeGreaterThan(256);
    expect(start.totalMib).toBeLessThan(512);
    expectCpus(cg, pids, '1');
    const far = await measureAll(pids);
    expect(far.cpuNode).toBe(1);
    expect(Math.abs(far.remote - start.share0)).toBeLessThanOrEqual(FRACTION_TOLERANCE);

    const http = port();
    const stateDir = join(state.path, 'state');
    let since = Date.now();
    // 1. min_memory_mb above the ≈ 288 MiB: far on every other count, and nothing moves.
    const a = agent(thresholds(cg, { remote: 0.5, dominance: 0.75, calmFraction: 0.85, minMemoryMb: 1024 }), ['--listen', `127.0.0.1:${http}`]);
    await a.waitFor((l) => l.msg === 'agent running', SLOW);
    let seen = await farSamples(http, since, (n) => n.memShare >= 0.75 && n.remoteFraction >= 0.5);
    expect(Math.max(...seen.map((n) => n.totalKb))).toBeLessThan(1024 * 1024);
    expectNoMove(a, cg, pids, 'min_memory_mb: 1024');
    console.log(`min_memory_mb 1024: ${seen.length} samples of ${Math.round(seen.at(-1)!.totalKb / 1024)} MiB, share ${fmt(seen.at(-1)!.memShare)}, remote ${fmt(seen.at(-1)!.remoteFraction)}: no move`);

    // 2. The memory's share (≈ 0.89) below dominance: nothing moves, though min_memory_mb and remote_threshold pass.
    since = await reload(a, thresholds(cg, { remote: 0.5, dominance: 0.95, calmFraction: 0.85, minMemoryMb: 128 }));
    seen = await farSamples(http, since, (n) => n.totalKb >= 128 * 1024 && n.remoteFraction >= 0.5 && n.memShare < 0.95);
    expectNoMove(a, cg, pids, 'dominance: 0.95');
    console.log(`dominance 0.95: ${seen.length} samples with share ${fmt(seen.at(-1)!.memShare)}: no move`);

    // 3. The remote fraction (≈ 0.89) below remote_threshold: nothing moves.
    since = await reload(a, thresholds(cg, { remote: 0.95, dominance: 0.75, calmFraction: 0.85, minMemoryMb: 128 }));
    seen = await farSamples(http, since, (n) => n.totalKb >= 128 * 1024 && n.memShare >= 0.75 && n.remoteFraction < 0.95);
    expectNoMove(a, cg, pids, 'remote_threshold: 0.95');
    console.log(`remote_threshold 0.95: ${seen.length} samples with remote ${fmt(seen.at(-1)!.remoteFraction)}: no move`);

    // 4. Every threshold met: the CPUs move to node 0 after trigger_ticks.
    since = await reload(a, thresholds(cg, { remote: 0.8, dominance: 0.8, calmFraction: 0.85, minMemoryMb: 128 }));
    const applied = await a.waitFor((l) => l.action === 'numa_rebalance' && l.kind === 'applied' && logTime(l) >= since, SLOW);
    expect(applied.msg).toMatch(/^\d+% of app's \d+ MiB is on node 0 while its threads run mostly on node 1: \d+% of its accesses are remote \(≥ 80%\) for \d+ ticks; moving its CPUs to node 0 \(cpuset\.cpus\)$/);
    expectCpus(cg, pids, '0');
    const why = explain(stateDir, applied.decision as string);
    expect(why.decision.kind).toBe('applied');
    expect(why.decision.evidence.memShare).toBeGreaterThanOrEqual(0.8);
    expect(why.decision.evidence.remoteFraction).toBeGreaterThanOrEqual(0.8);
    expect(why.decision.evidence.memoryMb).toBeGreaterThanOrEqual(128);
    expect(why.decision.evidence.hotTicks).toBeGreaterThanOrEqual(TRIGGER);
    await waitUntil(() => pids.every((pid) => toucherCpu(pid) === 0), SLOW, 'every toucher thread runs on CPU 0');
    const moved = await measureAll(pids);
    console.log(`moved: remote fraction ${fmt(far.remote)} → ${fmt(moved.remote)}, threads on node ${moved.cpuNode}`);
    expect(moved.cpuNode).toBe(0);
    expect(moved.remote).toBeLessThan(0.2);

    // 5. 64 MiB more on node 1: node 0's share ≈ 0.73, below dominance (0.8) but not below dominance × calm_fraction
    // (0.68). Many more than calm_ticks samples, and the cpuset stays.
    pids.push(await touch(cg, 1, 64));
    const between = placement(pids);
    console.log(`+64 MiB on node 1: ${JSON.stringify(between.mib)} MiB, node 0 share ${fmt(between.share0)}`);
    expect(between.share0).toBeGreaterThan(0.69);
    expect(between.share0).toBeLessThan(0.76);
    since = Date.now();
    seen = await farSamples(http, since, (n) => n.memNode === 0 && n.memShare < 0.8 && n.memShare >= 0.68, CALM + 4);
    expect(a.lines.filter((l) => l.action === 'numa_rebalance' && (l.kind === 'restored' || l.kind === 'reverted')), 'no restore above dominance × calm_fraction').toEqual([]);
    expectCpus(cg, pids, '0');
    console.log(`share ${fmt(seen.at(-1)!.memShare)} for ${seen.length} samples (calm below 0.68): cpuset.cpus still 0`);

    // 6. 96 MiB more on node 1: node 0's share ≈ 0.57, below 0.68. After calm_ticks calm samples the original cpuset
    // comes back.
    pids.push(await touch(cg, 1, 96));
    const calm = placement(pids);
    console.log(`+96 MiB on node 1: ${JSON.stringify(calm.mib)} MiB, node 0 share ${fmt(calm.share0)}`);
    expect(calm.share0).toBeGreaterThan(0.52);
    expect(calm.share0).toBeLessThan(0.62);
    const restored = await a.waitFor((l) => l.action === 'numa_rebalance' && l.kind === 'restored', SLOW * 2);
    expect(restored.msg).toMatch(new RegExp(`^calm: app's memory has had no home node \\(largest share < 68%\\) for ${CALM} ticks \\(now \\d+% on node 0\\); restoring its original cpuset$`));
    expectCpus(cg, pids, '1');
    expect(explain(stateDir, restored.decision as string).decision.evidence.calmTicks).toBe(CALM);
    // The agent's own samples up to the decision: at least calm_ticks in a row below dominance × calm_fraction.
    const sig = await getJson<Signals>(`http://127.0.0.1:${http}/api/signals`);
    const upTo = sig.history.filter((s) => s.time <= logTime(restored)).map((s) => s.targets.app?.numa);
    let run = 0;
    for (let i = upTo.length - 1; i >= 0 && upTo[i] !== undefined && upTo[i]!.memShare < 0.68; i--) run++;
    expect(run).toBeGreaterThanOrEqual(CALM);
    await waitUntil(() => pids.every((pid) => toucherCpu(pid) === 1), SLOW, 'every toucher thread back on CPU 1');
    const back = await measureAll(pids);
    console.log(`restored after ${run} calm samples: threads on node ${back.cpuNode}, remote fraction ${fmt(back.remote)}`);
    expect(back.cpuNode).toBe(1);

    await stop(a);
    expectCpus(cg, pids, '1');
    report('numa_rebalance thresholds', { kernel: kernelRelease(), share: { start: start.share0, between: between.share0, calm: calm.share0 }, remote: { far: far.remote, moved: moved.remote, back: back.remote }, calmRun: run });
  });
});

/** Polls /api/signals until the agent's numa sample for app satisfies `pred` (given it and the history's). */
async function waitForAgent(http: number, pred: (n: AgentNuma, history: AgentNuma[], snaps: Snap[]) => boolean, timeoutMs = SLOW): Promise<AgentNuma> {
  const t0 = Date.now();
  let n: AgentNuma | undefined;
  for (;;) {
    const s = await getJson<Signals>(`http://127.0.0.1:${http}/api/signals`);
    n = s.last?.targets.app?.numa;
    const h = s.history.map((x) => x.targets.app?.numa).filter((x): x is AgentNuma => x !== undefined);
    if (n !== undefined && pred(n, h, s.history)) return n;
    if (Date.now() - t0 > timeoutMs) throw new Error(`the agent's numa sample of app: not as expected within ${timeoutMs} ms; last: ${JSON.stringify(n)}`);
    await sleep(500);
  }
}

const TRIGGER = 2;
const CALM = 3;

/**
 * numa_rebalance alone, moving CPUs, with the given thresholds; the eBPF signals off (the rule reads only the numa
 * signal, and the emulated CPUs are slow enough).
 */
function thresholds(cg: string, t: { remote: number; dominance: number; calmFraction: number; minMemoryMb: number }): string {
  return `tick: 1s
signals:
  runqlat: {enabled: false}
  net: {enabled: false}
  futex: {enabled: false}
  blkio: {enabled: false}
policy:
  numa_rebalance:
    enabled: true
    move: cpus
    remote_threshold: ${t.remote}
    dominance: ${t.dominance}
    calm_fraction: ${t.calmFraction}
    min_memory_mb: ${t.minMemoryMb}
    trigger_ticks: ${TRIGGER}
    calm_ticks: ${CALM}
    sample_ticks: 1
  noisy_neighbor: {enabled: false}
  pressure_backoff: {enabled: false}
  cpuset_spread: {enabled: false}
  io_prefetch: {enabled: false}
targets:
  - {name: app, cgroup: ${cg}, role: protect}
`;
}

/** numa-touch with its `mib` MiB bound to `node`, in `cg`; resolves once they are all in numa_maps. */
async function touch(cg: string, node: number, mib: number): Promise<number> {
  const p = await spawnInCgroup(cg, 'numactl', [`--membind=${node}`, toolPath('numa-touch'), '--mib', String(mib)]);
  procs.push(p);
  await waitUntil(() => (numaMapsKb(p.pid).get(node) ?? 0) >= mib * 1024, SLOW, `numa-touch wrote its ${mib} MiB on node ${node}`);
  return p.pid;
}

/** The processes' memory per node (MiB) from numa_maps, its total and node 0's share. */
function placement(pids: number[]): { mib: Record<string, number>; totalMib: number; share0: number } {
  const kb = new Map<number, number>();
  for (const pid of pids) for (const [n, v] of numaMapsKb(pid)) kb.set(n, (kb.get(n) ?? 0) + v);
  const mib = Object.fromEntries([...kb].map(([n, v]) => [String(n), Math.round((v / 1024) * 100) / 100]));
  return { mib, totalMib: total(kb) / 1024, share0: (kb.get(0) ?? 0) / total(kb) };
}

/** measure() over several processes: the memory of all of them, their threads' CPU time together. */
async function measureAll(pids: number[], ms = 2000): Promise<{ remote: number; cpuNode: number }> {
  const nodeOf = new Map<number, number>();
  for (const [node, cpus] of numaNodes()) for (const c of cpus) nodeOf.set(c, node);
  const t0 = pids.map((pid) => threads(pid));
  await sleep(ms);
  const kb = new Map<number, number>();
  const weight = new Map<number, number>();
  pids.forEach((pid, i) => {
    for (const [n, v] of numaMapsKb(pid)) kb.set(n, (kb.get(n) ?? 0) + v);
    for (const [tid, t] of threads(pid)) {
      const node = nodeOf.get(t.cpu)!;
      weight.set(node, (weight.get(node) ?? 0) + Math.max(0, t.ticks - (t0[i]!.get(tid)?.ticks ?? t.ticks)));
    }
  });
  let w = 0;
  let remote = 0;
  for (const [node, x] of weight) {
    w += x;
    remote += x * (1 - (kb.get(node) ?? 0) / total(kb));
  }
  return { remote: w > 0 ? remote / w : NaN, cpuNode: [...weight].sort((a, b) => b[1] - a[1])[0]![0] };
}

/** The cgroup's cpuset.cpus and cpuset.cpus.effective, and every process's Cpus_allowed_list, are `cpus`. */
function expectCpus(cg: string, pids: number[], cpus: string): void {
  expect(read(join(cg, 'cpuset.cpus'))).toBe(cpus);
  expect(read(join(cg, 'cpuset.cpus.effective'))).toBe(cpus);
  for (const pid of pids) expect(/^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1], `pid ${pid}`).toBe(cpus);
}

/** No numa_rebalance decision at all, and the CPUs where they were. */
function expectNoMove(a: AgentProcess, cg: string, pids: number[], why: string): void {
  expect(a.lines.filter((l) => l.action === 'numa_rebalance'), `no numa_rebalance decision with ${why}`).toEqual([]);
  expectCpus(cg, pids, '1');
}

/**
 * Waits for `count` (default trigger_ticks + 4) of the agent's numa samples of app taken after `since` that satisfy
 * `pred`, and returns them.
 */
async function farSamples(http: number, since: number, pred: (n: AgentNuma) => boolean, count = TRIGGER + 4): Promise<AgentNuma[]> {
  let got: AgentNuma[] = [];
  await waitForAgent(http, (_n, _h, snaps) => {
    got = snaps.filter((s) => s.time >= since).map((s) => s.targets.app?.numa).filter((n): n is AgentNuma => n !== undefined && pred(n));
    return got.length >= count;
  }, SLOW * 2);
  return got;
}

/** Rewrites the config and sends SIGHUP; resolves with the time the agent said it reloaded it. */
async function reload(a: AgentProcess, cfg: string): Promise<number> {
  const before = a.lines.filter((l) => l.msg === 'config reloaded').length;
  state.file('config.yaml', cfg);
  a.child.kill('SIGHUP');
  await waitUntil(() => a.lines.filter((l) => l.msg === 'config reloaded').length > before, SLOW, 'the agent reloads its config');
  return logTime(a.lines.filter((l) => l.msg === 'config reloaded').at(-1)!);
}

/** `ebpf-tuner explain ID --json`: the decision as the audit trail recorded it. */
function explain(stateDir: string, id: string): { decision: { kind: string; reason: string; evidence: Record<string, number> } } {
  const r = runCli(['explain', id, '--state-dir', stateDir, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { decision: { kind: string; reason: string; evidence: Record<string, number> } };
}

/** A log line's time (pino writes it as an ISO string), in ms since the epoch. */
const logTime = (l: Record<string, unknown>): number => Date.parse(l.time as string);
