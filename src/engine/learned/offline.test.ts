import { describe, expect, it } from 'vitest';
import type { LoggedOutcome } from './learner.js';
import { fixedArm, replayLog, replayShuffled, type ReplayPolicy } from './offline.js';

const ARMS = ['noop', 'a', 'b'];
/** Arm `b` is worth 1 where feature x is 1 and 0 elsewhere; `a` is always worth 0.5; noop 0. Logged uniformly. */
function log(n: number): LoggedOutcome[] {
  const out: LoggedOutcome[] = [];
  for (let i = 0; i < n; i++) {
    const x = i % 2;
    const arm = ARMS[Math.floor(i / 2) % 3]!;
    const reward = arm === 'b' ? x : arm === 'a' ? 0.5 : 0;
    out.push({ arm, eligible: ARMS, features: { x }, reward });
  }
  return out;
}

describe('replayLog', () => {
  it('counts only events where the policy picks the logged arm, and lets it learn from them', () => {
    const r = replayLog(log(60), fixedArm('a', 'noop'));
    expect(r.matched).toBe(20);
    expect(r.meanReward).toBe(0.5);
    const learnt: string[] = [];
    const oracle: ReplayPolicy = {
      chooseArm: (f) => (f.x === 1 ? 'b' : 'a'),
      learnArm: (arm) => learnt.push(arm),
    };
    const o = replayLog(log(60), oracle);
    expect(o.meanReward).toBeCloseTo(0.75, 9);
    expect(learnt).toHaveLength(o.matched);
    expect(o.arms).toEqual({ a: 10, b: 10 });
  });

  it('falls back where the arm does not apply, and refuses a log whose arm was not eligible', () => {
    const e: LoggedOutcome = { arm: 'noop', eligible: ['noop'], features: {}, reward: 0.1 };
    expect(replayLog([e], fixedArm('a', 'noop')).meanReward).toBe(0.1);
    expect(replayLog([], fixedArm('a', 'noop')).meanReward).toBeNaN();
    expect(() => replayLog([{ ...e, arm: 'a' }], fixedArm('a', 'noop'))).toThrow(/its arm a is not among its eligible arms \(noop\)/);
  });
});

describe('replayShuffled', () => {
  it('replays a fresh policy per shuffle, deterministic by seed', () => {
    const fresh = () => fixedArm('b', 'noop');
    const r1 = replayShuffled(log(60), fresh, { shuffles: 5, seed: 3 });
    const r2 = replayShuffled(log(60), fresh, { shuffles: 5, seed: 3 });
    expect(r1).toEqual(r2);
    expect(r1.means.every((m) => Math.abs(m - 0.5) < 1e-9)).toBe(true);
    expect(r1.matched).toEqual([20, 20, 20, 20, 20]);
  });
});
