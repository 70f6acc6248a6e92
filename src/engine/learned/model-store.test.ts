import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newModel } from './model.js';
import { MODEL_FILE, ModelStore, loadModel, parseModel, resetModel, saveModel } from './model-store.js';
import { adaptModel } from './model.js';
import { BayesLinearArm } from './bayes-linear.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ebpf-tuner-model-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function sample() {
  const m = newModel(['bias', 'a', 'b'], ['noop', 'cpu_weight'], { weightSd: 0.5, noiseSd: 0.2 });
  const arm = new BayesLinearArm(3, m.arms.cpu_weight!, m.prior);
  arm.update([1, 0.5, 0], 0.3);
  m.updates = 1;
  m.updatedAt = 1_700_000_000_000;
  m.prng = [1, 2, 3, 4];
  return m;
}

describe('model store', () => {
  it('saves and loads the model unchanged, leaving no temporary file behind', () => {
    const m = sample();
    saveModel(dir, m);
    expect(readdirSync(dir)).toEqual([MODEL_FILE]);
    expect(statSync(path.join(dir, MODEL_FILE)).mode & 0o777).toBe(0o600);
    const r = loadModel(dir);
    expect(r.status).toBe('loaded');
    expect(r.model).toEqual(m);
  });

  it('creates a missing state directory, private to its owner', () => {
    const sub = path.join(dir, 'state');
    new ModelStore(sub).save(sample());
    expect(statSync(sub).mode & 0o777).toBe(0o700);
    expect(new ModelStore(sub).load().status).toBe('loaded');
  });

  it('replaces the previous model in one step', () => {
    const store = new ModelStore(dir);
    const m = sample();
    store.save(m);
    m.updates = 2;
    store.save(m);
    expect(store.load().model!.updates).toBe(2);
    expect(readdirSync(dir)).toEqual([MODEL_FILE]);
  });

  it('reports a missing, a corrupt and an other-version file without throwing', () => {
    expect(loadModel(dir)).toEqual({ status: 'missing', path: path.join(dir, MODEL_FILE) });
    writeFileSync(path.join(dir, MODEL_FILE), '{"version": 1, "features": [');
    expect(loadModel(dir)).toMatchObject({ status: 'corrupt', detail: expect.stringMatching(/not JSON/) });
    writeFileSync(path.join(dir, MODEL_FILE), JSON.stringify({ ...sample(), version: 2 }));
    expect(loadModel(dir)).toMatchObject({ status: 'incompatible', detail: expect.stringMatching(/version 2, this agent reads version 1/) });
    const bad = sample();
    bad.arms.noop!.gram = [1, 2];
    writeFileSync(path.join(dir, MODEL_FILE), JSON.stringify(bad));
    expect(loadModel(dir)).toMatchObject({ status: 'corrupt', detail: expect.stringMatching(/arms.noop: arm sized for another feature count than 3/) });
  });

  it('validates every field it reads', () => {
    expect(() => parseModel(JSON.stringify({ ...sample(), prng: [0, 0, 0, 0] }))).toThrow(/all zeros/);
    expect(() => parseModel(JSON.stringify({ ...sample(), updates: -1 }))).toThrow(/updates/);
    expect(() => parseModel(JSON.stringify({ ...sample(), prior: { weightSd: 0, noiseSd: 1 } }))).toThrow(/prior.weightSd: must be positive/);
  });

  it('resets by deleting the file, and says whether there was one', () => {
    saveModel(dir, sample());
    expect(resetModel(dir)).toBe(true);
    expect(resetModel(dir)).toBe(false);
    expect(loadModel(dir).status).toBe('missing');
  });

  it('writes plain JSON a person can read', () => {
    saveModel(dir, sample());
    const doc = JSON.parse(readFileSync(path.join(dir, MODEL_FILE), 'utf8'));
    expect(doc).toMatchObject({ version: 1, features: ['bias', 'a', 'b'], updates: 1 });
  });
});

describe('adaptModel', () => {
  it('carries statistics over by feature name: a new feature starts from zeros, a dropped one is forgotten', () => {
    const m = sample();
    const a = adaptModel(m, ['bias', 'c', 'a'], ['noop', 'cpu_weight', 'cpuset_spread']);
    expect(a.features).toEqual(['bias', 'c', 'a']);
    const g = a.arms.cpu_weight!.gram;
    // Old gram over (bias, a, b) from x = [1, 0.5, 0]: bias·bias 1, bias·a 0.5, a·a 0.25.
    expect(g).toEqual([1, 0, 0.5, 0, 0, 0, 0.5, 0, 0.25]);
    expect(a.arms.cpu_weight!.moment).toEqual([0.3, 0, 0.15]);
    expect(a.arms.cpuset_spread!.n).toBe(0);
    expect(a.arms.cpu_weight!.n).toBe(1);
  });
});
