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
import type { Desired } from './action.js';
import { ACTIONS } from './index.js';
import { KnobWriter } from './knob-writer.js';

/** A desired state that changes something from the kernel defaults, per action. Every action needs one. */
const CHANGING: Record<string, Desired> = {
  cpu_weight: { weight: 37 },
};

function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(p, createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
    }
  };
  walk(root);
  return out;
}

describe.each(ACTIONS.map((a) => [a.name, a] as const))('action %s', (name, action) => {
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
  });
  afterEach(() => {
    journal.close();
    fake.remove();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  const writer = (dryRun = false) =>
    new KnobWriter({ journal, log: silentLogger, dryRun, scope: [target.scope.kind === 'cgroup' ? target.scope.path : ''], layout: fake.layout });

  it('has a changing desired state in this suite', () => {
    expect(CHANGING[name], `add ${name} to CHANGING in conformance.test.ts`).toBeDefined();
  });

  it('declares knobs inside the target and plans a change', () => {
    const dir = target.scope.kind === 'cgroup' ? target.scope.path : '';
    const knobs = action.knobs(target);
    expect(knobs.length).toBeGreaterThan(0);
    for (const k of knobs) {
      expect(path.dirname(k.path)).toBe(dir);
      expect(k.target).toBe(target.name);
    }
    expect(new Set(knobs.map((k) => k.id)).size).toBe(knobs.length);
    expect(action.plan(target, CHANGING[name]).changes.length).toBeGreaterThan(0);
  });

  it('journals every original before writing, and revert restores the files exactly', () => {
    const before = snapshot(fake.root);
    const originals = new Map(action.knobs(target).map((k) => [k.id, fs.readFileSync(k.path, 'utf8').trimEnd()]));
    const w = writer();
    const res = action.apply(action.plan(target, CHANGING[name]), w);
    expect(res.changed).toBe(true);
    expect(snapshot(fake.root)).not.toEqual(before);
    for (const r of res.results.filter((x) => x.status === 'written')) {
      expect(journal.get(r.knobId)?.original).toBe(originals.get(r.knobId));
    }
    const reverted = action.revert(target, w);
    expect(reverted.every((r) => r.outcome === 'restored')).toBe(true);
    expect(snapshot(fake.root)).toEqual(before);
    expect(journal.active()).toEqual([]);
  });

  it('refuses a target outside the writer scope and writes nothing', () => {
    const before = snapshot(fake.root);
    expect(() => action.apply(action.plan(outside, CHANGING[name]), writer())).toThrow(
      expect.objectContaining({ code: 'OUT_OF_SCOPE' }),
    );
    expect(snapshot(fake.root)).toEqual(before);
    expect(journal.all()).toEqual([]);
  });

  it('writes nothing and journals nothing in dry-run', () => {
    const before = snapshot(fake.root);
    const w = writer(true);
    const res = action.apply(action.plan(target, CHANGING[name]), w);
    expect(res.results.every((r) => r.status === 'dry-run' || r.status === 'unchanged')).toBe(true);
    expect(action.revert(target, w)).toEqual([]);
    expect(snapshot(fake.root)).toEqual(before);
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
