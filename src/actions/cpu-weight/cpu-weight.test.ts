import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target } from '../../core/types.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../../cgroup/fake-cgroup2.js';
import { Journal } from '../../journal/journal.js';
import { KnobWriter } from '../knob-writer.js';
import { CPU_SHARES, CPU_WEIGHT, clampWeight, cpuWeight, sharesToWeight, weightToShares } from './cpu-weight.js';

describe('weight ↔ shares mapping', () => {
  it('matches the kernel at the defaults and the ends of both ranges', () => {
    expect(weightToShares(100)).toBe(1024);
    expect(sharesToWeight(1024)).toBe(100);
    expect(weightToShares(1)).toBe(10);
    expect(weightToShares(10_000)).toBe(102_400);
    expect(weightToShares(50)).toBe(512);
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(262_144)).toBe(10_000);
    expect(sharesToWeight(5)).toBe(1); // round(0.49) = 0, clamped up to the minimum weight
    expect(sharesToWeight(1000)).toBe(98);
  });

  it('every weight survives weight → shares → weight exactly', () => {
    for (let w = CPU_WEIGHT.min; w <= CPU_WEIGHT.max; w++) expect(sharesToWeight(weightToShares(w))).toBe(w);
  });

  it('shares → weight → shares comes back to the nearest representable shares value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 5, max: 102_400 }), (s) => {
        // One weight step is 10.24 shares: at most half a step off, plus rounding.
        expect(Math.abs(weightToShares(sharesToWeight(s)) - s)).toBeLessThanOrEqual(5);
      }),
    );
    // Below weight 1 everything maps to the smallest weight.
    for (const s of [2, 3, 4]) expect(weightToShares(sharesToWeight(s))).toBe(10);
    // Above weight 10000 there is no weight to map to.
    expect(weightToShares(sharesToWeight(CPU_SHARES.max))).toBe(102_400);
  });

  it('always lands inside the kernel ranges, whatever comes in', () => {
    fc.assert(
      fc.property(fc.double({ min: -1e9, max: 1e9, noNaN: true }), (x) => {
        const s = weightToShares(x);
        const w = sharesToWeight(x);
        expect(Number.isInteger(s) && s >= CPU_SHARES.min && s <= CPU_SHARES.max).toBe(true);
        expect(Number.isInteger(w) && w >= CPU_WEIGHT.min && w <= CPU_WEIGHT.max).toBe(true);
        expect(clampWeight(x)).toBeGreaterThanOrEqual(1);
        expect(clampWeight(x)).toBeLessThanOrEqual(10_000);
      }),
    );
  });

  it('is monotonic', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 10_000 }), (a, b) => {
        if (a <= b) expect(weightToShares(a)).toBeLessThanOrEqual(weightToShares(b));
      }),
    );
  });
});

describe('cpu_weight action', () => {
  let fake: FakeCgroup2;
  let v1: string;
  let stateDir: string;
  let journal: Journal;

  beforeEach(() => {
    fake = createFakeCgroup2();
    // A v1 cgroup's cpu.shares, as a plain file: reads and plans only need the file interface.
    v1 = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-v1-'));
    fs.writeFileSync(path.join(v1, 'cpu.shares'), '1024\n');
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-cpuw-test-'));
    journal = Journal.open(stateDir, silentLogger);
  });
  afterEach(() => {
    journal.close();
    fake.remove();
    fs.rmSync(v1, { recursive: true, force: true });
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  const v2Target = (dir: string): Target => ({ name: 'noisy', role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: dir, version: 2, id: 1n } });
  const v1Target = (): Target => ({ name: 'noisy', role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: v1, version: 1, id: 1n } });
  const pidTarget: Target = { name: 'web', role: 'protect', slot: 1, scope: { kind: 'pids', pids: [1234] } };

  it('declares cpu.weight on v2 and cpu.shares on v1', () => {
    const dir = fake.mkdir('a');
    expect(cpuWeight.knobs(v2Target(dir))).toEqual([
      { id: `cpu_weight:${dir}/cpu.weight`, path: `${dir}/cpu.weight`, target: 'noisy' },
    ]);
    expect(cpuWeight.knobs(v1Target())[0].path).toBe(`${v1}/cpu.shares`);
  });

  it('reads in weight units on both versions', () => {
    const dir = fake.mkdir('a');
    fs.writeFileSync(path.join(dir, 'cpu.weight'), '250\n');
    expect(cpuWeight.read(v2Target(dir))).toEqual({ weight: 250 });
    fs.writeFileSync(path.join(v1, 'cpu.shares'), '512\n');
    expect(cpuWeight.read(v1Target())).toEqual({ weight: 50 });
    fs.writeFileSync(path.join(v1, 'cpu.shares'), 'garbage\n');
    expect(() => cpuWeight.read(v1Target())).toThrow(/expected an integer/);
  });

  it('plans in knob units, clamping and rounding the request', () => {
    const dir = fake.mkdir('a');
    expect(cpuWeight.plan(v2Target(dir), { weight: 50 })).toMatchObject({
      action: 'cpu_weight',
      target: 'noisy',
      desired: { weight: 50 },
      changes: [{ from: '100', to: '50' }],
      notes: [],
    });
    expect(cpuWeight.plan(v1Target(), { weight: 50 }).changes[0]).toMatchObject({ from: '1024', to: '512' });
    const clamped = cpuWeight.plan(v2Target(dir), { weight: 0.2 });
    expect(clamped.desired).toEqual({ weight: 1 });
    expect(clamped.notes[0]).toMatch(/adjusted to 1/);
    expect(cpuWeight.plan(v1Target(), { weight: 1e6 }).changes[0].to).toBe('102400');
    expect(cpuWeight.plan(v2Target(dir), { weight: 100 }).changes).toEqual([]);
    expect(() => cpuWeight.plan(v2Target(dir), { weight: 'lots' })).toThrow(/desired.weight must be a finite number/);
    expect(() => cpuWeight.plan(v2Target(dir), { weight: Number.NaN })).toThrow(expect.objectContaining({ code: 'ACTION_FAILED' }));
  });

  it('refuses pid-scoped targets with a clear error', () => {
    for (const f of [() => cpuWeight.knobs(pidTarget), () => cpuWeight.read(pidTarget), () => cpuWeight.plan(pidTarget, { weight: 5 })]) {
      expect(f).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
      expect(f).toThrow(/target web: the target is a list of pids, and cpu_weight acts on cgroups — give the target a cgroup in the config/);
    }
  });

  it('applies through the writer and reverts to the original', () => {
    const dir = fake.mkdir('app.slice/a');
    const writer = new KnobWriter({ journal, log: silentLogger, scope: [dir], layout: fake.layout });
    const t = v2Target(dir);
    const res = cpuWeight.apply(cpuWeight.plan(t, { weight: 40 }), writer);
    expect(res).toMatchObject({ action: 'cpu_weight', target: 'noisy', changed: true, overridden: false });
    expect(cpuWeight.read(t)).toEqual({ weight: 40 });
    expect(journal.active()[0]).toMatchObject({ original: '100', lastWritten: '40', action: 'cpu_weight' });
    expect(cpuWeight.revert(t, writer)).toMatchObject([{ outcome: 'restored' }]);
    expect(fs.readFileSync(path.join(dir, 'cpu.weight'), 'utf8')).toBe('100\n');
    expect(cpuWeight.revert(t, writer)).toEqual([]);
  });
});
