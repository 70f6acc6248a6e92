import diagnostics_channel from 'node:diagnostics_channel';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target } from '../../core/types.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../../cgroup/fake-cgroup2.js';
import { Journal } from '../../journal/journal.js';
import { KnobWriter } from '../knob-writer.js';
import {
  MIN_QUOTA_US,
  clearConcurrencyHints,
  concurrencyHints,
  createPressureBackoffAction,
  hintChannel,
  suggestedConcurrency,
  type HintEvent,
} from './pressure-backoff.js';

let fake: FakeCgroup2;
let stateDir: string;
let journal: Journal;
let v1Dir: string;
const events: HintEvent[] = [];
const onHint = (m: unknown): void => void events.push(m as HintEvent);

beforeEach(() => {
  fake = createFakeCgroup2();
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-pb-test-'));
  journal = Journal.open(stateDir, silentLogger);
  // A faithful fake of a v1 cpu cgroup's bandwidth files: the kernel prints -1 for no limit and the period in µs.
  v1Dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-fake-cpu-v1-'));
  fs.writeFileSync(path.join(v1Dir, 'cpu.cfs_quota_us'), '-1\n');
  fs.writeFileSync(path.join(v1Dir, 'cpu.cfs_period_us'), '100000\n');
  events.length = 0;
  diagnostics_channel.subscribe(hintChannel.name, onHint);
});
afterEach(() => {
  diagnostics_channel.unsubscribe(hintChannel.name, onHint);
  clearConcurrencyHints(stateDir);
  journal.close();
  fake.remove();
  fs.rmSync(stateDir, { recursive: true, force: true });
  fs.rmSync(v1Dir, { recursive: true, force: true });
});

const v2Target = (name = 'batch'): Target => ({
  name,
  role: 'noisy',
  slot: 0,
  scope: { kind: 'cgroup', path: fake.mkdir(`app.slice/${name}`), version: 2, id: 0n },
});
const v1Target = (): Target => ({ name: 'batch', role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: v1Dir, version: 1, id: 0n } });
const writer = (scope: string[], dryRun = false) => new KnobWriter({ journal, log: silentLogger, scope, dryRun, layout: fake.layout });
const dirOf = (t: Target): string => (t.scope.kind === 'cgroup' ? t.scope.path : '');
const read = (p: string): string => fs.readFileSync(p, 'utf8');
const hintFile = (target: string): string => path.join(stateDir, 'hints', `${target}.json`);

describe('pressure_backoff on cgroup v2 (cpu.max)', () => {
  const action = createPressureBackoffAction({ hostCpus: 4, now: () => 1_700_000_000_000 });

  it('reads an unlimited quota as every host CPU, caps it, and puts "max PERIOD" back', () => {
    const t = v2Target();
    const w = writer([dirOf(t)]);
    expect(action.read(t)).toEqual({ quotaCpus: 4, unlimited: 1 });
    const plan = action.plan(t, { quotaCpus: 0.5 });
    expect(plan.changes).toEqual([
      { knob: { id: `pressure_backoff:${dirOf(t)}/cpu.max`, path: `${dirOf(t)}/cpu.max`, target: 'batch' }, from: 'max 100000', to: '50000 100000' },
    ]);
    expect(action.apply(plan, w).changed).toBe(true);
    expect(read(path.join(dirOf(t), 'cpu.max'))).toBe('50000 100000\n');
    expect(action.read(t)).toEqual({ quotaCpus: 0.5, unlimited: 0 });
    expect(action.revert(t, w)).toMatchObject([{ outcome: 'restored', wrote: true }]);
    expect(read(path.join(dirOf(t), 'cpu.max'))).toBe('max 100000\n');
  });

  it('keeps the period and converts CPUs with it', () => {
    const t = v2Target();
    fs.writeFileSync(path.join(dirOf(t), 'cpu.max'), 'max 50000\n');
    expect(action.plan(t, { quotaCpus: 1.5 }).changes[0]!.to).toBe('75000 50000');
    fs.writeFileSync(path.join(dirOf(t), 'cpu.max'), '20000 50000\n');
    expect(action.read(t)).toEqual({ quotaCpus: 0.4, unlimited: 0 });
    expect(action.plan(t, { unlimited: 1 }).changes[0]!.to).toBe('max 50000');
  });

  it("raises a quota below the kernel's 1 ms minimum, and says so", () => {
    const plan = action.plan(v2Target(), { quotaCpus: 0.001 });
    expect(plan.changes[0]!.to).toBe(`${MIN_QUOTA_US} 100000`);
    expect(plan.desired).toEqual({ quotaCpus: 0.01, unlimited: 0 });
    expect(plan.notes[0]).toMatch(/below the kernel's minimum of 1000 µs/);
  });

  it('plans nothing when the knob already holds the quota', () => {
    const t = v2Target();
    fs.writeFileSync(path.join(dirOf(t), 'cpu.max'), '50000 100000\n');
    expect(action.plan(t, { quotaCpus: 0.5 }).changes).toEqual([]);
  });

  it('refuses pid targets, bad desired values and unreadable knobs with a reason', () => {
    const pids: Target = { name: 'p', role: 'noisy', slot: 0, scope: { kind: 'pids', pids: [1] } };
    expect(() => action.knobs(pids)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => action.plan(v2Target('a'), { quotaCpus: 0 })).toThrow(/positive number of CPUs/);
    expect(() => action.plan(v2Target('b'), { quotaCpus: Number.NaN })).toThrow(/positive number of CPUs/);
    const t = v2Target('c');
    fs.writeFileSync(path.join(dirOf(t), 'cpu.max'), 'garbage\n');
    expect(() => action.read(t)).toThrow(/expected "QUOTA PERIOD" or "max PERIOD"/);
  });

  it('decodes a journaled original into its units', () => {
    const t = v2Target();
    expect(action.decode(t, 'max 100000')).toEqual({ quotaCpus: 4, unlimited: 1 });
    expect(action.decode(t, '250000 100000')).toEqual({ quotaCpus: 2.5, unlimited: 0 });
  });
});

describe('pressure_backoff on cgroup v1 (cpu.cfs_quota_us)', () => {
  const action = createPressureBackoffAction({ hostCpus: 2 });

  it('writes the quota in µs, reads the period from cpu.cfs_period_us, and restores -1', () => {
    const t = v1Target();
    const w = writer([v1Dir]);
    expect(action.knobs(t)).toEqual([{ id: `pressure_backoff:${v1Dir}/cpu.cfs_quota_us`, path: `${v1Dir}/cpu.cfs_quota_us`, target: 'batch' }]);
    expect(action.read(t)).toEqual({ quotaCpus: 2, unlimited: 1 });
    action.apply(action.plan(t, { quotaCpus: 0.75 }), w);
    expect(read(path.join(v1Dir, 'cpu.cfs_quota_us'))).toBe('75000\n');
    expect(read(path.join(v1Dir, 'cpu.cfs_period_us'))).toBe('100000\n');
    expect(journal.active()).toMatchObject([{ original: '-1', lastWritten: '75000' }]);
    fs.writeFileSync(path.join(v1Dir, 'cpu.cfs_period_us'), '50000\n');
    expect(action.read(t)).toEqual({ quotaCpus: 1.5, unlimited: 0 });
    expect(action.plan(t, { quotaCpus: 0.5 }).changes[0]!.to).toBe('25000');
    expect(action.plan(t, { unlimited: 1 }).changes[0]!.to).toBe('-1');
    action.revert(t, w);
    expect(read(path.join(v1Dir, 'cpu.cfs_quota_us'))).toBe('-1\n');
  });
});

describe('concurrency hints', () => {
  const action = createPressureBackoffAction({ hostCpus: 4, now: () => 1_700_000_000_000 });

  it.each<[number, number]>([
    [0.2, 1],
    [0.99, 1],
    [1, 1],
    [1.5, 1],
    [2.9999999999, 3],
    [3.2, 3],
  ])('suggestedConcurrency(%f) = %i', (q, n) => {
    expect(suggestedConcurrency(q)).toBe(n);
  });

  it('publishes a hint file, an API view and an event while the quota holds, and clears all three on revert', () => {
    const t = v2Target();
    const w = writer([dirOf(t)]);
    action.apply(action.plan(t, { quotaCpus: 2.5, cause: 'host cpu PSI some avg10 42% > 20% for 3 ticks' }), w);
    const hint = {
      target: 'batch',
      suggestedConcurrency: 2,
      quotaCpus: 2.5,
      reason: 'host cpu PSI some avg10 42% > 20% for 3 ticks; CPU quota 2.50 CPUs',
      time: 1_700_000_000_000,
    };
    expect(JSON.parse(read(hintFile('batch')))).toEqual(hint);
    expect(concurrencyHints()).toEqual({ batch: hint });
    expect(events).toEqual([{ kind: 'set', target: 'batch', hint, time: hint.time }]);
    // Written by rename: no temporary file is ever left beside it.
    expect(fs.readdirSync(path.join(stateDir, 'hints'))).toEqual(['batch.json']);

    action.revert(t, w);
    expect(fs.existsSync(hintFile('batch'))).toBe(false);
    expect(concurrencyHints()).toEqual({});
    expect(events.at(-1)).toMatchObject({ kind: 'cleared', target: 'batch' });
  });

  it('clears the hint when the quota is restored behind the action, as a stop does', () => {
    const t = v2Target();
    const w = writer([dirOf(t)]);
    action.apply(action.plan(t, { quotaCpus: 1 }), w);
    expect(fs.existsSync(hintFile('batch'))).toBe(true);
    w.restoreAll();
    expect(fs.existsSync(hintFile('batch'))).toBe(false);
    expect(concurrencyHints()).toEqual({});
  });

  it('drops a hint whose quota another writer replaced', () => {
    const t = v2Target();
    action.apply(action.plan(t, { quotaCpus: 1 }), writer([dirOf(t)]));
    fs.writeFileSync(path.join(dirOf(t), 'cpu.max'), '300000 100000\n');
    expect(concurrencyHints()).toEqual({});
    expect(fs.existsSync(hintFile('batch'))).toBe(false);
  });

  it('publishes nothing in dry-run, and nothing for an unlimited quota', () => {
    const t = v2Target();
    action.apply(action.plan(t, { quotaCpus: 1 }), writer([dirOf(t)], true));
    expect(concurrencyHints()).toEqual({});
    expect(fs.existsSync(path.join(stateDir, 'hints'))).toBe(false);
    action.apply(action.plan(t, { unlimited: 1 }), writer([dirOf(t)]));
    expect(concurrencyHints()).toEqual({});
    expect(events).toEqual([]);
  });

  it('clearConcurrencyHints removes files a previous run left behind', () => {
    fs.mkdirSync(path.join(stateDir, 'hints'));
    fs.writeFileSync(hintFile('old'), '{}\n');
    clearConcurrencyHints(stateDir);
    expect(fs.readdirSync(path.join(stateDir, 'hints'))).toEqual([]);
  });
});
