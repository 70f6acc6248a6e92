/**
 * One suite every registered action must pass, against the fake cgroup v2 tree: the original is journaled before
 * the first write, revert restores the files byte for byte, out-of-scope targets are refused, dry-run writes nothing,
 * and a knob another writer took is left alone.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import type { Target } from '../core/types.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../cgroup/fake-cgroup2.js';
import { Journal } from '../journal/journal.js';
import type { Action, Desired } from './action.js';
import { ACTIONS } from './index.js';
import { createIoPrefetchAction } from './io-prefetch/io-prefetch.js';
import { KnobWriter } from './knob-writer.js';
import type { BlockDevice } from '../block/devices.js';

/** A desired state that changes something from the kernel defaults, per action. Every action needs one. */
const CHANGING: Record<string, Desired> = {
  cpu_weight: { weight: 37 },
  cpuset_spread: { cpuset: 1 },
  numa_rebalance: { cpusNode: 0 },
  pressure_backoff: { quotaCpus: 0.5 },
  io_prefetch: { readAheadKb: 1024, major: 7, minor: 0 },
};

/**
 * An action whose knobs lie outside the cgroup tree runs here as an instance bound to a faithful fake of those
 * files, made beside the fake cgroup tree; the suite checks those roots as it checks the tree.
 */
interface OutsideFixture {
  action: Action;
  roots: string[];
  /** The devices the writer is configured with: every device knob the fixture has. */
  devices?: BlockDevice[];
  remove(): void;
}

const OUTSIDE: Record<string, (target: Target) => OutsideFixture> = {
  // A fake sysfs with one loop device (7:0) that only `target` has open.
  io_prefetch: (target) => {
    const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-fake-sysfs-')));
    const disk = path.join(root, 'devices/virtual/block/loop0');
    fs.mkdirSync(path.join(disk, 'queue'), { recursive: true });
    fs.writeFileSync(path.join(disk, 'dev'), '7:0\n');
    fs.writeFileSync(path.join(disk, 'queue/read_ahead_kb'), '128\n');
    fs.mkdirSync(path.join(root, 'dev/block'), { recursive: true });
    fs.symlinkSync(disk, path.join(root, 'dev/block/7:0'));
    const action = createIoPrefetchAction({
      sysDevBlock: path.join(root, 'dev/block'),
      evidence: (t) => ({ devices: t.name === target.name ? ['7:0'] : [], streams: [] }),
    });
    return {
      action,
      roots: [root],
      devices: [{ name: 'loop0', dev: '7:0', sysfs: disk }],
      remove: () => fs.rmSync(root, { recursive: true, force: true }),
    };
  },
};

function snapshot(...roots: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isSymbolicLink()) out.set(p, `-> ${fs.readlinkSync(p)}`);
      else out.set(p, createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
    }
  };
  for (const root of roots) walk(root);
  return out;
}

describe.each(ACTIONS.map((a) => [a.name, a] as const))('action %s', (name, registered) => {
  let action: Action;
  let outsideFixture: OutsideFixture | undefined;
  let roots: string[];
  let fake: FakeCgroup2;
  let stateDir: string;
  let journal: Journal;
  let target: Target;
  let outside: Target;

  beforeEach(() => {
    fake = createFakeCgroup2();
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-conformance-'));
    journal = Journal.open(stateDir, silentLogger);
    const mk = (rel: string, n: string): Target => ({
      name: n,
      role: 'noisy',
      slot: 0,
      scope: { kind: 'cgroup', path: fake.mkdir(rel), version: 2, id: 0n },
    });
    target = mk('app.slice/noisy', 'noisy');
    outside = mk('other.slice/x', 'x');
    outsideFixture = OUTSIDE[name]?.(target);
    action = outsideFixture?.action ?? registered;
    roots = [fake.root, ...(outsideFixture?.roots ?? [])];
  });
  afterEach(() => {
    journal.close();
    fake.remove();
    outsideFixture?.remove();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  const writer = (dryRun = false) =>
    new KnobWriter({
      journal,
      log: silentLogger,
      dryRun,
      scope: [target.scope.kind === 'cgroup' ? target.scope.path : ''],
      layout: fake.layout,
      ...(outsideFixture?.devices !== undefined ? { devices: outsideFixture.devices } : {}),
    });

  it('has a changing desired state in this suite', () => {
    expect(CHANGING[name], `add ${name} to CHANGING in conformance.test.ts`).toBeDefined();
  });

  it('declares knobs inside the target and plans a change', () => {
    const dir = target.scope.kind === 'cgroup' ? target.scope.path : '';
    const knobs = action.knobs(target);
    expect(knobs.length).toBeGreaterThan(0);
    for (const k of knobs) {
      if (outsideFixture?.roots.some((r) => k.path.startsWith(r + path.sep))) continue;
      expect(path.dirname(k.path)).toBe(dir);
      expect(k.target).toBe(target.name);
    }
    expect(new Set(knobs.map((k) => k.id)).size).toBe(knobs.length);
    expect(action.plan(target, CHANGING[name]).changes.length).toBeGreaterThan(0);
  });

  it('journals every original before writing, and revert restores the files exactly', () => {
    const before = snapshot(...roots);
    const originals = new Map(action.knobs(target).map((k) => [k.id, fs.readFileSync(k.path, 'utf8').trimEnd()]));
    const w = writer();
    const res = action.apply(action.plan(target, CHANGING[name]), w);
    expect(res.changed).toBe(true);
    expect(snapshot(...roots)).not.toEqual(before);
    for (const r of res.results.filter((x) => x.status === 'written')) {
      expect(journal.get(r.knobId)?.original).toBe(originals.get(r.knobId));
    }
    const reverted = action.revert(target, w);
    expect(reverted.every((r) => r.outcome === 'restored')).toBe(true);
    expect(snapshot(...roots)).toEqual(before);
    expect(journal.active()).toEqual([]);
  });

  it('refuses a target outside the writer scope and writes nothing', () => {
    const before = snapshot(...roots);
    expect(() => action.apply(action.plan(outside, CHANGING[name]), writer())).toThrow(
      expect.objectContaining({ code: 'OUT_OF_SCOPE' }),
    );
    expect(snapshot(...roots)).toEqual(before);
    expect(journal.all()).toEqual([]);
  });

  it('writes nothing and journals nothing in dry-run', () => {
    const before = snapshot(...roots);
    const w = writer(true);
    const res = action.apply(action.plan(target, CHANGING[name]), w);
    expect(res.results.every((r) => r.status === 'dry-run' || r.status === 'unchanged')).toBe(true);
    expect(action.revert(target, w)).toEqual([]);
    expect(snapshot(...roots)).toEqual(before);
    expect(journal.all()).toEqual([]);
  });

  it('leaves a knob another writer changed alone, on apply and on revert', () => {
    const w = writer();
    action.apply(action.plan(target, CHANGING[name]), w);
    const [k] = action.knobs(target);
    const theirs = fs.readFileSync(k.path, 'utf8').trimEnd() + '1';
    fs.writeFileSync(k.path, theirs + '\n');
    const again = action.apply(action.plan(target, CHANGING[name]), w);
    expect(again.overridden).toBe(true);
    expect(action.revert(target, w).some((r) => r.knobId === k.id)).toBe(false);
    expect(fs.readFileSync(k.path, 'utf8')).toBe(theirs + '\n');
  });
});
