import { describe, expect, it } from 'vitest';
import type { CpusetSpreadPolicy } from '../../config/types.js';
import type { TargetSignals, TickSnapshot } from '../../core/types.js';
import { summarize, type PlacementStats } from '../../signals/placement/placement.js';
import { Guardrails } from '../guardrails.js';
import { type DecideInput, type StrategyNudge, type StrategyTarget } from '../strategy.js';
import { CPUSET_SPREAD_ACTION, CpusetSpreadRule, nextSpread } from './cpuset-spread.js';
import { runqlatWindow } from '../../signals/windows.js';
import { ACTION_BOUNDS } from '../../actions/index.js';

const policy: CpusetSpreadPolicy = {
  enabled: true,
  mode: 'affinity',
  minPileup: 2,
  idleBelow: 0.5,
  triggerTicks: 3,
  calmTicks: 4,
  pinCpus: '',
};

const targets: StrategyTarget[] = [
  { name: 'db', role: 'protect' },
  { name: 'batch', role: 'noisy' },
];

/** Tick kinds for the protect target: piled up, spread but busy (the band), calm, or no data. */
type Kind = 'PILE' | 'BUSY' | 'CALM' | 'NONE' | 'PILE_NO_IDLE';

function placement(k: Exclude<Kind, 'NONE'>): PlacementStats {
  const busy = new Map([[0, 1], [1, 0.02], [2, 0.03], [3, 0.9]]);
  const allowed = new Set([0, 1, 2, 3]);
  switch (k) {
    case 'PILE':
      return summarize(3, 2, new Map([[0, 2]]), allowed, busy, 0.5);
    case 'PILE_NO_IDLE':
      return summarize(3, 2, new Map([[0, 2]]), allowed, new Map([[0, 1], [1, 1], [2, 1], [3, 1]]), 0.5);
    case 'BUSY':
      return summarize(3, 2, new Map([[0, 1], [1, 1]]), allowed, busy, 0.5);
    case 'CALM':
      return summarize(3, 1, new Map([[0, 1]]), allowed, busy, 0.5);
  }
}

function snapshot(i: number, k: Kind, withRunqlat = false): TickSnapshot {
  const db: TargetSignals = { name: 'db', role: 'protect' };
  if (k !== 'NONE') db.placement = placement(k);
  if (withRunqlat) db.runqlat = runqlatWindow({ count: 10, p50: 1, p90: 2, p99: 3000, mean: 1, p99Ewma: 3000, waitUs: 1, oncpuUs: 1 });
  // A noisy target piling up is not this rule's business.
  const batch: TargetSignals = { name: 'batch', role: 'noisy', placement: placement('PILE') };
  return { time: 1000 * (i + 1), windowMs: 1000, targets: { db, batch } };
}

interface Knobs {
  cpus?: number | undefined;
  cpuset?: number;
  changed?: boolean;
}

function decide(seq: Kind[], k: Knobs = {}, p: CpusetSpreadPolicy = policy, withRunqlat = false): StrategyNudge[] {
  const rule = new CpusetSpreadRule(p);
  const snaps = seq.map((v, i) => snapshot(i, v, withRunqlat));
  const input: DecideInput = {
    now: snaps.at(-1)!.time,
    snapshot: snaps.at(-1)!,
    history: snaps.slice(0, -1).slice(-rule.historyTicks).map((h) => rule.recall(h)),
    targets,
    current: (t, a) => {
      if (a !== CPUSET_SPREAD_ACTION || t !== 'db') return undefined;
      const out: Record<string, number> = {};
      const cpus = 'cpus' in k ? k.cpus : 1;
      if (cpus !== undefined) out.cpus = cpus;
      if (k.cpuset !== undefined) out.cpuset = k.cpuset;
      return out;
    },
    changed: (t, a) => t === 'db' && a === CPUSET_SPREAD_ACTION && k.changed === true,
  };
  return rule.decide(input);
}

describe('CpusetSpreadRule trigger', () => {
  it.each<[string, Kind[], boolean]>([
    ['one pile-up tick', ['PILE'], false],
    ['two pile-up ticks', ['CALM', 'PILE', 'PILE'], false],
    ['three pile-up ticks', ['PILE', 'PILE', 'PILE'], true],
    ['streak broken by a spread tick', ['PILE', 'PILE', 'BUSY', 'PILE', 'PILE'], false],
    ['streak broken by a tick without data', ['PILE', 'NONE', 'PILE', 'PILE'], false],
    ['piled up but no allowed CPU idle', ['PILE_NO_IDLE', 'PILE_NO_IDLE', 'PILE_NO_IDLE'], false],
  ])('%s → spread: %s', (_, seq, fires) => {
    expect(decide(seq).length).toBe(fires ? 1 : 0);
  });

  it('spreads the protect target by one bounded step toward the idle CPUs, with reason and evidence', () => {
    const [n] = decide(['PILE', 'PILE', 'PILE']);
    expect(n).toMatchObject({
      action: CPUSET_SPREAD_ACTION,
      target: 'db',
      desired: { cpus: 2, prefer: '1-2' },
      rule: 'cpuset-spread',
      evidence: { pileup: 2, pileupCpu: 0, runnable: 2, idleCpus: 2, allowedCpus: 4, hotTicks: 3, fromCpus: 1, toCpus: 2 },
      objective: { targets: ['db'], metric: 'placement.pileup', better: 'lower', baselineTicks: 3 },
    });
    expect(n!.reason).toBe(
      'db has 2 runnable threads on CPU 0 while 2 allowed CPUs (1-2) are idle, for 3 ticks; spreading its threads from 1 to 2 CPUs (thread affinity)',
    );
  });

  it('is judged by run-queue p99 when the target has run-queue data', () => {
    expect(decide(['PILE', 'PILE', 'PILE'], {}, policy, true)[0]!.objective).toEqual({
      targets: ['db'],
      metric: 'runqlat.p99',
      better: 'lower',
      unit: 'us',
      baselineTicks: 3, // the pile-up streak it acted on
    });
  });

  it('in cpuset mode steps the cpuset count, and skips a target without a cpuset', () => {
    const p = { ...policy, mode: 'cpuset' as const };
    expect(decide(['PILE', 'PILE', 'PILE'], { cpuset: 1 }, p)[0]!.desired).toEqual({ cpuset: 2, prefer: '1-2' });
    expect(decide(['PILE', 'PILE', 'PILE'], {}, p)).toEqual([]);
  });

  it('does nothing without a current value, or when the target already has a CPU per runnable thread', () => {
    expect(decide(['PILE', 'PILE', 'PILE'], { cpus: undefined })).toEqual([]);
    expect(decide(['PILE', 'PILE', 'PILE'], { cpus: 2 })).toEqual([]);
  });

  it('with pin_cpus pins once instead of spreading', () => {
    const p = { ...policy, pinCpus: '2,3' };
    expect(decide(['PILE', 'PILE', 'PILE'], {}, p)[0]).toMatchObject({ desired: { cpus: 2, cpulist: '2-3' } });
    expect(decide(['PILE', 'PILE', 'PILE'], { changed: true }, p)).toEqual([]);
  });

  it('ignores noisy targets and does nothing when disabled', () => {
    expect(decide(['PILE', 'PILE', 'PILE']).map((n) => n.target)).toEqual(['db']);
    expect(decide(['PILE', 'PILE', 'PILE'], {}, { ...policy, enabled: false })).toEqual([]);
  });
});

describe('CpusetSpreadRule hysteresis and restore', () => {
  it('holds a spread target that is still busy (the band), however long', () => {
    expect(decide(['BUSY', 'BUSY', 'BUSY', 'BUSY', 'BUSY', 'BUSY'], { changed: true, cpus: 2 })).toEqual([]);
  });

  it('restores after calm_ticks without parallel demand, only when it holds a change', () => {
    expect(decide(['CALM', 'CALM', 'CALM'], { changed: true })).toEqual([]);
    const [n] = decide(['BUSY', 'CALM', 'CALM', 'CALM', 'CALM'], { changed: true });
    expect(n).toMatchObject({ kind: 'restore', action: CPUSET_SPREAD_ACTION, target: 'db', evidence: { runnable: 1 } });
    expect(n!.desired).toBeUndefined();
    expect(n!.reason).toMatch(/^calm: db had fewer than 2 runnable threads for 4 ticks \(1 now\); restoring/);
    expect(decide(['CALM', 'CALM', 'CALM', 'CALM'], { changed: false })).toEqual([]);
    // A target whose threads are all gone is calm too.
    expect(decide(['NONE', 'NONE', 'NONE', 'NONE'], { changed: true })[0]).toMatchObject({ kind: 'restore', target: 'db' });
  });

  it('replays: the same ticks give the same nudges', () => {
    const seq: Kind[] = ['PILE', 'PILE', 'PILE', 'PILE'];
    expect(decide(seq)).toEqual(decide(seq));
  });
});

describe('nextSpread and the guardrail bounds', () => {
  it('gives every runnable thread a CPU, at most doubling, within the allowed CPUs', () => {
    expect(nextSpread(1, { runnable: 2, allowedCpus: 2 })).toBe(2);
    expect(nextSpread(1, { runnable: 8, allowedCpus: 16 })).toBe(2);
    expect(nextSpread(4, { runnable: 8, allowedCpus: 6 })).toBe(6);
    expect(nextSpread(2, { runnable: 2, allowedCpus: 8 })).toBe(2);
    expect(nextSpread(0, { runnable: 3, allowedCpus: 8 })).toBe(2);
  });

  it('every spread step the rule proposes passes the default bounds', () => {
    const g = new Guardrails({ cooldownMs: 0, maxChangesPerMinute: 1000, denyCgroups: [] }, ACTION_BOUNDS);
    for (let cur = 1; cur <= 64; cur++) {
      for (const runnable of [2, 3, 8, 200]) {
        const to = nextSpread(cur, { runnable, allowedCpus: 128 });
        if (to === cur) continue;
        const r = g.check({ kind: 'set', action: CPUSET_SPREAD_ACTION, target: 'db', desired: { cpus: to, prefer: '' }, reason: '', rule: 'x', evidence: {} }, 0, {
          current: { cpus: cur },
        });
        expect(r).toEqual({ ok: true });
      }
    }
  });
});
