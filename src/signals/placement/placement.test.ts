import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target } from '../../core/types.js';
import type { CgroupLayout } from '../../cgroup/layout.js';
import { createFakeNuma, type FakeNuma } from '../numa/fake-numa.js';
import { formatCpuList, fromMask, parseCpuList, sameCpuList, toMask } from './cpulist.js';
import { onCpuCountsAll, PlacementSignal, ranInWindow, samplePlacement, summarize } from './placement.js';
import { busyFractions, parseProcStat, parseTaskStat } from './procfs.js';

describe('cpu lists', () => {
  it('parses the kernel list format and prints it back the kernel way', () => {
    expect(parseCpuList('0-3,8,10-11\n')).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList('')).toEqual([]);
    expect(parseCpuList('\n')).toEqual([]);
    expect(parseCpuList('0-6:2')).toEqual([0, 2, 4, 6]);
    expect(parseCpuList('3,1,1')).toEqual([1, 3]);
    expect(formatCpuList([3, 0, 1, 2, 8, 10, 11])).toBe('0-3,8,10-11');
    expect(formatCpuList([5])).toBe('5');
    expect(formatCpuList([])).toBe('');
    expect(sameCpuList('0,1', '0-1')).toBe(true);
    expect(() => parseCpuList('0-x')).toThrow(/is not a list like 0-3,8/);
    expect(() => parseCpuList('3-1')).toThrow(expect.objectContaining({ code: 'ACTION_FAILED' }));
  });

  it('round-trips any set through text and through a mask', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 1023 }), { maxLength: 64 }), (ids) => {
        const sorted = [...ids].sort((a, b) => a - b);
        expect(parseCpuList(formatCpuList(ids))).toEqual(sorted);
        expect(fromMask(toMask(ids, 128))).toEqual(sorted);
      }),
    );
    expect(() => toMask([1024], 128)).toThrow(/does not fit/);
  });
});

describe('procfs parsing', () => {
  it('reads state, CPU and start time from a stat line whose name holds spaces and parentheses', () => {
    const line =
      '4242 (my (odd) name) R 1 4242 4242 0 -1 4194560 0 0 0 0 150 25 0 0 20 0 3 0 98765 0 0 18446744073709551615 ' +
      '0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n';
    expect(parseTaskStat(4242, line)).toEqual({ tid: 4242, state: 'R', processor: 1, starttime: 98765, cpuTicks: 175 });
    expect(parseTaskStat(1, 'garbage')).toBeUndefined();
  });

  it('turns /proc/stat deltas into busy fractions per CPU', () => {
    const a = parseProcStat('cpu  1 1 1 1\ncpu0 100 0 0 900 0 0 0 0 0 0\ncpu1 0 0 0 1000 0 0 0 0 0 0\nintr 5\n');
    const b = parseProcStat('cpu  1 1 1 1\ncpu0 150 0 50 900 0 0 0 0 0 0\ncpu1 10 0 0 1080 10 0 0 0 0 0\nintr 9\n');
    expect(a.get(0)).toEqual({ busy: 100, total: 1000 });
    const f = busyFractions(a, b);
    expect(f.get(0)).toBeCloseTo(1, 6);
    expect(f.get(1)).toBeCloseTo(0.1, 6);
    // No elapsed time (an offline CPU) reads idle, not NaN.
    expect(busyFractions(a, a).get(0)).toBe(0);
  });
});

describe('summarize', () => {
  const busy = new Map([
    [0, 1],
    [1, 0.05],
    [2, 0.9],
    [3, 0.2],
  ]);

  it('finds the pile-up and the allowed CPUs left idle', () => {
    const s = summarize(5, 3, new Map([[0, 2], [2, 1]]), new Set([0, 1, 2, 3]), busy, 0.5);
    expect(s).toEqual({
      threads: 5,
      runnable: 3,
      cpusUsed: 2,
      pileup: 2,
      pileupCpu: 0,
      allowedCpus: 4,
      idleCpus: 2,
      idle: [1, 3],
      perCpu: { '0': 2, '2': 1 },
    });
  });

  it('ties go to the lowest CPU; a busy or unknown CPU is never idle; nothing runnable means no pile-up', () => {
    expect(summarize(2, 2, new Map([[3, 1], [1, 1]]), new Set([1, 3]), busy, 0.5).pileupCpu).toBe(1);
    expect(summarize(2, 2, new Map([[0, 2]]), new Set([0, 2, 7]), busy, 0.5).idleCpus).toBe(0);
    expect(summarize(4, 0, new Map(), new Set(), busy, 0.5)).toMatchObject({ pileup: 0, pileupCpu: -1, idleCpus: 0 });
  });
});

describe('placement on a fake procfs', () => {
  let fake: FakeNuma;
  // No cpuset controller: every online CPU is allowed.
  const layout: CgroupLayout = { mode: 'v2', controllers: {}, mounts: [] };
  const target: Target = { name: 'db', role: 'protect', slot: 0, scope: { kind: 'pids', pids: [100] } };

  beforeEach(() => {
    fake = createFakeNuma([{ cpus: '0-1' }, { cpus: '2-3' }]);
    fake.addProcess({
      pid: 100,
      threads: [
        { tid: 100, cpu: 0, state: 'S' },
        { tid: 101, cpu: 2, state: 'R' },
        { tid: 102, cpu: 2, state: 'R' },
        { tid: 103, cpu: 3, state: 'R' },
      ],
    });
  });
  afterEach(() => fake.remove());

  it('counts runnable threads per CPU from each thread stat', () => {
    const busy = new Map([[0, 0.1], [1, 0.1], [2, 1], [3, 1]]);
    const s = samplePlacement(target, layout, busy, { idleBelow: 0.5, procRoot: fake.procRoot, sysRoot: fake.sysRoot });
    expect(s).toMatchObject({ threads: 4, runnable: 3, cpusUsed: 2, pileup: 2, pileupCpu: 2, allowedCpus: 4, idle: [0, 1] });
  });

  it('as a signal: fills each target and the host CPUs, and drops threads that exit', () => {
    const sig = new PlacementSignal({ idleBelow: 0.5, procRoot: fake.procRoot, sysRoot: fake.sysRoot, layout });
    sig.start({ log: silentLogger, targets: [target], cgroupVersion: 2 });
    const out: Record<string, { name: string; role: 'protect' | 'noisy'; [k: string]: unknown }> = {};
    sig.collect(Date.now(), out);
    expect(out.db?.placement).toMatchObject({ threads: 4, pileup: 2 });
    expect(sig.hostWindow()).toEqual({ cpus: [0, 0, 0, 0] });
    fake.setThread(100, { tid: 102, cpu: 3, state: 'S' });
    sig.collect(Date.now(), out);
    expect(out.db?.placement).toMatchObject({ runnable: 2, pileup: 1 });
    // Thread 103 exits: gone from the task list and from /proc.
    fs.rmSync(path.join(fake.procRoot, '100/task/103'), { recursive: true });
    fs.rmSync(path.join(fake.procRoot, '103'), { recursive: true });
    sig.collect(Date.now(), out);
    expect(out.db?.placement).toMatchObject({ threads: 3, runnable: 1, pileup: 1 });
    sig.close();
  });
});

describe('which targets placement may leave unsampled', () => {
  const cg = (name: string, p: string, slot = 0): Target => ({ name, role: 'protect', slot, scope: { kind: 'cgroup', path: p, version: 1 } }) as Target;
  const pids = (name: string, list: number[], slot = 0): Target => ({ name, role: 'protect', slot, scope: { kind: 'pids', pids: list } }) as Target;

  it('counts a target alone unless a nested cgroup target or an earlier process target takes some of its tasks', () => {
    const set = onCpuCountsAll([cg('outer', '/cg/a'), cg('inner', '/cg/a/b'), cg('sibling', '/cg/ab'), pids('p1', [10, 11]), pids('p2', [11, 12]), pids('p3', [13])]);
    expect([...set].sort()).toEqual(['inner', 'p1', 'p3', 'sibling']);
  });

  it('treats a target as having run unless the run-queue signal reported it idle', () => {
    expect(ranInWindow({ name: 'x', role: 'protect' })).toBe(true);
    expect(ranInWindow({ name: 'x', role: 'protect', runqlat: { oncpuUs: 0, switchesOut: 0 } } as never)).toBe(false);
    expect(ranInWindow({ name: 'x', role: 'protect', runqlat: { oncpuUs: 5, switchesOut: 0 } } as never)).toBe(true);
    expect(ranInWindow({ name: 'x', role: 'protect', runqlat: { oncpuUs: 0, switchesOut: 1 } } as never)).toBe(true);
  });
});
