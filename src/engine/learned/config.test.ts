import { describe, expect, it } from 'vitest';
import { DEFAULT_STRATEGY } from '../../config/defaults.js';
import { parseConfig } from '../../config/load.js';

const targets = 'targets:\n  - {name: web, role: protect, pids: [1]}\n  - {name: batch, role: noisy, pids: [2]}\n';
const parse = (text: string) => parseConfig(targets + text, 'tuner.yaml');
const problem = (text: string): string => {
  try {
    parse(text);
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
};

describe('config: strategy', () => {
  it('is absent by default, which means the rules alone', () => {
    expect(parse('').strategy).toBeUndefined();
    expect(DEFAULT_STRATEGY.kind).toBe('heuristic');
  });

  it('fills in every default of a given section', () => {
    expect(parse('strategy: {kind: shadow}\n').strategy).toEqual({
      kind: 'shadow',
      canaryTargets: [],
      seed: 1,
      exploration: { scale: 1, decay: 0.98, minScale: 0.05, uniformShare: 0 },
    });
  });

  it('maps every key', () => {
    const text =
      'strategy:\n  kind: canary\n  canary_targets: [batch]\n  seed: 42\n  exploration: {scale: 0.5, decay: 0.9, min_scale: 0.1, uniform_share: 0.25}\n';
    expect(parse(text).strategy).toEqual({
      kind: 'canary',
      canaryTargets: ['batch'],
      seed: 42,
      exploration: { scale: 0.5, decay: 0.9, minScale: 0.1, uniformShare: 0.25 },
    });
  });

  it('explains each mistake with the field and the fix', () => {
    expect(problem('strategy: {kind: smart}\n')).toMatch(
      /strategy.kind: expected one of heuristic, learned, shadow, canary, got "smart" — fix: write kind: heuristic/,
    );
    expect(problem('strategy: {kind: canary}\n')).toMatch(/strategy.canary_targets: kind canary needs at least one target/);
    expect(problem('strategy: {kind: canary, canary_targets: [db]}\n')).toMatch(
      /strategy.canary_targets\[0\]: "db" is not a configured target — fix: name a target from the targets list/,
    );
    expect(problem('strategy: {seed: -1}\n')).toMatch(/strategy.seed: expected a whole number from 0 to 4294967295/);
    expect(problem('strategy: {exploration: {decay: 0}}\n')).toMatch(/strategy.exploration.decay: expected a number greater than 0/);
    expect(problem('strategy: {exploration: {scale: 0.1, min_scale: 0.2}}\n')).toMatch(
      /strategy.exploration.min_scale: 0.2 is above scale 0.1 — fix: make min_scale at most scale/,
    );
    expect(problem('strategy: {canary_target: [web]}\n')).toMatch(/strategy.canary_target: unknown key — fix: did you mean "canary_targets"\?/);
  });
});
