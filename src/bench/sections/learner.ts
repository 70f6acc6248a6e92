/**
 * Section 6 — the learned strategy against the heuristic, when the learner exists: its own benchmark
 * (src/engine/learned/bench.ts, `runLearnerBench({quick, seed})`) returns one row per scenario and episode with
 * both outcomes and the regret; this section tabulates and charts them. Without that module it is skipped.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fmt, median } from '../stats.js';
import type { ChartPanel } from '../chart.js';
import type { Section, Table } from '../types.js';

export interface LearnerRow {
  scenario: string;
  episode: number;
  learner: number;
  heuristic: number;
  regret: number;
}

interface LearnerBench {
  runLearnerBench(opts: { quick: boolean; seed: number }): Promise<{ rows: LearnerRow[]; summary: unknown }> | { rows: LearnerRow[]; summary: unknown };
}

/** The learner's bench module, next to this one in src/ (run by tsx) or dist/ (compiled), if it exists. */
export function learnerModule(): URL | undefined {
  for (const ext of ['.js', '.ts']) {
    const u = new URL(`../../engine/learned/bench${ext}`, import.meta.url);
    if (existsSync(fileURLToPath(u))) return u;
  }
  return undefined;
}

export class SectionSkipped extends Error {}

export const learner: Section = {
  id: 'learner',
  title: 'Learned strategy vs heuristic',
  steps: () => 1,
  async run(ctx) {
    const url = learnerModule();
    if (!url) throw new SectionSkipped('src/engine/learned/bench.ts does not exist yet');
    ctx.progress.step('runLearnerBench');
    // A computed specifier: the module is optional, so the compiler must not require it.
    const mod = (await import(url.href)) as Partial<LearnerBench>;
    if (typeof mod.runLearnerBench !== 'function') throw new Error(`${url.pathname} does not export runLearnerBench`);
    const { rows, summary } = await mod.runLearnerBench({ quick: ctx.quick, seed: 1 });
    ctx.progress.tick();
    return summarize(rows, summary, { quick: ctx.quick, seed: 1 });
  },
};

export function summarize(rows: LearnerRow[], summary: unknown, p: Record<string, unknown>) {
  const scenarios = [...new Set(rows.map((r) => r.scenario))];
  const table: Table = {
    title: 'per scenario: outcome of each strategy and the learner\'s regret (median over episodes; last episode)',
    columns: ['scenario', 'episodes', 'learner (median)', 'heuristic (median)', 'regret (median)', 'regret (last episode)'],
    rows: scenarios.map((s) => {
      const rs = rows.filter((r) => r.scenario === s).sort((a, b) => a.episode - b.episode);
      return [
        s,
        rs.length,
        fmt(median(rs.map((r) => r.learner)), 3),
        fmt(median(rs.map((r) => r.heuristic)), 3),
        fmt(median(rs.map((r) => r.regret)), 3),
        fmt(rs[rs.length - 1]?.regret, 3),
      ];
    }),
  };
  const byScenario = (k: keyof LearnerRow) =>
    scenarios.map((s, i) => ({
      label: s,
      color: i,
      points: rows.filter((r) => r.scenario === s).sort((a, b) => a.episode - b.episode).map((r) => [r.episode, r[k] as number] as [number, number]),
    }));
  const charts: ChartPanel[] = [
    { kind: 'line', title: 'Regret per episode', xLabel: 'episode', yLabel: 'regret', series: byScenario('regret') },
    {
      kind: 'line',
      title: 'Outcome per episode: learner (solid) vs heuristic (dashed)',
      xLabel: 'episode',
      yLabel: 'outcome',
      series: [
        ...byScenario('learner').map((s) => ({ ...s, label: `${s.label} learner` })),
        ...byScenario('heuristic').map((s) => ({ ...s, label: `${s.label} heuristic`, dashed: true, markers: false })),
      ],
    },
  ];
  return {
    params: p,
    tables: [table],
    goals: [],
    notes: ['Rows and summary come from runLearnerBench({quick, seed: 1}); the summary is stored as returned in results.json.'],
    charts,
    data: { rows, summary },
  };
}
