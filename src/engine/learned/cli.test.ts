import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { modelReset, modelShow } from './cli.js';
import { loadModel, saveModel } from './model-store.js';
import { runEpisodes, simLearner } from './simulate.js';
import { ACTIONS } from '../../actions/index.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ebpf-tuner-cli-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function learnSomething(): void {
  const learner = simLearner(4, ACTIONS, { onModelChange: (m) => saveModel(dir, m) });
  runEpisodes(learner, () => 'cpu-pileup', 8, { seed: 4 });
}

describe('model show', () => {
  it('says so when there is no model yet', () => {
    expect(modelShow(dir, false)).toBe(`no learned model in ${dir}: the learned strategy has not learned from an outcome yet`);
    expect(JSON.parse(modelShow(dir, true))).toEqual({ path: path.join(dir, 'learned-model.json'), status: 'missing' });
  });

  it('shows each arm\'s outcomes, rewards and strongest weights', () => {
    learnSomething();
    const text = modelShow(dir, false);
    const lines = text.split('\n');
    expect(lines[0]).toBe(`learned model ${path.join(dir, 'learned-model.json')} (version 1)`);
    expect(lines[1]).toMatch(/^\d+ outcomes learned, the last at \d{4}-\d\d-\d\dT/);
    expect(lines[3]).toMatch(/^arm\s+outcomes\s+mean reward\s+last\s+noise sd\s+strongest weights$/);
    expect(text).toMatch(/\ncpuset_spread\s+\d+\s+0\.\d\d/);
    expect(lines).toHaveLength(4 + 4);
  });

  it('gives the same in JSON, with every weight', () => {
    learnSomething();
    const doc = JSON.parse(modelShow(dir, true));
    expect(doc).toMatchObject({ status: 'loaded', version: 1 });
    expect(doc.updates).toBeGreaterThanOrEqual(8);
    expect(Object.keys(doc.arms)).toEqual(['noop', 'cpu_weight', 'cpuset_spread', 'pressure_backoff']);
    expect(Object.keys(doc.arms.cpuset_spread.weights)).toEqual(doc.features);
  });
});

describe('model reset', () => {
  it('deletes the model, and is fine when there is none', () => {
    learnSomething();
    modelReset(dir);
    expect(loadModel(dir).status).toBe('missing');
    expect(() => modelReset(dir)).not.toThrow();
  });
});
