import { describe, expect, it } from 'vitest';
import type { NumaRebalancePolicy } from '../../config/types.js';
import type { TargetSignals, TickSnapshot } from '../../core/types.js';
import { summarizeNuma, type NumaStats } from '../../signals/numa/numa.js';
import { Guardrails } from '../guardrails.js';
import { type DecideInput, type StrategyNudge, type StrategyTarget } from '../strategy.js';
import { NUMA_REBALANCE_ACTION, NumaRebalanceRule } from './numa-rebalance.js';
import { ACTION_BOUNDS } from '../../actions/index.js';
import { DEFAULTS } from '../../config/defaults.js';

// The defaults, with short streaks and a sample every tick.
const policy: NumaRebalancePolicy = { ...DEFAULTS.policy.numaRebalance, triggerTicks: 3, calmTicks: 4, sampleTicks: 1 };

const targets: StrategyTarget[] = [
  { name: 'db', role: 'protect' },
  { name: 'batch', role: 'noisy' },
];

/** FAR: 90% of 1 GiB on node 0, threads on node 1. LOCAL: same memory, threads on node 0. SPREAD: no home node. */
type Kind = 'FAR' | 'LOCAL' | 'SPREAD' | 'SMALL' | 'NONE';

function stats(k: Exclude<Kind, 'NONE'>): NumaStats {
  const mem = (a: number, b: number) => ({
    pages: new Map([[0, a / 4], [1, b / 4]]),
    kb: new Map([[0, a], [1, b]]),
  });
  switch (k) {
    case 'FAR':
      return summarizeNuma(2, mem(943_718, 104_858), new Map([[1, 4]]), new Map([[1, 400]]));
    case 'LOCAL':
      return summarizeNuma(2, mem(943_718, 104_858), new Map([[0, 4]]), new Map([[0, 400]]));
    case 'SPREAD':
      return summarizeNuma(2, mem(524_288, 524_288), new Map([[0, 4]]), new Map([[0, 400]]));
    case 'SMALL':
      return summarizeNuma(2, mem(9_000, 1_000), new Map([[1, 4]]), new Map([[1, 400]]));
  }
}

function snapshot(i: number, k: Kind): TickSnapshot {
  const db: TargetSignals = { name: 'db', role: 'protect' };
  if (k !== 'NONE') db.numa = stats(k);
  const batch: TargetSignals = { name: 'batch', role: 'noisy', numa: stats('FAR') };
  return { time: 1000 * (i + 1), windowMs: 1000, targets: { db, batch } };
}

/** `knobs` null: the action cannot read the target's current state. */
function decide(seq: Kind[], knobs: { cpusNode: number; memNode: number } | null = { cpusNode: -1, memNode: -1 }, changed = false, p = policy): StrategyNudge[] {
  const rule = new NumaRebalanceRule(p);
  const snaps = seq.map((k, i) => snapshot(i, k));
  const input: DecideInput = {
    now: snaps.at(-1)!.time,
    snapshot: snaps.at(-1)!,
    history: snaps.slice(0, -1).slice(-rule.historyTicks).map((h) => rule.recall(h)),
    targets,
    current: (t, a) => (t === 'db' && a === NUMA_REBALANCE_ACTION && knobs !== null ? knobs : undefined),
    changed: (t, a) => t === 'db' && a === NUMA_REBALANCE_ACTION && changed,
  };
  return rule.decide(input);
}

describe('NumaRebalanceRule', () => {
  it.each<[string, Kind[], boolean]>([
    ['two far ticks', ['FAR', 'FAR'], false],
    ['three far ticks', ['FAR', 'FAR', 'FAR'], true],
    ['streak broken by a local tick', ['FAR', 'LOCAL', 'FAR', 'FAR'], false],
    ['memory without a home node', ['SPREAD', 'SPREAD', 'SPREAD'], false],
    ['too little memory to matter', ['SMALL', 'SMALL', 'SMALL'], false],
    ['no data (one-node host)', ['NONE', 'NONE', 'NONE'], false],
  ])('%s → rebalance: %s', (_, seq, fires) => {
    expect(decide(seq).length).toBe(fires ? 1 : 0);
  });

  it('moves the CPUs to the memory by default, judged by the remote fraction', () => {
    const [n] = decide(['FAR', 'FAR', 'FAR']);
    expect(n).toMatchObject({
      action: NUMA_REBALANCE_ACTION,
      target: 'db',
      desired: { cpusNode: 0 },
      rule: 'numa-rebalance',
      evidence: { memNode: 0, cpuNode: 1, memoryMb: 1024, hotTicks: 3 },
      objective: { targets: ['db'], metric: 'numa.remoteFraction', better: 'lower' },
    });
    expect(n!.reason).toBe(
      "90% of db's 1024 MiB is on node 0 while its threads run mostly on node 1: 90% of its accesses are remote (≥ 50%) for 3 ticks; moving its CPUs to node 0 (cpuset.cpus)",
    );
  });

  it('moves the memory to the CPUs when configured', () => {
    expect(decide(['FAR', 'FAR', 'FAR'], null, false, { ...policy, move: 'memory' })).toEqual([]);
    expect(decide(['FAR', 'FAR', 'FAR'], { cpusNode: -1, memNode: -1 }, false, { ...policy, move: 'memory' })[0]!.desired).toEqual({
      memNode: 1,
    });
  });

  it('moves no memory while the kernel balances NUMA itself, but still moves the CPUs', () => {
    const on = (k: Kind[], p: NumaRebalancePolicy) => {
      const rule = new NumaRebalanceRule(p);
      const snaps = k.map((x, i) => snapshot(i, x));
      for (const s of snaps) (s.targets.db!.numa as NumaStats).kernelBalancing = 1;
      return rule.decide({
        now: snaps.at(-1)!.time,
        snapshot: snaps.at(-1)!,
        history: snaps.slice(0, -1).map((h) => rule.recall(h)),
        targets,
        current: () => ({ cpusNode: -1, memNode: -1 }),
        changed: () => false,
      });
    };
    expect(on(['FAR', 'FAR', 'FAR'], { ...policy, move: 'memory' })).toEqual([]);
    expect(on(['FAR', 'FAR', 'FAR'], policy).map((n) => n.desired)).toEqual([{ cpusNode: 0 }]);
  });

  it('does not repeat a move already in place, and does nothing when disabled', () => {
    expect(decide(['FAR', 'FAR', 'FAR'], { cpusNode: 0, memNode: -1 })).toEqual([]);
    expect(decide(['FAR', 'FAR', 'FAR'], { cpusNode: -1, memNode: -1 }, false, { ...policy, enabled: false })).toEqual([]);
  });

  it('holds while the memory keeps its home, restores once it has none for calm_ticks', () => {
    expect(decide(['LOCAL', 'LOCAL', 'LOCAL', 'LOCAL', 'LOCAL'], { cpusNode: 0, memNode: -1 }, true)).toEqual([]);
    expect(decide(['SPREAD', 'SPREAD', 'SPREAD'], { cpusNode: 0, memNode: -1 }, true)).toEqual([]);
    const [n] = decide(['LOCAL', 'SPREAD', 'SPREAD', 'SPREAD', 'SPREAD'], { cpusNode: 0, memNode: -1 }, true);
    expect(n).toMatchObject({ kind: 'restore', target: 'db' });
    expect(n!.desired).toBeUndefined();
    expect(n!.reason).toMatch(/^calm: db's memory has had no home node \(largest share < 60%\) for 4 ticks \(now 50% on node 0\)/);
    expect(decide(['SPREAD', 'SPREAD', 'SPREAD', 'SPREAD'], { cpusNode: 0, memNode: -1 }, false)).toEqual([]);
  });

  it('its nudges pass the default bounds', () => {
    const g = new Guardrails({ cooldownMs: 0, maxChangesPerMinute: 1000, denyCgroups: [] }, ACTION_BOUNDS);
    const [n] = decide(['FAR', 'FAR', 'FAR']);
    expect(g.check(n!, 0, { current: { cpusNode: -1, memNode: -1 } })).toEqual({ ok: true });
  });
});
