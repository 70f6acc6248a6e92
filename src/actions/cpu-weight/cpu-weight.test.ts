import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target } from '../../core/types.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../../cgroup/fake-cgroup2.js';
import { Journal } from '../../journal/journal.js';
import { TunerError } from '../../core/errors.js';
import { kernelKnobIO, type KnobIO } from '../../cgroup/cgroup.js';
import { KnobWriter } from '../knob-writer.js';
import {
  CPU_SHARES,
  CPU_WEIGHT,
  clampWeight,
  cpuWeight,
  createCpuWeightAction,
  sharesToWeight,
  weightToShares,
} from './cpu-weight.js';

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
      { id: `cpu_weight:${dir}/cpu.idle`, path: `${dir}/cpu.idle`, target: 'noisy' },
    ]);
    // A kernel before 5.15 has no cpu.idle: the weight is the only knob.
    expect(cpuWeight.knobs(v1Target()).map((k) => k.path)).toEqual([`${v1}/cpu.shares`]);
  });

  it('reads in weight units on both versions', () => {
    const dir = fake.mkdir('a');
    fs.writeFileSync(path.join(dir, 'cpu.weight'), '250\n');
    expect(cpuWeight.read(v2Target(dir))).toEqual({ weight: 250, idle: 0 });
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
    expect(cpuWeight.read(t)).toEqual({ weight: 40, idle: 0 });
    expect(journal.active()[0]).toMatchObject({ original: '100', lastWritten: '40', action: 'cpu_weight' });
    expect(cpuWeight.revert(t, writer)).toMatchObject([{ outcome: 'restored' }]);
    expect(fs.readFileSync(path.join(dir, 'cpu.weight'), 'utf8')).toBe('100\n');
    expect(cpuWeight.revert(t, writer)).toEqual([]);
  });
});

/**
 * The kernel's coupling of cpu.idle and the weight, over plain files (measured on 6.1, 6.12 and 6.18): idle 1 sets
 * the idle weight (v2 cpu.weight reads `idleWeight`, 0 on 6.1 and 1 on 6.12; v1 cpu.shares 3), a weight written to
 * an idle group is EINVAL, idle 0 resets the weight to the default.
 */
function coupledIO(weightFile: 'cpu.weight' | 'cpu.shares', idleWeight = '1'): KnobIO {
  const sibling = (p: string, f: string): string => path.join(path.dirname(p), f);
  return {
    read: kernelKnobIO.read,
    write(p, value) {
      const name = path.basename(p);
      if (name === weightFile && fs.readFileSync(sibling(p, 'cpu.idle'), 'utf8').trim() === '1') {
        throw new TunerError('ACTION_FAILED', `write ${p}: the kernel rejected the value (EINVAL)`);
      }
      kernelKnobIO.write(p, value);
      if (name !== 'cpu.idle') return;
      const dflt = weightFile === 'cpu.weight' ? '100' : '1024';
      fs.writeFileSync(sibling(p, weightFile), `${value.trim() === '1' ? (weightFile === 'cpu.weight' ? idleWeight : '3') : dflt}\n`);
    },
  };
}

describe('cpu_weight below the floor: cpu.idle', () => {
  let fake: FakeCgroup2;
  let stateDir: string;
  let journal: Journal;
  let dir: string;
  let target: Target;
  const io = coupledIO('cpu.weight');
  const action = createCpuWeightAction(io);
  const file = (f: string): string => fs.readFileSync(path.join(dir, f), 'utf8').trim();

  beforeEach(() => {
    fake = createFakeCgroup2();
    dir = fake.mkdir('batch.slice/b');
    target = { name: 'batch', role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: dir, version: 2, id: 1n } };
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-idle-test-'));
    journal = Journal.open(stateDir, silentLogger);
    // The operator's own weight, which must come back after cpu.idle is put back to 0.
    fs.writeFileSync(path.join(dir, 'cpu.weight'), '50\n');
  });
  afterEach(() => {
    journal.close();
    fake.remove();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });
  const writer = (dryRun = false) => new KnobWriter({ journal, log: silentLogger, dryRun, scope: [dir], layout: fake.layout, io });

  it('reads an idle group as the smallest weight, even where cpu.weight shows 0 (6.1)', () => {
    fs.writeFileSync(path.join(dir, 'cpu.idle'), '1\n');
    fs.writeFileSync(path.join(dir, 'cpu.weight'), '0\n');
    expect(action.read(target)).toEqual({ weight: 1, idle: 1 });
  });

  it('plans idle alone, idle 0 with a weight, and refuses what the kernel would', () => {
    const idleOn = action.plan(target, { idle: 1 });
    expect(idleOn.desired).toEqual({ idle: 1 });
    expect(idleOn.changes).toEqual([
      {
        knob: { id: `cpu_weight:${dir}/cpu.idle`, path: `${dir}/cpu.idle`, target: 'batch' },
        from: '0',
        to: '1',
        rewrites: [{ id: `cpu_weight:${dir}/cpu.weight`, path: `${dir}/cpu.weight`, target: 'batch' }],
      },
    ]);
    expect(() => action.plan(target, { idle: 2 })).toThrow(/desired.idle must be 0 or 1/);
    expect(action.plan(target, { idle: 1, weight: 30 }).notes).toEqual(['weight 30 not written: an idle group has the kernel\'s idle weight']);

    fs.writeFileSync(path.join(dir, 'cpu.idle'), '1\n');
    expect(() => action.plan(target, { weight: 30 })).toThrow(/cpu.idle is 1, and the kernel refuses a weight for an idle group/);
    const back = action.plan(target, { idle: 0, weight: 30 });
    expect(back.changes.map((c) => [path.basename(c.knob.path), c.from.trim(), c.to])).toEqual([
      ['cpu.idle', '1', '0'],
      ['cpu.weight', '100', '30'],
    ]);
    // idle 0 resets the weight to 100: asking for 100 needs no second write.
    expect(action.plan(target, { idle: 0, weight: 100 }).changes).toHaveLength(1);
  });

  it('refuses idle where the kernel has no cpu.idle, naming the version that has it', () => {
    fs.rmSync(path.join(dir, 'cpu.idle'));
    expect(action.knobs(target)).toHaveLength(1);
    expect(action.read(target)).toEqual({ weight: 50 });
    expect(() => action.plan(target, { idle: 1 })).toThrow(/has no cpu.idle — the kernel has it since Linux 5.15/);
  });

  it('journals the weight before idle rewrites it, and revert brings back both originals', () => {
    const w = writer();
    expect(action.apply(action.plan(target, { weight: 25 }), w).changed).toBe(true);
    expect(action.apply(action.plan(target, { idle: 1 }), w).changed).toBe(true);
    expect([file('cpu.idle'), file('cpu.weight')]).toEqual(['1', '1']);
    // The weight's original is the operator's 50, and the kernel's 1 is recorded as ours, not another writer's.
    expect(journal.get(`cpu_weight:${dir}/cpu.weight`)).toMatchObject({ original: '50', lastWritten: '1', state: 'active' });
    expect(journal.get(`cpu_weight:${dir}/cpu.idle`)).toMatchObject({ original: '0', lastWritten: '1', state: 'active' });
    const items = action.revert(target, w);
    expect(items.map((i) => [path.basename(i.path), i.outcome])).toEqual([
      ['cpu.idle', 'restored'],
      ['cpu.weight', 'restored'],
    ]);
    expect([file('cpu.idle'), file('cpu.weight')]).toEqual(['0', '50']);
    expect(journal.active()).toEqual([]);
  });

  it('a restore of everything (a start after a crash) puts idle back first, then the weight', () => {
    // idle as the first step: the weight was never written, only held.
    action.apply(action.plan(target, { idle: 1 }), writer());
    expect(journal.active().map((e) => path.basename(e.path))).toEqual(['cpu.weight', 'cpu.idle']);
    const report = writer().restoreAll();
    expect(report.restored.map((i) => path.basename(i.path))).toEqual(['cpu.idle', 'cpu.weight']);
    expect(report.overridden).toEqual([]);
    expect([file('cpu.idle'), file('cpu.weight')]).toEqual(['0', '50']);
  });

  it('the closed loop\'s way back, {idle: 0, weight}, lands on the weight it asks for', () => {
    const w = writer();
    action.apply(action.plan(target, { idle: 1 }), w);
    action.apply(action.plan(target, { idle: 0, weight: 50 }), w);
    expect([file('cpu.idle'), file('cpu.weight')]).toEqual(['0', '50']);
    expect(action.revert(target, w).every((i) => i.outcome === 'restored')).toBe(true);
    expect([file('cpu.idle'), file('cpu.weight')]).toEqual(['0', '50']);
  });

  it('does not let the kernel overwrite a weight another writer set after ours', () => {
    const w = writer();
    action.apply(action.plan(target, { weight: 25 }), w);
    fs.writeFileSync(path.join(dir, 'cpu.weight'), '70\n');
    expect(() => action.apply(action.plan(target, { idle: 1 }), w)).toThrow(/another writer set to 70 — it is theirs/);
    expect([file('cpu.idle'), file('cpu.weight')]).toEqual(['0', '70']);
    expect(journal.get(`cpu_weight:${dir}/cpu.idle`)).toBeUndefined();
  });

  it('writes and journals nothing in dry-run', () => {
    const res = action.apply(action.plan(target, { idle: 1 }), writer(true));
    expect(res.results.map((r) => r.status)).toEqual(['dry-run']);
    expect([file('cpu.idle'), file('cpu.weight')]).toEqual(['0', '50']);
    expect(journal.all()).toEqual([]);
  });

  it('on v1 the same: cpu.shares 3 while idle, the operator\'s shares back after', () => {
    const v1 = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-v1-idle-'));
    try {
      fs.writeFileSync(path.join(v1, 'cpu.shares'), '512\n');
      fs.writeFileSync(path.join(v1, 'cpu.idle'), '0\n');
      const t: Target = { name: 'batch', role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: v1, version: 1, id: 2n } };
      const io1 = coupledIO('cpu.shares');
      const a = createCpuWeightAction(io1);
      const w = new KnobWriter({ journal, log: silentLogger, scope: [v1], layout: fake.layout, io: io1 });
      a.apply(a.plan(t, { idle: 1 }), w);
      expect(a.read(t)).toEqual({ weight: 1, idle: 1 });
      expect(fs.readFileSync(path.join(v1, 'cpu.shares'), 'utf8')).toBe('3\n');
      a.revert(t, w);
      expect(a.read(t)).toEqual({ weight: 50, idle: 0 });
    } finally {
      fs.rmSync(v1, { recursive: true, force: true });
    }
  });
});
