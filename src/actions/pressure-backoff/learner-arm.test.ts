import { describe, expect, it } from 'vitest';
import { candidateContext as context } from '../../testing/candidate-context.js';
import { pressureBackoffArm } from './learner-arm.js';
import { pressureBackoff } from './pressure-backoff.js';

describe('pressure_backoff learner arm', () => {
  it('is the arm the action declares, at half', () => {
    const [arm] = pressureBackoff.learnerArms ?? [];
    const t = arm!({ step: { stepFraction: 0.5, minWeight: 10 } });
    expect(t).toMatchObject({ name: 'pressure_backoff', action: 'pressure_backoff' });
    expect(t.propose(context({}))).toMatchObject({ desired: { quotaFraction: 0.5 } });
  });

  it('caps the busiest noisy target at a fraction of what it used, in CPUs', () => {
    const t = pressureBackoffArm({ fraction: 0.5 });
    expect(t.propose(context({ 'batch/pressure_backoff': { quotaCpus: 4, unlimited: 1 } }))).toMatchObject({
      target: 'batch',
      desired: { quotaCpus: 0.8 },
    });
    expect(t.propose(context({ 'batch/pressure_backoff': { quotaCpus: 1 } }))).toMatchObject({ desired: { quotaCpus: 0.5 } });
    expect(t.propose(context({ 'batch/pressure_backoff': { quotaCpus: 4 } }, ['batch/pressure_backoff']))).toHaveProperty('skip');
    expect(t.propose(context({}))).toMatchObject({ desired: { quotaFraction: 0.5 } });
  });
});
