import { describe, expect, it } from 'vitest';
import type { TargetSignals, TickSnapshot } from '../../core/types.js';
import type { DecideInput, KnobValues } from '../strategy.js';
import { cpuWeightStep, cpusetSpread, pressureBackoff, type CandidateContext } from './candidates.js';
import { placementStats, runqlatWindow } from '../../signals/windows.js';
import type { PlacementStats } from '../../signals/placement/placement.js';

function lat(p99: number, oncpuUs: number): TargetSignals['runqlat'] {
  return runqlatWindow({ count: 100, p50: 0, p90: 0, p99, mean: 0, p99Ewma: p99, waitUs: 0, oncpuUs });
}

function context(knobs: Record<string, KnobValues>, changed: string[] = [], placement?: Partial<PlacementStats>): CandidateContext {
  const snapshot: TickSnapshot = {
    time: 1000,
    windowMs: 1000,
    targets: {
      web: { name: 'web', role: 'protect', runqlat: lat(9000, 300_000), ...(placement ? { placement: placementStats(placement) } : {}) },
      batch: { name: 'batch', role: 'noisy', runqlat: lat(200, 1_600_000) },
      idle: { name: 'idle', role: 'noisy', runqlat: lat(0, 0) },
    },
  };
  const input: DecideInput = {
    now: 1000,
    snapshot,
    history: [],
    targets: Object.values(snapshot.targets).map((t) => ({ name: t.name, role: t.role })),
    current: (t, a) => knobs[`${t}/${a}`],
    changed: (t, a) => changed.includes(`${t}/${a}`),
  };
  return {
    input,
    hot: [{ name: 'web', p99: 9000 }],
    protect: input.targets.filter((t) => t.role === 'protect'),
    noisy: input.targets.filter((t) => t.role === 'noisy'),
  };
}

describe('candidate templates', () => {
  it('cpu_weight steps the busiest noisy target that ran, and skips it at the floor', () => {
    const t = cpuWeightStep({ stepFraction: 0.5, minWeight: 10 });
    expect(t.propose(context({ 'batch/cpu_weight': { weight: 100 } }))).toEqual({
      target: 'batch',
      desired: { weight: 50 },
      move: 'batch cpu.weight 100 → 50',
    });
    expect(t.propose(context({ 'batch/cpu_weight': { weight: 10 } }))).toHaveProperty('skip');
    expect(t.propose(context({}))).toHaveProperty('skip');
  });

  it('cpuset_spread speaks the action\'s cpus when it reads them: one bounded step toward the runnable threads', () => {
    const t = cpusetSpread();
    const place = { runnable: 4, pileup: 4, allowedCpus: 4, idleCpus: 3 };
    expect(t.propose(context({ 'web/cpuset_spread': { cpus: 1 } }, [], place))).toMatchObject({ target: 'web', desired: { cpus: 2 } });
    expect(t.propose(context({ 'web/cpuset_spread': { cpus: 2 } }, [], place))).toMatchObject({ desired: { cpus: 4 } });
    expect(t.propose(context({ 'web/cpuset_spread': { cpus: 4 } }, [], place))).toHaveProperty('skip');
    expect(t.propose(context({ 'web/cpuset_spread': { cpus: 1 } }, ['web/cpuset_spread'], place))).toHaveProperty('skip');
  });

  it('cpuset_spread falls back to { spread: 1 } for an action without a cpus reading', () => {
    expect(cpusetSpread().propose(context({}))).toMatchObject({ target: 'web', desired: { spread: 1 } });
    expect(cpusetSpread().propose(context({ 'web/cpuset_spread': { spread: 1 } }))).toHaveProperty('skip');
  });

  it('pressure_backoff caps the busiest noisy target at a fraction of what it used, in CPUs', () => {
    const t = pressureBackoff({ fraction: 0.5 });
    expect(t.propose(context({ 'batch/pressure_backoff': { quotaCpus: 4, unlimited: 1 } }))).toMatchObject({
      target: 'batch',
      desired: { quotaCpus: 0.8 },
    });
    expect(t.propose(context({ 'batch/pressure_backoff': { quotaCpus: 1 } }))).toMatchObject({ desired: { quotaCpus: 0.5 } });
    expect(t.propose(context({ 'batch/pressure_backoff': { quotaCpus: 4 } }, ['batch/pressure_backoff']))).toHaveProperty('skip');
    expect(t.propose(context({}))).toMatchObject({ desired: { quotaFraction: 0.5 } });
  });
});
