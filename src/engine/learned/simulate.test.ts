/**
 * The learner on the simulated host. Bounds are stated in episodes (incidents, each one decision and its verdict):
 * within 30 incidents of one kind it prefers the best nudge for that kind, and within 90 incidents of the three
 * kinds mixed it tells them apart by context alone.
 */
import { describe, expect, it } from 'vitest';
import { NOOP_ARM } from './candidates.js';
import { Prng } from './prng.js';
import {
  SCENARIOS,
  SIM_ACTIONS,
  SIM_TARGETS,
  SimHost,
  bestArm,
  expectedReward,
  runEpisodes,
  simHeuristic,
  simLearner,
  type EpisodeOutcome,
  type ScenarioName,
} from './simulate.js';
import { ACTIONS } from '../../actions/index.js';

const SEEDS = [1, 2, 3, 4, 5];
const EPISODES_PER_SCENARIO = 30;
const MIXED_EPISODES = 90;

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const rewards = (os: readonly EpisodeOutcome[]): number[] => os.map((o) => o.reward);
const bestRate = (os: readonly EpisodeOutcome[]): number =>
  os.filter((o) => o.arm === bestArm(o.scenario, SIM_ACTIONS).arm).length / os.length;

describe('the simulated host', () => {
  it('has a different best nudge in each scenario, and the rule only knows one of them', () => {
    expect(SCENARIOS.map((s) => bestArm(s, SIM_ACTIONS).arm)).toEqual(['cpu_weight', 'cpuset_spread', 'pressure_backoff']);
    expect(expectedReward('noisy-neighbor', NOOP_ARM)).toBe(0);
  });

  it('responds to the rule as expected: its cpu_weight step is kept for a noisy neighbour and reverted for a pile-up', () => {
    const nn = runEpisodes(simHeuristic(), () => 'noisy-neighbor', 5, { seed: 1 });
    const pu = runEpisodes(simHeuristic(), () => 'cpu-pileup', 5, { seed: 1 });
    expect(nn.map((o) => `${o.arm}:${o.verdict}`)).toEqual(Array(5).fill('cpu_weight:kept'));
    expect(pu.filter((o) => o.verdict === 'revert').length).toBeGreaterThanOrEqual(4);
    expect(mean(rewards(nn))).toBeGreaterThan(0.3);
    expect(mean(rewards(pu))).toBeLessThan(0);
  });

  it('is reproducible from its seed', () => {
    const a = runEpisodes(simLearner(9, ACTIONS), () => 'memory-pressure', 6, { seed: 9 });
    const b = runEpisodes(simLearner(9, ACTIONS), () => 'memory-pressure', 6, { seed: 9 });
    expect(a).toEqual(b);
  });
});

describe(`the learner converges within ${EPISODES_PER_SCENARIO} episodes of one scenario`, () => {
  for (const scenario of SCENARIOS) {
    it(`${scenario}: prefers ${bestArm(scenario, SIM_ACTIONS).arm} and matches or beats the rule`, () => {
      const best = bestArm(scenario, SIM_ACTIONS).arm;
      const lines: string[] = [];
      for (const seed of SEEDS) {
        const learner = simLearner(seed, ACTIONS);
        const l = runEpisodes(learner, () => scenario, EPISODES_PER_SCENARIO, { seed });
        const h = runEpisodes(simHeuristic(), () => scenario, EPISODES_PER_SCENARIO, { seed });
        const tail = l.slice(-10);
        // What it believes: the best arm has the highest posterior mean in a fresh incident of this kind.
        expect(greedy(learner, scenario)).toBe(best);
        // What it does: mostly the best arm by now; Thompson sampling still tries another now and then.
        expect(bestRate(tail)).toBeGreaterThanOrEqual(0.7);
        const lm = mean(rewards(tail));
        const hm = mean(rewards(h.slice(-10)));
        if (best === 'cpu_weight') expect(lm).toBeGreaterThanOrEqual(hm - 0.05); // the rule's own arm: match it
        else expect(lm).toBeGreaterThan(hm + 0.3); // the rule cannot take the right action: beat it clearly
        lines.push(`seed ${seed}: best-arm rate (last 10) ${bestRate(tail).toFixed(1)}, reward learner ${lm.toFixed(3)} vs rule ${hm.toFixed(3)}`);
      }
      console.log(`${scenario}\n  ${lines.join('\n  ')}`);
    });
  }
});

describe(`the learner tells the scenarios apart by context within ${MIXED_EPISODES} mixed episodes`, () => {
  it('chooses the best arm for each incident in at least 90% of the last 30, and earns more than the rule', () => {
    for (const seed of SEEDS) {
      const r = Prng.fromSeed(seed + 100);
      const seq = Array.from({ length: MIXED_EPISODES }, () => SCENARIOS[Math.floor(r.uniform() * SCENARIOS.length)]!);
      const learner = simLearner(seed, ACTIONS);
      const l = runEpisodes(learner, (i) => seq[i]!, MIXED_EPISODES, { seed });
      const h = runEpisodes(simHeuristic(), (i) => seq[i]!, MIXED_EPISODES, { seed });
      const tail = l.slice(-30);
      expect(bestRate(tail)).toBeGreaterThanOrEqual(0.9);
      expect(mean(rewards(tail))).toBeGreaterThan(mean(rewards(h.slice(-30))) + 0.15);
      for (const s of SCENARIOS) expect(greedy(learner, s)).toBe(bestArm(s, SIM_ACTIONS).arm);
      const regret = l.reduce((a, o) => a + o.best - o.expected, 0);
      console.log(
        `mixed seed ${seed}: best-arm rate last 30 ${bestRate(tail).toFixed(2)}, cumulative regret ${regret.toFixed(2)}, ` +
          `reward learner ${mean(rewards(tail)).toFixed(3)} vs rule ${mean(rewards(h.slice(-30))).toFixed(3)}`,
      );
    }
  });
});

/** The arm with the highest posterior mean in a fresh incident of `scenario`. */
function greedy(learner: ReturnType<typeof simLearner>, scenario: ScenarioName): string {
  const host = new SimHost(12345);
  host.begin(scenario);
  const est = learner.estimates(host.snapshot(1000), SIM_TARGETS);
  return est.reduce((a, b) => (b.mean > a.mean ? b : a)).arm;
}
