/**
 * One suite every registered action must pass, on a cgroup tree: the original is journaled before the first write,
 * revert restores the files byte for byte, out-of-scope targets are refused, dry-run writes nothing, and a knob
 * another writer took is left alone. Run against the fake cgroup v2 tree (src/actions/conformance.test.ts) and against
 * the host's real hierarchy (src/actions/conformance.kernel.test.ts).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import type { KnobRef, Target } from '../core/types.js';
import { cgroupId, detectLayout, type CgroupLayout } from '../cgroup/layout.js';
import { Journal } from '../journal/journal.js';
import type { Action, Desired } from '../actions/action.js';
import { createIoPrefetchAction } from '../actions/io-prefetch/io-prefetch.js';
import { KnobWriter } from '../actions/knob-writer.js';
import type { BlockDevice } from '../block/devices.js';
import { NUMA_REBALANCE } from '../actions/numa-rebalance/numa-rebalance.js';
import { makeTestCgroup, type TestCgroup } from './cgroups.js';

/** The cgroups one test works on, made fresh for it. */
export interface ConformanceTree {
  layout: CgroupLayout;
  /** The target the action changes, and another cgroup outside the writer's scope. */
  target: Target;
  outside: Target;
  /** The writer's scope: the target's directory and, on v1, its twins in the other hierarchies. */
  scope: string[];
  /**
   * Files compared before and after: a fake tree's whole root; on a real tree the knob files of both cgroups (the
   * kernel's own counters there change by themselves).
   */
  files(knobs: KnobRef[]): string[];
  /** A value another writer might put in `knob`, different from `current` and valid for the kernel. */
  foreign(knob: KnobRef, current: string): string;
  remove(): void;
}

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

/** Every file below `roots` (a directory) or the file itself, by content hash; symlinks by target. */
export function snapshot(...roots: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (p: string): void => {
    const st = fs.lstatSync(p);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) visit(path.join(p, e));
    else if (st.isSymbolicLink()) out.set(p, `-> ${fs.readlinkSync(p)}`);
    else out.set(p, createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
  };
  for (const root of roots) visit(root);
  return out;
}

/** The suite, for each of `actions`, on the trees `makeTree` makes (one per test). */
export function conformanceSuite(actions: readonly Action[], makeTree: (action: string) => ConformanceTree): void {
describe.each(actions.map((a) => [a.name, a] as const))('action %s', (name, registered) => {
  let action: Action;
  let outsideFixture: OutsideFixture | undefined;
  let tree: ConformanceTree;
  let stateDir: string;
  let journal: Journal;
  let target: Target;
  let outside: Target;
  const files = (): string[] => {
    const knobs = [target, outside].flatMap((t) => {
      try {
        return action.knobs(t);
      } catch {
        return [];
      }
    });
    return [...tree.files(knobs), ...(outsideFixture?.roots ?? [])];
  };

  beforeEach(() => {
    tree = makeTree(name);
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-conformance-'));
    journal = Journal.open(stateDir, silentLogger);
    ({ target, outside } = tree);
    outsideFixture = OUTSIDE[name]?.(target);
    action = outsideFixture?.action ?? registered;
  });
  afterEach(() => {
    journal.close();
    tree.remove();
    outsideFixture?.remove();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  const writer = (dryRun = false) =>
    new KnobWriter({
      journal,
      log: silentLogger,
      dryRun,
      scope: tree.scope,
      layout: tree.layout,
      ...(outsideFixture?.devices !== undefined ? { devices: outsideFixture.devices } : {}),
    });

  it('has a changing desired state in this suite', () => {
    expect(CHANGING[name], `add ${name} to CHANGING in src/testing/conformance.ts`).toBeDefined();
  });

  it('declares knobs inside the target and plans a change', () => {
    const knobs = action.knobs(target);
    expect(knobs.length).toBeGreaterThan(0);
    for (const k of knobs) {
      if (outsideFixture?.roots.some((r) => k.path.startsWith(r + path.sep))) continue;
      expect(tree.scope).toContain(path.dirname(k.path));
      expect(k.target).toBe(target.name);
    }
    expect(new Set(knobs.map((k) => k.id)).size).toBe(knobs.length);
    expect(action.plan(target, CHANGING[name]).changes.length).toBeGreaterThan(0);
  });

  it('journals every original before writing, and revert restores the files exactly', () => {
    const before = snapshot(...files());
    const originals = new Map(action.knobs(target).map((k) => [k.id, fs.readFileSync(k.path, 'utf8').trimEnd()]));
    const w = writer();
    const res = action.apply(action.plan(target, CHANGING[name]), w);
    expect(res.changed).toBe(true);
    expect(snapshot(...files())).not.toEqual(before);
    for (const r of res.results.filter((x) => x.status === 'written')) {
      expect(journal.get(r.knobId)?.original).toBe(originals.get(r.knobId));
    }
    const reverted = action.revert(target, w);
    expect(reverted.every((r) => r.outcome === 'restored')).toBe(true);
    expect(snapshot(...files())).toEqual(before);
    expect(journal.active()).toEqual([]);
  });

  it('refuses a target outside the writer scope and writes nothing', () => {
    const before = snapshot(...files());
    expect(() => action.apply(action.plan(outside, CHANGING[name]), writer())).toThrow(
      expect.objectContaining({ code: 'OUT_OF_SCOPE' }),
    );
    expect(snapshot(...files())).toEqual(before);
    expect(journal.all()).toEqual([]);
  });

  it('writes nothing and journals nothing in dry-run', () => {
    const before = snapshot(...files());
    const w = writer(true);
    const res = action.apply(action.plan(target, CHANGING[name]), w);
    expect(res.results.every((r) => r.status === 'dry-run' || r.status === 'unchanged')).toBe(true);
    expect(action.revert(target, w)).toEqual([]);
    expect(snapshot(...files())).toEqual(before);
    expect(journal.all()).toEqual([]);
  });

  it('leaves a knob another writer changed alone, on apply and on revert', () => {
    const w = writer();
    action.apply(action.plan(target, CHANGING[name]), w);
    const [k] = action.knobs(target);
    const theirs = outsideFixture?.roots.some((r) => k.path.startsWith(r + path.sep))
      ? fs.readFileSync(k.path, 'utf8').trimEnd() + '1'
      : tree.foreign(k, fs.readFileSync(k.path, 'utf8').trimEnd());
    fs.writeFileSync(k.path, theirs + '\n');
    const again = action.apply(action.plan(target, CHANGING[name]), w);
    expect(again.overridden).toBe(true);
    expect(action.revert(target, w).some((r) => r.knobId === k.id)).toBe(false);
    expect(fs.readFileSync(k.path, 'utf8')).toBe(theirs + '\n');
  });
});
}

/** A cgroup's CPUs: its cpuset.cpus, or the effective set when that is empty or absent (a v2 cgroup or root). */
function cpusOf(dir: string): string {
  const read = (f: string): string => {
    try {
      return fs.readFileSync(path.join(dir, f), 'utf8').trim();
    } catch {
      return '';
    }
  };
  return read('cpuset.cpus') || read('cpuset.cpus.effective');
}

/** A value another writer might put in a real knob: different from `current`, and one the kernel accepts. */
function foreign(knob: KnobRef, current: string): string {
  switch (path.basename(knob.path)) {
    case 'cpu.shares':
    case 'cpu.weight':
      return String(Number(current) + 1);
    case 'cpu.cfs_quota_us':
      return current === '-1' ? '150000' : String(Number(current) + 1000);
    case 'cpu.max':
      return current.startsWith('max') ? '150000 100000' : `${Number(current.split(' ')[0]) + 1000} 100000`;
    case 'cpuset.cpus': {
      // A different number of CPUs, so an action that wants a count sees a change to make again.
      const parent = cpusOf(path.dirname(path.dirname(knob.path)));
      return /[-,]/.test(current) ? parent.split(/[,-]/)[0]! : parent;
    }
    default:
      throw new Error(`no foreign value for ${knob.path} (current ${JSON.stringify(current)}): add one to foreign() in src/testing/conformance.ts`);
  }
}

/**
 * A fresh tree on the host's real hierarchy: on v1 or hybrid hosts a cgroup in the cpu hierarchy with its twin in
 * the cpuset hierarchy, as the agent finds a target; on v2 one cgroup with the controllers enabled.
 */
export function realConformanceTree(action: string): ConformanceTree {
  const layout = detectLayout();
  const cpu = makeTestCgroup('cpu', { layout });
  const v1Cpuset = cpu.version === 1 && layout.controllers.cpuset?.version === 1;
  let cpuset: TestCgroup | undefined;
  try {
    cpuset = v1Cpuset ? makeTestCgroup('cpuset', { layout, name: path.basename(cpu.path) }) : undefined;
  } catch (e) {
    cpu.remove();
    throw e;
  }
  const mk = (child: string): Target => {
    const c = cpu.child(child);
    cpuset?.child(child);
    return { name: child, role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: c.path, version: cpu.version, id: cgroupId(c.path) } };
  };
  const target = mk('noisy');
  const outside = mk('x');
  const twin = cpuset ? path.join(cpuset.path, 'noisy') : undefined;
  // On a one-node host node 0 holds every CPU, so homing a cgroup to it changes something only when its cpuset does
  // not already hold them all: give both cgroups only the last CPU.
  if (action === NUMA_REBALANCE) {
    const root = cpuset ?? cpu;
    const all = cpusOf(root.root);
    for (const child of ['noisy', 'x']) fs.writeFileSync(path.join(root.path, child, 'cpuset.cpus'), `${all.split(/[,-]/).at(-1)}\n`);
  }
  return {
    layout,
    target,
    outside,
    scope: [target.scope.kind === 'cgroup' ? target.scope.path : '', ...(twin ? [twin] : [])],
    files: (knobs) => knobs.map((k) => k.path),
    foreign,
    remove: () => {
      cpu.remove();
      cpuset?.remove();
    },
  };
}
