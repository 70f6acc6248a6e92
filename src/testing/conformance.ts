/// <reference types="vite/client" />
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
import { KnobWriter } from '../actions/knob-writer.js';
import type { BlockDevice } from '../block/devices.js';
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

/**
 * What the suite needs of one action, declared in the action's own folder as `conformance.fixture.ts` exporting
 * `conformance` (found there by name pattern, so adding an action adds no line here).
 */
export interface ConformanceCase {
  /** The registered action this case is for. */
  action: Action;
  /** A desired state that changes something from the kernel defaults. */
  changing: Desired;
  /**
   * For knobs outside the cgroup tree: an instance of the action bound to a faithful fake of those files, made beside
   * the tree; the suite checks those roots as it checks the tree.
   */
  outside?: (target: Target) => OutsideFixture;
  /**
   * On a real hierarchy, run once the two cgroups exist: whatever they need for `changing` to change something there
   * (their directories in the cpuset hierarchy, and the CPUs of its root).
   */
  prepare?: (cpuset: { dirs: string[]; rootCpus: string }) => void;
  /** A value another writer might put in a knob of this action's own kind, for knob files `foreign()` does not know. */
  foreign?: (knob: KnobRef, current: string) => string;
}

export interface OutsideFixture {
  action: Action;
  roots: string[];
  /** The devices the writer is configured with: every device knob the fixture has. */
  devices?: BlockDevice[];
  remove(): void;
}

/** Every action folder's case (src/actions/NAME/conformance.fixture.ts). */
const CASES: readonly ConformanceCase[] = Object.values(
  import.meta.glob<ConformanceCase>('../actions/*/conformance.fixture.ts', { eager: true, import: 'conformance' }),
);

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
export function conformanceSuite(actions: readonly Action[], makeTree: (c: ConformanceCase) => ConformanceTree): void {
describe.each(actions.map((a) => [a.name, a] as const))('action %s', (name, registered) => {
  const found = CASES.find((c) => c.action.name === name);
  // Without its case every test below fails, after the first says why.
  const c: ConformanceCase = found ?? { action: registered, changing: {} };
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
    tree = makeTree(c);
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-conformance-'));
    journal = Journal.open(stateDir, silentLogger);
    ({ target, outside } = tree);
    outsideFixture = c.outside?.(target);
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

  it('has a conformance case in its folder', () => {
    expect(found, `add conformance.fixture.ts, exporting conformance, to ${name}'s folder under src/actions`).toBeDefined();
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
    expect(action.plan(target, c.changing).changes.length).toBeGreaterThan(0);
  });

  it('journals every original before writing, and revert restores the files exactly', () => {
    const before = snapshot(...files());
    const originals = new Map(action.knobs(target).map((k) => [k.id, fs.readFileSync(k.path, 'utf8').trimEnd()]));
    const w = writer();
    const res = action.apply(action.plan(target, c.changing), w);
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
    expect(() => action.apply(action.plan(outside, c.changing), writer())).toThrow(
      expect.objectContaining({ code: 'OUT_OF_SCOPE' }),
    );
    expect(snapshot(...files())).toEqual(before);
    expect(journal.all()).toEqual([]);
  });

  it('writes nothing and journals nothing in dry-run', () => {
    const before = snapshot(...files());
    const w = writer(true);
    const res = action.apply(action.plan(target, c.changing), w);
    expect(res.results.every((r) => r.status === 'dry-run' || r.status === 'unchanged')).toBe(true);
    expect(action.revert(target, w)).toEqual([]);
    expect(snapshot(...files())).toEqual(before);
    expect(journal.all()).toEqual([]);
  });

  it('leaves a knob another writer changed alone, on apply and on revert', () => {
    const w = writer();
    action.apply(action.plan(target, c.changing), w);
    const [k] = action.knobs(target);
    const theirs = outsideFixture?.roots.some((r) => k.path.startsWith(r + path.sep))
      ? fs.readFileSync(k.path, 'utf8').trimEnd() + '1'
      : (c.foreign ?? tree.foreign)(k, fs.readFileSync(k.path, 'utf8').trimEnd());
    fs.writeFileSync(k.path, theirs + '\n');
    const again = action.apply(action.plan(target, c.changing), w);
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
      throw new Error(`no foreign value for ${knob.path} (current ${JSON.stringify(current)}): give the action's conformance case a foreign()`);
  }
}

/**
 * A fresh tree on the host's real hierarchy: on v1 or hybrid hosts a cgroup in the cpu hierarchy with its twin in
 * the cpuset hierarchy, as the agent finds a target; on v2 one cgroup with the controllers enabled.
 */
export function realConformanceTree(c: ConformanceCase): ConformanceTree {
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
    const dir = cpu.child(child).path;
    cpuset?.child(child);
    return { name: child, role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: dir, version: cpu.version, id: cgroupId(dir) } };
  };
  const target = mk('noisy');
  const outside = mk('x');
  const twin = cpuset ? path.join(cpuset.path, 'noisy') : undefined;
  const cpusetTree = cpuset ?? cpu;
  c.prepare?.({ dirs: ['noisy', 'x'].map((child) => path.join(cpusetTree.path, child)), rootCpus: cpusOf(cpusetTree.root) });
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
