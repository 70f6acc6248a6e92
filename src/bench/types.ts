/** The shapes every benchmark section shares: what it is given to run with and what it hands back for the report. */
import type { Progress } from './progress.js';
import type { Resources } from './resources.js';
import type { ChartPanel } from './chart.js';
import type { AgentPolicy } from './peers.js';

export const SECTION_IDS = ['bpf-cost', 'overhead', 'agent-cost', 'reaction', 'servers', 'learner', 'soak'] as const;
export type SectionId = (typeof SECTION_IDS)[number];

export interface BenchContext {
  quick: boolean;
  /** Length of the soak section's run; its own default when absent. */
  soakSeconds?: number;
  res: Resources;
  progress: Progress;
  /** `bench --policy`: laid over the policy of every agent the reaction and servers sections start. */
  policy?: AgentPolicy;
}

export interface Table {
  title: string;
  columns: string[];
  rows: (string | number)[][];
}

/** One of the project's stated targets, with what this run measured against it. */
export interface Goal {
  goal: string;
  measured: string;
  /** null when the run could not measure it. */
  met: boolean | null;
}

export interface SectionResult {
  id: SectionId;
  title: string;
  status: 'ok' | 'failed';
  /** Why it failed. */
  reason?: string;
  /** Rounds, durations and sizes this run used. */
  params: Record<string, unknown>;
  tables: Table[];
  goals: Goal[];
  notes: string[];
  charts: ChartPanel[];
  /** Raw per-round measurements, for results.json. */
  data: unknown;
  seconds: number;
}

export interface Section {
  id: SectionId;
  title: string;
  /** Steps the progress display counts for this section. */
  steps(quick: boolean): number;
  run(ctx: BenchContext): Promise<Omit<SectionResult, 'id' | 'title' | 'status' | 'seconds'>>;
}
