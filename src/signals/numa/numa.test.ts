import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target, TargetSignals } from '../../core/types.js';
import { createFakeNuma, type FakeNuma } from './fake-numa.js';
import { NumaSignal, kernelNumaBalancing, nodeMemFreeKb, parseNumaMaps, readTopology, sampleNuma, summarizeNuma } from './numa.js';

describe('numa_maps', () => {
  it('sums N<node>= pages per node and weighs them by the mapping page size', () => {
    const text =
      '55d1c0a00000 default file=/usr/bin/x mapped=3 mapmax=2 N0=3 kernelpagesize_kB=4\n' +
      '7f2b40000000 interleave:0-1 anon=300 dirty=300 N0=100 N1=200 kernelpagesize_kB=4\n' +
      '7f2c00000000 default file=/anon_hugepage\\040(deleted) huge anon=2 dirty=2 N1=2 kernelpagesize_kB=2048\n' +
      '7ffd0e5f3000 default stack anon=1 dirty=1 N0=1 kernelpagesize_kB=4\n' +
      '7ffd0e7e0000 default\n';
    const u = parseNumaMaps(text);
    expect(Object.fromEntries(u.pages)).toEqual({ 0: 104, 1: 202 });
    expect(Object.fromEntries(u.kb)).toEqual({ 0: 416, 1: 800 + 4096 });
    // Accumulates across processes.
    parseNumaMaps('7f00 default anon=1 N1=1 kernelpagesize_kB=4\n', u);
    expect(u.pages.get(1)).toBe(203);
  });
});

describe('topology from a fake two-node sysfs', () => {
  let fake: FakeNuma;
  beforeEach(() => {
    fake = createFakeNuma([{ cpus: '0-1', memFreeKb: 1000 }, { cpus: '2-3', memFreeKb: 2_500_000 }]);
  });
  afterEach(() => fake.remove());

  it('maps every CPU to its node and reads node free memory', () => {
    const t = readTopology({ sysRoot: fake.sysRoot });
    expect(t.nodes).toEqual([
      { id: 0, cpus: [0, 1] },
      { id: 1, cpus: [2, 3] },
    ]);
    expect(t.nodeOfCpu.get(3)).toBe(1);
    expect(nodeMemFreeKb(1, { sysRoot: fake.sysRoot })).toBe(2_500_000);
    expect(nodeMemFreeKb(7, { sysRoot: fake.sysRoot })).toBeUndefined();
    // The fake's files have the kernel's names and formats.
    expect(fs.readFileSync(path.join(fake.sysRoot, 'devices/system/node/node1/cpumap'), 'utf8')).toBe('0000000c\n');
    expect(fs.readFileSync(path.join(fake.sysRoot, 'devices/system/node/has_memory'), 'utf8')).toBe('0-1\n');
  });

  it('a kernel without node directories is one node holding every online CPU', () => {
    fs.rmSync(path.join(fake.sysRoot, 'devices/system/node'), { recursive: true });
    expect(readTopology({ sysRoot: fake.sysRoot }).nodes).toEqual([{ id: 0, cpus: [0, 1, 2, 3] }]);
    expect(readTopology({ sysRoot: path.join(fake.root, 'nowhere') }).nodes).toEqual([{ id: 0, cpus: [] }]);
  });
});

describe('summarizeNuma', () => {
  const usage = (kb: Record<number, number>) => ({
    pages: new Map(Object.entries(kb).map(([k, v]) => [Number(k), v / 4])),
    kb: new Map(Object.entries(kb).map(([k, v]) => [Number(k), v])),
  });

  it('weighs each node by the CPU time its threads used', () => {
    const s = summarizeNuma(2, usage({ 0: 900, 1: 100 }), new Map([[0, 1], [1, 3]]), new Map([[0, 10], [1, 30]]));
    expect(s).toMatchObject({ memNode: 0, memShare: 0.9, cpuNode: 1, totalKb: 1000, threads: { '0': 1, '1': 3 } });
    // 1/4 of the time on node 0 (10% remote), 3/4 on node 1 (90% remote).
    expect(s.remoteFraction).toBeCloseTo(0.25 * 0.1 + 0.75 * 0.9, 9);
  });

  it('counts threads equally when none ran, and reads 0 without memory or threads', () => {
    const s = summarizeNuma(2, usage({ 0: 1000 }), new Map([[1, 2]]), new Map([[1, 0]]));
    expect(s.remoteFraction).toBe(1);
    expect(summarizeNuma(2, usage({}), new Map(), new Map())).toMatchObject({ memNode: -1, cpuNode: -1, remoteFraction: 0, memShare: 0 });
  });
});

describe('NumaSignal on a fake two-node host', () => {
  let fake: FakeNuma;
  const target: Target = { name: 'db', role: 'protect', slot: 0, scope: { kind: 'pids', pids: [200] } };

  beforeEach(() => {
    fake = createFakeNuma([{ cpus: '0-1' }, { cpus: '2-3' }]);
    fake.addProcess({
      pid: 200,
      threads: [
        { tid: 200, cpu: 2, cpuTicks: 0 },
        { tid: 201, cpu: 3, cpuTicks: 0 },
      ],
      pages: { 0: 9000, 1: 1000 },
    });
  });
  afterEach(() => fake.remove());

  const collect = (sig: NumaSignal): Partial<TargetSignals> => {
    const out: Record<string, TargetSignals> = {};
    sig.collect(Date.now(), out);
    return out.db ?? {};
  };

  it('reports memory far from the threads, samples every everyTicks, and follows a move', () => {
    const sig = new NumaSignal({ everyTicks: 2, procRoot: fake.procRoot, sysRoot: fake.sysRoot });
    sig.start({ log: silentLogger, targets: [target], cgroupVersion: 2 });
    const first = collect(sig).numa;
    expect(first).toMatchObject({ nodes: 2, memNode: 0, cpuNode: 1, memKb: { '0': 36000, '1': 4000 }, pages: { '0': 9000, '1': 1000 } });
    expect((first as { remoteFraction: number }).remoteFraction).toBeCloseTo(0.9, 9);

    // The threads move to node 0 and run there; the next tick still reports the cached sample.
    fake.setThread(200, { tid: 200, cpu: 0, cpuTicks: 50 });
    fake.setThread(200, { tid: 201, cpu: 1, cpuTicks: 50 });
    expect(collect(sig).numa).toEqual(first);
    const third = collect(sig).numa as { remoteFraction: number; cpuNode: number };
    expect(third.cpuNode).toBe(0);
    expect(third.remoteFraction).toBeCloseTo(0.1, 9);
    sig.close();
  });

  it('a cgroup target is read through its processes', () => {
    const cg = fs.mkdtempSync(path.join(fake.root, 'cg-'));
    fs.writeFileSync(path.join(cg, 'cgroup.procs'), '200\n');
    const t: Target = { name: 'db', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: cg, version: 2, id: 1n } };
    const topo = readTopology({ sysRoot: fake.sysRoot });
    expect(sampleNuma(t, topo, { procRoot: fake.procRoot })).toMatchObject({ memNode: 0, cpuNode: 1, totalKb: 40000 });
  });

  it('records kernel.numa_balancing with each sample, says so at start and when it changes', () => {
    const sysctl = path.join(fake.procRoot, 'sys/kernel/numa_balancing');
    expect(kernelNumaBalancing({ procRoot: fake.procRoot })).toBe(0); // no such file: a kernel without it
    fs.mkdirSync(path.dirname(sysctl), { recursive: true });
    fs.writeFileSync(sysctl, '1\n');
    const said: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void said.push((JSON.parse(l) as { msg: string }).msg) });
    const sig = new NumaSignal({ everyTicks: 1, procRoot: fake.procRoot, sysRoot: fake.sysRoot, move: 'memory' });
    sig.start({ log, targets: [target], cgroupVersion: 2 });
    expect(said.filter((m) => m.startsWith('kernel NUMA balancing'))).toEqual([
      'kernel NUMA balancing is on (kernel.numa_balancing=1): the kernel itself moves pages toward the threads that touch them, so numa_rebalance (move: memory) holds back and moves no memory while it runs — set kernel.numa_balancing=0 to let it',
    ]);
    expect(collect(sig).numa).toMatchObject({ kernelBalancing: 1 });
    expect(collect(sig).numa).toMatchObject({ kernelBalancing: 1 });
    fs.writeFileSync(sysctl, '0\n');
    expect(collect(sig).numa).toMatchObject({ kernelBalancing: 0 });
    fs.writeFileSync(sysctl, '2\n');
    expect(collect(sig).numa).toMatchObject({ kernelBalancing: 2 });
    expect(said.filter((m) => m.startsWith('kernel NUMA balancing')).slice(1).map((m) => m.split(':')[0])).toEqual([
      'kernel NUMA balancing turned off (kernel.numa_balancing=0)',
      'kernel NUMA balancing is turned on (kernel.numa_balancing=2)',
    ]);
    sig.close();
  });

  it('reads nothing on a one-node host', () => {
    const one = createFakeNuma([{ cpus: '0-3' }]);
    try {
      const sig = new NumaSignal({ everyTicks: 1, procRoot: fake.procRoot, sysRoot: one.sysRoot });
      sig.start({ log: silentLogger, targets: [target], cgroupVersion: 2 });
      expect(collect(sig).numa).toBeUndefined();
      sig.close();
    } finally {
      one.remove();
    }
  });
});
