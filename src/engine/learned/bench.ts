/**
 * The learner's benchmark on the simulated host: for each scenario (and a mix of all three, drawn at random per
 * episode, where only the context tells them apart) the learner and the noisy-neighbor rule each live through the
 * same sequence of incidents with the same noise, and every episode's reward is recorded with the learner's
 * regret (best arm's expected reward minus that of the arm it chose). The bench harness draws the curves.
 */
import { performance } from 'node:perf_hooks';
import type { DecideInput, Strategy, StrategyFeedback } from '../strategy.js';
import type { RegisteredAction } from './candidates.js';
import type { LearnedStrategy } from './learner.js';
import { Prng } from './prng.js';
import { SCENARIOS, SIM_ACTIONS, bestArm, runEpisodes, simHeuristic, simLearner, type ScenarioName } from './simulate.js';

export interface LearnerBenchRow {
  scenario: string;
  episode: number;
  learner: number;
  heuristic: number;
  regret: number;
}

export interface LearnerBenchResult {
  rows: LearnerBenchRow[];
  summary: Record<string, number>;
}

/** Episodes per single-scenario run, and for the mix. */
const EPISODES = { quick: { single: 30, mixed: 60 }, full: { single: 100, mixed: 300 } };

/** `actions`: the registered actions (e.g. ACTIONS), whose declared arms the learner chooses between. */
export async function runLearnerBench(opts: {
  quick: boolean;
  seed: number;
  actions: readonly RegisteredAction[];
}): Promise<LearnerBenchResult> {
  const n = opts.quick ? EPISODES.quick : EPISODES.full;
  const rows: LearnerBenchRow[] = [];
  const summary: Record<string, number> = {};
  const runs: { name: string; episodes: number; pick: (i: number) => ScenarioName }[] = SCENARIOS.map((sc) => ({
    name: sc,
    episodes: n.single,
    pick: () => sc,
  }));
  const mix = Prng.fromSeed(opts.seed ^ 0x3141_5926);
  const seq = Array.from({ length: n.mixed }, () => SCENARIOS[Math.floor(mix.uniform() * SCENARIOS.length)]!);
  runs.push({ name: 'mixed', episodes: n.mixed, pick: (i) => seq[i]! });

  let decideCalls = 0;
  let decideMs = 0;
  for (const run of runs) {
    // Yield between runs, so a harness drawing progress is not starved.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const timed = timing(simLearner(opts.seed, opts.actions));
    const learner = runEpisodes(timed.strategy, run.pick, run.episodes, { seed: opts.seed });
    const heuristic = runEpisodes(simHeuristic(), run.pick, run.episodes, { seed: opts.seed });
    decideCalls += timed.calls();
    decideMs += timed.ms();
    let regret = 0;
    let hits = 0;
    let converged = 0;
    learner.forEach((l, i) => {
      const h = heuristic[i]!;
      const r = l.best - l.expected;
      regret += r;
      const best = l.arm === bestArm(l.scenario, SIM_ACTIONS).arm;
      if (best) hits++;
      else converged = i + 1;
      rows.push({ scenario: run.name, episode: i + 1, learner: l.reward, heuristic: h.reward, regret: r });
    });
    const tail = Math.max(1, Math.floor(run.episodes / 3));
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    summary[`${run.name}.learnerMean`] = mean(learner.map((o) => o.reward));
    summary[`${run.name}.heuristicMean`] = mean(heuristic.map((o) => o.reward));
    summary[`${run.name}.learnerTailMean`] = mean(learner.slice(-tail).map((o) => o.reward));
    summary[`${run.name}.heuristicTailMean`] = mean(heuristic.slice(-tail).map((o) => o.reward));
    summary[`${run.name}.cumulativeRegret`] = regret;
    summary[`${run.name}.bestArmRate`] = hits / run.episodes;
    // The episode after which the learner never again chose anything but the best arm (0: it never strayed).
    summary[`${run.name}.lastMissEpisode`] = converged;
  }
  summary.learnerDecideUs = decideCalls > 0 ? (decideMs * 1000) / decideCalls : 0;
  summary.seed = opts.seed;
  return { rows, summary };
}

/** Wraps the learner to time its decide calls (one per simulated tick). */
function timing(learner: LearnedStrategy): { strategy: Strategy; calls: () => number; ms: () => number } {
  let calls = 0;
  let ms = 0;
  const strategy: Strategy = {
    name: learner.name,
    historyTicks: learner.historyTicks,
    decide: (input: DecideInput) => {
      const t0 = performance.now();
      const out = learner.decide(input);
      ms += performance.now() - t0;
      calls++;
      return out;
    },
    feedback: (o: StrategyFeedback) => learner.feedback(o),
  };
  return { strategy, calls: () => calls, ms: () => ms };
}
