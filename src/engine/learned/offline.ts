/**
 * Judging a policy on logged real outcomes instead of a simulator: the replay method for contextual bandits (Li, Chu,
 * Langford and Wang, 2011). The log must come from choices made uniformly at random among the arms that applied
 * (`strategy.exploration.uniform_share: 1`). Walking the log in order, a policy is asked what it would choose in each
 * logged context. Where that is the arm the log took, the policy earns the logged reward and (for a learner) learns
 * from it; elsewhere the event is passed over. With uniform logging, the mean over the kept events is an unbiased
 * estimate of the policy's mean reward per incident, on this workload, with no model of the world in between.
 *
 * A learner's result depends on the order of events and on its own draws, so it is replayed over many shuffles of
 * the log; a fixed policy (always the rule's arm) needs one pass.
 */
import { TunerError } from '../../core/errors.js';
import type { LoggedOutcome } from './learner.js';
import { Prng } from './prng.js';

/** What a policy needs to be replayed: a choice in a logged context, and (optionally) learning from what it earned. */
export interface ReplayPolicy {
  chooseArm(features: Readonly<Record<string, number>>, eligible: readonly string[]): string;
  learnArm?(arm: string, features: Readonly<Record<string, number>>, reward: number): void;
}

export interface ReplayResult {
  /** Events where the policy chose the logged arm. */
  matched: number;
  /** Mean reward over those events; NaN when none matched. */
  meanReward: number;
  /** The arms the policy chose on matched events, with how often. */
  arms: Record<string, number>;
}

/** One pass of the replay method over `log`, in order. */
export function replayLog(log: readonly LoggedOutcome[], policy: ReplayPolicy): ReplayResult {
  let matched = 0;
  let sum = 0;
  const arms: Record<string, number> = {};
  for (const e of log) {
    if (!e.eligible.includes(e.arm)) {
      throw new TunerError('INTERNAL', `replay a logged outcome: its arm ${e.arm} is not among its eligible arms (${e.eligible.join(', ')})`);
    }
    const arm = policy.chooseArm(e.features, e.eligible);
    if (arm !== e.arm) continue;
    matched++;
    sum += e.reward;
    arms[arm] = (arms[arm] ?? 0) + 1;
    policy.learnArm?.(arm, e.features, e.reward);
  }
  return { matched, meanReward: matched > 0 ? sum / matched : NaN, arms };
}

/** A policy that always takes `arm` when it applies, else `fallback` (the rule: its step when it can, else nothing). */
export function fixedArm(arm: string, fallback: string): ReplayPolicy {
  return { chooseArm: (_f, eligible) => (eligible.includes(arm) ? arm : fallback) };
}

export interface ShuffledReplay {
  /** Per shuffle: the policy's mean reward over its matched events (shuffles where nothing matched are left out). */
  means: number[];
  /** Matched events per shuffle. */
  matched: number[];
  /** Arms chosen on matched events, summed over shuffles. */
  arms: Record<string, number>;
}

/**
 * The replay method over `shuffles` random orders of the log (seeded), with a fresh policy for each: what a learner
 * earns depends on which incidents it met first.
 */
export function replayShuffled(log: readonly LoggedOutcome[], fresh: (shuffle: number) => ReplayPolicy, opts: { shuffles: number; seed: number }): ShuffledReplay {
  const prng = Prng.fromSeed(opts.seed);
  const out: ShuffledReplay = { means: [], matched: [], arms: {} };
  for (let i = 0; i < opts.shuffles; i++) {
    const order = [...log];
    for (let j = order.length - 1; j > 0; j--) {
      const k = Math.floor(prng.uniform() * (j + 1));
      [order[j], order[k]] = [order[k]!, order[j]!];
    }
    const r = replayLog(order, fresh(i));
    out.matched.push(r.matched);
    if (r.matched > 0) out.means.push(r.meanReward);
    for (const [a, n] of Object.entries(r.arms)) out.arms[a] = (out.arms[a] ?? 0) + n;
  }
  return out;
}
