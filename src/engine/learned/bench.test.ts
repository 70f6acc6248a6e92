import { describe, expect, it } from 'vitest';
import { runLearnerBench } from './bench.js';
import { ACTIONS } from '../../actions/index.js';

describe('runLearnerBench', () => {
  it('returns one row per episode per run and a numeric summary, reproducibly', async () => {
    const a = await runLearnerBench({ quick: true, seed: 1, actions: ACTIONS });
    const scenarios = [...new Set(a.rows.map((r) => r.scenario))];
    expect(scenarios).toEqual(['noisy-neighbor', 'cpu-pileup', 'memory-pressure', 'mixed']);
    expect(a.rows.filter((r) => r.scenario === 'cpu-pileup').map((r) => r.episode)).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    for (const r of a.rows) {
      for (const v of [r.learner, r.heuristic, r.regret]) expect(Number.isFinite(v)).toBe(true);
      expect(r.regret).toBeGreaterThanOrEqual(0);
    }
    expect(Object.values(a.summary).every(Number.isFinite)).toBe(true);
    expect(a.summary['mixed.learnerTailMean']).toBeGreaterThan(a.summary['mixed.heuristicTailMean']!);
    const b = await runLearnerBench({ quick: true, seed: 1, actions: ACTIONS });
    expect(b.rows).toEqual(a.rows);
    console.log(
      Object.entries(a.summary)
        .map(([k, v]) => `${k} ${Number(v.toFixed(3))}`)
        .join('\n'),
    );
  });
});
