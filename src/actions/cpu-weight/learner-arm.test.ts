import { describe, expect, it } from 'vitest';
import { candidateContext as context } from '../../testing/candidate-context.js';
import { cpuWeight } from './cpu-weight.js';
import { cpuWeightArm } from './learner-arm.js';

describe('cpu_weight learner arm', () => {
  it('is the arm the action declares', () => {
    expect(cpuWeight.learnerArms).toEqual([cpuWeightArm]);
  });

  it('steps the busiest noisy target that ran, with the rule\'s step, and skips it at the floor', () => {
    const t = cpuWeightArm({ step: { stepFraction: 0.5, minWeight: 10 } });
    expect(t).toMatchObject({ name: 'cpu_weight', action: 'cpu_weight' });
    expect(t.propose(context({ 'batch/cpu_weight': { weight: 100 } }))).toEqual({
      target: 'batch',
      desired: { weight: 50 },
      move: 'batch cpu.weight 100 → 50',
    });
    expect(t.propose(context({ 'batch/cpu_weight': { weight: 10 } }))).toHaveProperty('skip');
    expect(t.propose(context({}))).toHaveProperty('skip');
    const gentle = cpuWeightArm({ step: { stepFraction: 0.25, minWeight: 80 } });
    expect(gentle.propose(context({ 'batch/cpu_weight': { weight: 100 } }))).toMatchObject({ desired: { weight: 80 } });
  });
});
