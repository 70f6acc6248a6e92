/**
 * The executor's restore routing, with the real pressure_backoff action, journal, writer and audit log on the fake
 * cgroup v2 tree: a restore naming exactly the journaled original ends the journal entry (the knob no longer counts
 * as changed, so no strategy restores it again every tick); one naming a step short of it is written like a set.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import type { Target } from '../core/types.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../cgroup/fake-cgroup2.js';
import { Journal } from '../journal/journal.js';
import { KnobWriter } from '../actions/knob-writer.js';
import { AuditLog } from '../audit/audit.js';
import { clearConcurrencyHints } from '../actions/pressure-backoff/pressure-backoff.js';
import type { Decision } from '../engine/engine.js';
import type { StrategyNudge } from '../engine/strategy.js';
import { Executor } from './executor.js';

let fake: FakeCgroup2;
let stateDir: string;
let journal: Journal;
let target: Target;
let exec: Executor;
const applied: string[] = [];

beforeEach(() => {
  fake = createFakeCgroup2();
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-executor-test-'));
  journal = Journal.open(stateDir, silentLogger);
  target = { name: 'batch', role: 'noisy', slot: 0, scope: { kind: 'cgroup', path: fake.mkdir('app.slice/batch'), version: 2, id: 0n } };
  const writer = new KnobWriter({ journal, log: silentLogger, scope: [fake.path('app.slice/batch')], layout: fake.layout });
  applied.length = 0;
  exec = new Executor({
    log: silentLogger,
    dryRun: false,
    journal,
    writer,
    audit: new AuditLog(journal.db),
    engine: { applied: (id) => void applied.push(id), failed: () => undefined, dryRan: () => undefined },
    target: (name) => {
      if (name !== target.name) throw new Error(`no target ${name}`);
      return target;
    },
  });
});
afterEach(() => {
  clearConcurrencyHints(stateDir);
  journal.close();
  fake.remove();
  fs.rmSync(stateDir, { recursive: true, force: true });
});

let n = 0;
function decide(nudge: Omit<StrategyNudge, 'target' | 'action' | 'reason' | 'rule' | 'evidence'>): Decision {
  n++;
  return {
    id: `d-${n}`,
    time: n * 1000,
    kind: 'proposed',
    source: 'test',
    nudge: { ...nudge, action: 'pressure_backoff', target: 'batch', reason: 'test', rule: 'test', evidence: {} } as StrategyNudge,
  };
}

const cpuMax = () => fs.readFileSync(path.join(fake.path('app.slice/batch'), 'cpu.max'), 'utf8').trim();
const changed = () => exec.tickView().changed('batch', 'pressure_backoff');
const kinds = () => new AuditLog(journal.db).query({}).map((r) => r.kind).reverse();

describe('Executor: restores', () => {
  it('a restore naming exactly the journaled original puts it back from the journal and ends the entry', () => {
    const unlimited = exec.tickView().current('batch', 'pressure_backoff')!;
    expect(unlimited.unlimited).toBe(1);
    exec.carryOut(decide({ kind: 'set', desired: { quotaCpus: 0.5 } }), 1000);
    expect(cpuMax()).toBe('50000 100000');
    expect(changed()).toBe(true);
    exec.carryOut(decide({ kind: 'restore', desired: { ...unlimited } }), 2000);
    expect(cpuMax()).toBe('max 100000');
    expect(changed()).toBe(false);
    expect(kinds()).toEqual(['applied', 'restored']);
  });

  it('a restore naming a step short of the original is written like a set, and the knob stays changed', () => {
    exec.carryOut(decide({ kind: 'set', desired: { quotaCpus: 0.5 } }), 1000);
    exec.carryOut(decide({ kind: 'set', desired: { quotaCpus: 0.25 } }), 2000);
    exec.carryOut(decide({ kind: 'restore', desired: { quotaCpus: 0.5 } }), 3000);
    expect(cpuMax()).toBe('50000 100000');
    expect(changed()).toBe(true);
    // And a restore with no values: the journaled original.
    exec.carryOut(decide({ kind: 'restore' }), 4000);
    expect(cpuMax()).toBe('max 100000');
    expect(changed()).toBe(false);
    expect(kinds()).toEqual(['applied', 'applied', 'applied', 'restored']);
    expect(applied).toHaveLength(4);
  });
});
