import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target } from '../../core/types.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../../cgroup/fake-cgroup2.js';
import { Journal } from '../../journal/journal.js';
import { createFakeNuma, type FakeNuma } from '../../signals/numa/fake-numa.js';
import { readTaskStat } from '../../signals/placement/procfs.js';
import { KnobWriter } from '../knob-writer.js';
import { createNumaRebalanceAction, NUMA_REBALANCE } from './numa-rebalance.js';

/**
 * A two-node host faked in files (node 0: CPUs 0-1, node 1: CPUs 2-3) and a cgroup v2 target with the cpuset
 * controller, whose parent allows every CPU and both nodes.
 */
let numa: FakeNuma;
let cg: FakeCgroup2;
let stateDir: string;
let journal: Journal;
let target: Target;
let dir: string;
const moves: [number, number[], number[]][] = [];

function setup(pid: number, pages: Record<number, number>, starttime?: number): void {
  numa = createFakeNuma([
    { cpus: '0-1', memFreeKb: 3_000_000 },
    { cpus: '2-3', memFreeKb: 50_000 },
  ]);
  numa.addProcess({ pid, threads: [{ tid: pid, cpu: 2, ...(starttime !== undefined ? { starttime } : {}) }], pages });
  cg = createFakeCgroup2();
  const parent = cg.mkdir('app.slice', { subtreeControl: ['cpuset'] });
  fs.writeFileSync(path.join(parent, 'cpuset.cpus.effective'), '0-3\n');
  fs.writeFileSync(path.join(parent, 'cpuset.mems.effective'), '0-1\n');
  dir = cg.mkdir('app.slice/db', { procs: [pid] });
  fs.writeFileSync(path.join(dir, 'cpuset.cpus.effective'), '0-3\n');
  fs.writeFileSync(path.join(dir, 'cpuset.mems.effective'), '0-1\n');
  target = { name: 'db', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: dir, version: 2, id: 1n } };
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-numa-test-'));
  journal = Journal.open(stateDir, silentLogger);
  moves.length = 0;
}

afterEach(() => {
  journal.close();
  cg.remove();
  numa.remove();
  fs.rmSync(stateDir, { recursive: true, force: true });
});

const action = () =>
  createNumaRebalanceAction({
    layout: cg.layout,
    procRoot: numa.procRoot,
    sysRoot: numa.sysRoot,
    migrate: (pid, from, to) => {
      moves.push([pid, [...from], [...to]]);
      return 0;
    },
  });
const writer = (o: { dryRun?: boolean; pids?: number[] } = {}) =>
  new KnobWriter({ journal, log: silentLogger, layout: cg.layout, scope: [cg.path('app.slice')], deny: [], ...o });
const file = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');

describe('numa_rebalance on a fake two-node host', () => {
  beforeEach(() => setup(400, { 0: 9000, 1: 1000 }));

  it('declares cpuset.cpus and cpuset.mems, and reads the node each spans (-1 for both)', () => {
    expect(action().knobs(target).map((k) => path.basename(k.path))).toEqual(['cpuset.cpus', 'cpuset.mems']);
    expect(action().read(target)).toEqual({ cpusNode: -1, memNode: -1 });
    fs.writeFileSync(path.join(dir, 'cpuset.cpus'), '2-3\n');
    fs.writeFileSync(path.join(dir, 'cpuset.mems'), '0\n');
    expect(action().read(target)).toEqual({ cpusNode: 1, memNode: 0 });
  });

  it('moves the CPUs to the memory node, and reverts to the original list', () => {
    const a = action();
    const p = a.plan(target, { cpusNode: 0 });
    expect(p).toMatchObject({ action: NUMA_REBALANCE, desired: { cpusNode: 0 }, changes: [{ from: '', to: '0-1' }] });
    expect(a.apply(p, writer()).changed).toBe(true);
    expect(file('cpuset.cpus')).toBe('0-1\n');
    expect(a.read(target).cpusNode).toBe(0);
    expect(a.plan(target, { cpusNode: 0 }).changes).toEqual([]);
    expect(a.revert(target, writer())).toMatchObject([{ outcome: 'restored', wrote: true }]);
    expect(file('cpuset.cpus')).toBe('\n');
  });

  it('limits a node to the CPUs the parent allows, and refuses a node it allows none of', () => {
    fs.writeFileSync(cg.path('app.slice/cpuset.cpus.effective'), '0-2\n');
    expect(action().plan(target, { cpusNode: 1 })).toMatchObject({
      changes: [{ to: '2' }],
      notes: ['node 1 CPUs limited to 2 by the parent cpuset'],
    });
    fs.writeFileSync(cg.path('app.slice/cpuset.cpus.effective'), '0-1\n');
    expect(() => action().plan(target, { cpusNode: 1 })).toThrow(/node 1 has no CPU its parent cpuset allows \(0-1\)/);
  });

  it('moving memory sets cpuset.mems and checks the destination has room', () => {
    const p = action().plan(target, { memNode: 0 });
    expect(p).toMatchObject({ changes: [{ from: '', to: '0' }], notes: ['moves 4 MiB of pages to node 0'] });
    // 35 MiB moving to node 1 (49 MiB free) fits with the 1.25 headroom; 47 MiB does not.
    expect(action().plan(target, { memNode: 1 }).changes).toMatchObject([{ to: '1' }]);
    numa.setPages(400, { 0: 12_000, 1: 0 });
    expect(() => action().plan(target, { memNode: 1 })).toThrow(/node 1 has 49 MiB free, too little for the 47 MiB that would move there/);
  });

  it('refuses to move memory while the kernel balances NUMA itself, and still moves CPUs', () => {
    fs.mkdirSync(path.join(numa.procRoot, 'sys/kernel'), { recursive: true });
    fs.writeFileSync(path.join(numa.procRoot, 'sys/kernel/numa_balancing'), '1\n');
    expect(() => action().plan(target, { memNode: 0 })).toThrow(
      /kernel's automatic NUMA balancing is on \(kernel.numa_balancing=1\) and moves pages itself.* — fix: sysctl kernel.numa_balancing=0/,
    );
    expect(action().plan(target, { cpusNode: 0 }).changes).toMatchObject([{ to: '0-1' }]);
  });

  it('refuses nodes that do not exist, malformed requests and targets without a cpuset', () => {
    expect(() => action().plan(target, { cpusNode: 7 })).toThrow(/node 7 does not exist \(nodes: 0-1\)/);
    expect(() => action().plan(target, { cpusNode: 0, memNode: 0 })).toThrow(/exactly one of cpusNode and memNode/);
    expect(() => action().plan(target, { memNode: 1.5 })).toThrow(/must be a node number/);
    const pids: Target = { name: 'p', role: 'protect', slot: 1, scope: { kind: 'pids', pids: [400] } };
    expect(() => action().knobs(pids)).toThrow(expect.objectContaining({ code: 'CGROUP_UNSUPPORTED' }));
  });

  it('a page move of a process that is not running here is skipped', () => {
    action().apply(action().plan(target, { memNode: 0 }), writer());
    expect(file('cpuset.mems')).toBe('0\n');
    expect(moves).toEqual([]);
  });
});

describe('numa_rebalance page moves obey the writer scope', () => {
  let child: ChildProcess;
  beforeEach(() => {
    child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const st = readTaskStat(child.pid!)!;
    // The fake procfs describes the real child, with its real start time, so the scope check can find it.
    setup(child.pid!, { 0: 100, 1: 900 }, st.starttime);
  });
  afterEach(async () => {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  });

  it('moves the pages of a process in scope (here by pid) from every node to the destination', () => {
    const a = action();
    a.apply(a.plan(target, { memNode: 1 }), writer({ pids: [child.pid!] }));
    expect(moves).toEqual([[child.pid!, [0, 1], [1]]]);
  });

  it('refuses a process outside every target, and moves nothing in dry-run', () => {
    const a = action();
    expect(() => a.apply(a.plan(target, { memNode: 1 }), writer())).toThrow(expect.objectContaining({ code: 'OUT_OF_SCOPE' }));
    a.apply(a.plan(target, { memNode: 1 }), writer({ dryRun: true, pids: [child.pid!] }));
    expect(moves).toEqual([]);
  });
});
