/**
 * Cgroup statistics from interface files: the parsers, cgroup v2 against the faithful fake tree (this host has no v2
 * cpu controller), and the v1 lookup of the same relative path in the cpuacct and memory hierarchies against a
 * temporary layout. The real v1 kernel files are covered by cgstat.kernel.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target, TargetSignals } from '../../core/types.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../../cgroup/fake-cgroup2.js';
import type { CgroupLayout } from '../../cgroup/layout.js';
import { CgstatSignal, parseFlatKeyed, parseMemoryLimit, type CgstatWindow } from './cgstat.js';

describe('parsers', () => {
  it('reads flat-keyed files, keeping exact values below 2^53', () => {
    const m = parseFlatKeyed('usage_usec 123456789012\nnr_periods 10\nbad\n\nthrottled_usec 7\n');
    expect([...m]).toEqual([
      ['usage_usec', 123456789012],
      ['nr_periods', 10],
      ['throttled_usec', 7],
    ]);
  });

  it('reads memory limits, with "max" and v1 PAGE_COUNTER_MAX as unlimited', () => {
    expect(parseMemoryLimit('max\n')).toBeUndefined();
    expect(parseMemoryLimit('9223372036854771712\n')).toBeUndefined();
    expect(parseMemoryLimit('536870912\n')).toBe(536870912);
  });
});

describe('cgstat on cgroup v2 (fake tree)', () => {
  let fake: FakeCgroup2 | undefined;
  afterEach(() => {
    fake?.remove();
    fake = undefined;
  });

  it('turns cpu.stat counters into cores and throttling, and reads memory', () => {
    fake = createFakeCgroup2();
    const dir = fake.mkdir('app');
    const stat = (usage: number, periods: number, throttled: number, thrUs: number) =>
      `usage_usec ${usage}\nuser_usec 0\nsystem_usec 0\nnice_usec 0\nnr_periods ${periods}\nnr_throttled ${throttled}\nthrottled_usec ${thrUs}\nnr_bursts 0\nburst_usec 0\n`;
    fs.writeFileSync(path.join(dir, 'cpu.stat'), stat(5_000_000, 100, 10, 1000));
    const targets: Target[] = [{ name: 'app', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: dir, version: 2, id: 1n } }];
    const s = new CgstatSignal({ layout: fake.layout });
    s.start({ log: silentLogger, targets, cgroupVersion: 2 });
    const t0 = Date.now();
    s.collect(t0, {});

    fs.writeFileSync(path.join(dir, 'cpu.stat'), stat(6_500_000, 120, 15, 301_000));
    fs.writeFileSync(path.join(dir, 'memory.current'), '104857600\n');
    fs.writeFileSync(path.join(dir, 'memory.max'), '268435456\n');
    fs.writeFileSync(path.join(dir, 'memory.stat'), fs.readFileSync(path.join(dir, 'memory.stat'), 'utf8').replace('anon 0', 'anon 73400320').replace('file 0', 'file 20971520'));
    const out: Record<string, TargetSignals> = {};
    s.collect(t0 + 2000, out);
    expect(out.app.cgstat).toEqual({
      version: 2,
      cpuUsageUs: 1_500_000,
      cpuCores: 0.75,
      nrPeriods: 20,
      nrThrottled: 5,
      throttledUs: 300_000,
      throttledRatio: 0.25,
      memoryBytes: 104857600,
      memoryLimitBytes: 268435456,
      anonBytes: 73400320,
      fileBytes: 20971520,
    } satisfies CgstatWindow);
    s.close();
  });

  it('a cgroup without the cpu controller has usage but no throttling; an unlimited memory.max has no limit', () => {
    fake = createFakeCgroup2({ controllers: ['memory'] });
    const dir = fake.mkdir('plain');
    const targets: Target[] = [{ name: 'plain', role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: dir, version: 2, id: 1n } }];
    const s = new CgstatSignal({ layout: fake.layout });
    s.start({ log: silentLogger, targets, cgroupVersion: 2 });
    const t0 = Date.now();
    s.collect(t0, {});
    fs.writeFileSync(path.join(dir, 'cpu.stat'), 'usage_usec 250000\nuser_usec 0\nsystem_usec 0\nnice_usec 0\n');
    const out: Record<string, TargetSignals> = {};
    s.collect(t0 + 1000, out);
    const w = out.plain.cgstat as CgstatWindow;
    expect(w).toMatchObject({ cpuUsageUs: 250_000, cpuCores: 0.25, nrPeriods: 0, throttledRatio: 0, memoryBytes: 0 });
    expect(w.memoryLimitBytes).toBeUndefined();
    expect(w.unavailable).toBeUndefined();
  });

  it('a removed cgroup says what it could not read; a recreated one does not produce negative deltas', () => {
    fake = createFakeCgroup2();
    const dir = fake.mkdir('gone');
    fs.writeFileSync(path.join(dir, 'cpu.stat'), 'usage_usec 900000\nnr_periods 50\nnr_throttled 1\nthrottled_usec 9\n');
    const targets: Target[] = [{ name: 'gone', role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: dir, version: 2, id: 1n } }];
    const s = new CgstatSignal({ layout: fake.layout });
    s.start({ log: silentLogger, targets, cgroupVersion: 2 });
    fake.rmdir('gone');
    let out: Record<string, TargetSignals> = {};
    s.collect(Date.now() + 1000, out);
    expect((out.gone.cgstat as CgstatWindow).unavailable?.[0]).toMatch(/^cpu: .*cpu\.stat: no such file/);
    fake.mkdir('gone');
    out = {};
    s.collect(Date.now() + 2000, out);
    expect(out.gone.cgstat).toMatchObject({ cpuUsageUs: 0, nrPeriods: 0, throttledUs: 0 });
    out = {};
    s.collect(Date.now() + 3000, out);
    expect((out.gone.cgstat as CgstatWindow).unavailable).toBeUndefined();
  });

  it('forgets a target that is no longer configured: one that comes back starts a new window', () => {
    fake = createFakeCgroup2();
    const dir = fake.mkdir('match');
    fs.writeFileSync(path.join(dir, 'cpu.stat'), 'usage_usec 1000000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n');
    const targets: Target[] = [{ name: 'churn/match', role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: dir, version: 2, id: 1n } }];
    const s = new CgstatSignal({ layout: fake.layout });
    s.start({ log: silentLogger, targets, cgroupVersion: 2 });
    s.updateTargets([]);
    fs.writeFileSync(path.join(dir, 'cpu.stat'), 'usage_usec 3000000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n');
    s.updateTargets(targets);
    let out: Record<string, TargetSignals> = {};
    s.collect(Date.now() + 1000, out);
    // Had the counters of the first life been kept, this would be 2 s of CPU from a window it never saw.
    expect(out['churn/match']!.cgstat).toMatchObject({ cpuUsageUs: 0 });
    out = {};
    fs.writeFileSync(path.join(dir, 'cpu.stat'), 'usage_usec 3500000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n');
    s.collect(Date.now() + 2000, out);
    expect(out['churn/match']!.cgstat).toMatchObject({ cpuUsageUs: 500_000 });
    s.close();
  });

  it('pid targets have no cgroup statistics', () => {
    const s = new CgstatSignal({ layout: { mode: 'v2', controllers: {}, mounts: [] } });
    s.start({ log: silentLogger, targets: [{ name: 'p', role: 'noisy', slot: 0, scope: { kind: 'pids', pids: [1] } }], cgroupVersion: 2 });
    const out: Record<string, TargetSignals> = {};
    s.collect(Date.now(), out);
    expect(out.p).toBeUndefined();
  });
});

describe('cgstat on cgroup v1 (temporary layout)', () => {
  let root: string | undefined;
  afterEach(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
    root = undefined;
  });

  it('finds the same relative path under cpuacct and memory, and says which twin is missing', () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-cgstat-'));
    const mount = (c: string) => path.join(root!, c);
    const layout: CgroupLayout = {
      mode: 'v1',
      controllers: {
        cpu: { version: 1, mount: mount('cpu'), mountRoot: '/' },
        cpuacct: { version: 1, mount: mount('cpuacct'), mountRoot: '/' },
        memory: { version: 1, mount: mount('memory'), mountRoot: '/' },
      },
      mounts: ['cpu', 'cpuacct', 'memory'].map((c) => ({ version: 1 as const, mount: mount(c), mountRoot: '/', controllers: [c] })),
    };
    for (const c of ['cpu', 'cpuacct', 'memory']) fs.mkdirSync(path.join(mount(c), 'svc', 'web'), { recursive: true });
    fs.mkdirSync(path.join(mount('cpu'), 'svc', 'orphan'));
    const cpu = path.join(mount('cpu'), 'svc', 'web');
    const write = (usageNs: number, periods: number, throttled: number, thrNs: number) => {
      fs.writeFileSync(path.join(mount('cpuacct'), 'svc', 'web', 'cpuacct.usage'), `${usageNs}\n`);
      fs.writeFileSync(path.join(cpu, 'cpu.stat'), `nr_periods ${periods}\nnr_throttled ${throttled}\nthrottled_time ${thrNs}\nnr_bursts 0\nburst_time 0\n`);
    };
    write(1_000_000_000, 10, 0, 0);
    const mem = path.join(mount('memory'), 'svc', 'web');
    fs.writeFileSync(path.join(mem, 'memory.usage_in_bytes'), '52428800\n');
    fs.writeFileSync(path.join(mem, 'memory.limit_in_bytes'), '9223372036854771712\n');
    fs.writeFileSync(path.join(mem, 'memory.stat'), 'cache 100\nrss 200\nrss_huge 0\ntotal_cache 4096\ntotal_rss 40960000\n');
    const targets: Target[] = [
      { name: 'web', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: cpu, version: 1, id: 1n } },
      { name: 'orphan', role: 'noisy', slot: 1, scope: { kind: 'cgroup', path: path.join(mount('cpu'), 'svc', 'orphan'), version: 1, id: 2n } },
    ];
    const s = new CgstatSignal({ layout });
    s.start({ log: silentLogger, targets, cgroupVersion: 1 });
    const t0 = Date.now();
    s.collect(t0, {});
    write(1_400_000_000, 20, 8, 640_000_000);
    const out: Record<string, TargetSignals> = {};
    s.collect(t0 + 1000, out);
    expect(out.web.cgstat).toEqual({
      version: 1,
      cpuUsageUs: 400_000,
      cpuCores: 0.4,
      nrPeriods: 10,
      nrThrottled: 8,
      throttledUs: 640_000,
      throttledRatio: 0.8,
      memoryBytes: 52428800,
      anonBytes: 40960000,
      fileBytes: 4096,
    } satisfies CgstatWindow);
    const orphan = out.orphan.cgstat as CgstatWindow;
    expect(orphan.unavailable).toEqual([
      expect.stringMatching(/^cpuacct: the target has no cgroup in the cpuacct hierarchy \(.*svc\/orphan does not exist\) — fix: /),
      expect.stringMatching(/^memory: the target has no cgroup in the memory hierarchy \(.*svc\/orphan does not exist\) — fix: /),
      expect.stringMatching(/^cpu: .*svc\/orphan\/cpu\.stat: no such file/),
    ]);
    s.close();
  });
});
