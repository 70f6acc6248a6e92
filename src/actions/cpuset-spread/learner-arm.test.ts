import { describe, expect, it } from 'vitest';
import { candidateContext as context } from '../../testing/candidate-context.js';
import { cpusetSpread } from './cpuset-spread.js';
import { cpusetSpreadArm } from './learner-arm.js';

describe('cpuset_spread learner arm', () => {
  it('is the arm the action declares', () => {
    expect(cpusetSpread.learnerArms).toEqual([cpusetSpreadArm]);
    expect(cpusetSpreadArm()).toMatchObject({ name: 'cpuset_spread', action: 'cpuset_spread' });
  });

  it('speaks the action\'s cpus when it reads them: one bounded step toward the runnable threads', () => {
    const t = cpusetSpreadArm();
    const place = { runnable: 4, pileup: 4, allowedCpus: 4, idleCpus: 3 };
    expect(t.propose(context({ 'web/cpuset_spread': { cpus: 1 } }, [], place))).toMatchObject({ target: 'web', desired: { cpus: 2 } });
    expect(t.propose(context({ 'web/cpuset_spread': { cpus: 2 } }, [], place))).toMatchObject({ desired: { cpus: 4 } });
    expect(t.propose(context({ 'web/cpuset_spread': { cpus: 4 } }, [], place))).toHaveProperty('skip');
    expect(t.propose(context({ 'web/cpuset_spread': { cpus: 1 } }, ['web/cpuset_spread'], place))).toHaveProperty('skip');
  });

  it('falls back to { spread: 1 } for an action without a cpus reading', () => {
    expect(cpusetSpreadArm().propose(context({}))).toMatchObject({ target: 'web', desired: { spread: 1 } });
    expect(cpusetSpreadArm().propose(context({ 'web/cpuset_spread': { spread: 1 } }))).toHaveProperty('skip');
  });
});
