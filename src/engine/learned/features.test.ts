import { describe, expect, it } from 'vitest';
import type { TargetSignals, TickSnapshot } from '../../core/types.js';
import { DEFAULT_FEATURE_GROUPS, extractFeatures, featureNames, type FeatureContext, type FeatureGroup } from './features.js';
import { futexWindow, placementStats, psiResource, runqlatWindow } from '../../signals/windows.js';

function lat(p99: number, oncpuUs: number): TargetSignals['runqlat'] {
  return runqlatWindow({ count: 100, p50: 0, p90: 0, p99, mean: 0, p99Ewma: p99, waitUs: 0, oncpuUs });
}

function ctx(snapshot: TickSnapshot): FeatureContext {
  return { snapshot, protect: ['web'], noisy: ['batch'], p99ThresholdUs: 4000 };
}

const bare: TickSnapshot = {
  time: 1000,
  windowMs: 1000,
  targets: {
    web: { name: 'web', role: 'protect', runqlat: lat(16_000, 250_000) },
    batch: { name: 'batch', role: 'noisy', runqlat: lat(300, 750_000) },
  },
};

function named(s: TickSnapshot): Record<string, number> {
  const f = extractFeatures(DEFAULT_FEATURE_GROUPS, ctx(s));
  return Object.fromEntries(f.names.map((n, i) => [n, f.values[i]!]));
}

describe('features', () => {
  it('names a bias, then each group\'s present bit and values', () => {
    expect(featureNames(DEFAULT_FEATURE_GROUPS)).toEqual([
      'bias',
      'runqlat.present',
      'runqlat.severity',
      'runqlat.protectShare',
      'futex.present',
      'futex.wait',
      'psi.present',
      'psi.cpu',
      'psi.memory',
      'psi.io',
      'cpus.present',
      'cpus.idle',
      'placement.present',
      'placement.pileup',
      'placement.idleAllowed',
    ]);
  });

  it('reads run-queue severity and CPU share, and marks every missing signal absent with zeros', () => {
    const f = named(bare);
    expect(f.bias).toBe(1);
    expect(f['runqlat.present']).toBe(1);
    expect(f['runqlat.severity']).toBeCloseTo(2 / 3); // 4× the threshold: log2(4) / 3
    expect(f['runqlat.protectShare']).toBeCloseTo(0.25);
    for (const g of ['futex', 'psi', 'cpus', 'placement']) expect(f[`${g}.present`]).toBe(0);
    expect(f['psi.memory']).toBe(0);
  });

  it('reads futex, PSI, idle CPUs and placement when the signals are there', () => {
    const s: TickSnapshot = {
      ...bare,
      targets: {
        ...bare.targets,
        web: {
          ...bare.targets.web!,
          futex: futexWindow({ count: 10, waitUs: 500_000 }),
          placement: placementStats({ threads: 8, runnable: 5, pileup: 5, allowedCpus: 4, idleCpus: 2 }),
        },
      },
      host: {
        psi: { cpu: psiResource({ someAvg10: 30 }), memory: psiResource({ someAvg10: 50 }) },
        placement: { cpus: [1, 0.5, 0, 0.5] },
      },
    };
    const f = named(s);
    expect(f['futex.wait']).toBeCloseTo(1 - Math.exp(-0.5));
    expect([f['psi.present'], f['psi.cpu'], f['psi.memory'], f['psi.io']]).toEqual([1, 0.3, 0.5, 0]);
    expect(f['cpus.idle']).toBeCloseTo(0.5);
    expect(f['placement.pileup']).toBe(1);
    expect(f['placement.idleAllowed']).toBe(0.5);
  });

  it('prefers the protect target\'s own PSI to the host\'s', () => {
    const s: TickSnapshot = {
      ...bare,
      targets: { ...bare.targets, web: { ...bare.targets.web!, psi: { memory: psiResource({ someAvg10: 80 }), host: {} } } },
      host: { psi: { memory: psiResource({ someAvg10: 10 }) } },
    };
    expect(named(s)['psi.memory']).toBeCloseTo(0.8);
  });

  it('treats a group that throws or returns junk as absent, and clamps values to [0, 1]', () => {
    const groups: FeatureGroup[] = [
      { name: 'boom', features: ['a'], read: () => { throw new Error('bad block'); } },
      { name: 'nan', features: ['a'], read: () => [Number.NaN] },
      { name: 'big', features: ['a', 'b'], read: () => [7, -3] },
    ];
    const f = extractFeatures(groups, ctx(bare));
    expect(Array.from(f.values)).toEqual([1, 0, 0, 0, 0, 1, 1, 0]);
  });
});
