import { describe, expect, it } from 'vitest';
import { candidateContext } from '../../testing/candidate-context.js';
import { onBusiestNoisy, templatesOf, type LearnerArm, type RegisteredAction } from './candidates.js';

const settings = { step: { stepFraction: 0.5, minWeight: 10 } };

function arm(name: string, action: string): LearnerArm {
  return () => ({ name, action, propose: () => ({ skip: 'test' }) });
}

describe('templatesOf', () => {
  it('builds every arm the registered actions declare, in their order; an action declaring none adds none', () => {
    const actions: RegisteredAction[] = [
      { name: 'b', learnerArms: [arm('b_one', 'b'), arm('b_two', 'b')] },
      { name: 'quiet' },
      { name: 'a', learnerArms: [arm('a_one', 'a')] },
      { name: 'empty', learnerArms: [] },
    ];
    expect(templatesOf(actions, settings).map((t) => t.name)).toEqual(['b_one', 'b_two', 'a_one']);
    expect(templatesOf([], settings)).toEqual([]);
  });

  it('hands every arm the settings it shares with the rules', () => {
    const seen: unknown[] = [];
    const spy: LearnerArm = (s) => {
      seen.push(s);
      return arm('x', 'x')(s);
    };
    templatesOf([{ name: 'x', learnerArms: [spy] }], settings);
    expect(seen).toEqual([settings]);
  });

  it('refuses an arm whose nudges name another action than the one declaring it', () => {
    expect(() => templatesOf([{ name: 'a', learnerArms: [arm('a_one', 'b')] }], settings)).toThrow(
      'create learned strategy: action a declares arm a_one, whose nudges name b',
    );
  });
});

describe('onBusiestNoisy', () => {
  it('offers the noisy targets that ran, busiest first, until one gives a candidate', () => {
    const ctx = candidateContext({});
    const asked: string[] = [];
    const none = onBusiestNoisy(ctx, (t) => void asked.push(`${t.name} ${t.oncpuUs}`), 'nothing to do');
    expect(none).toEqual({ skip: 'nothing to do' });
    expect(asked).toEqual(['batch 1600000']); // idle did not run
    expect(onBusiestNoisy(ctx, (t) => ({ target: t.name, desired: {}, move: 'm' }), 'x')).toEqual({ target: 'batch', desired: {}, move: 'm' });
    expect(onBusiestNoisy({ ...ctx, noisy: [] }, () => undefined, 'x')).toEqual({ skip: 'no noisy target ran' });
  });
});
