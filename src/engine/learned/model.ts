/**
 * The learned model as data: one Bayesian linear arm per candidate template, the feature names it was learned over,
 * and the random generator's state. Plain JSON-able numbers, so the store can write it as is and `model show` can
 * print it without the learner.
 */
import { freshArm, type ArmPrior, type ArmState } from './bayes-linear.js';
import type { PrngState } from './prng.js';

export const MODEL_VERSION = 1;

export interface LearnerModel {
  version: typeof MODEL_VERSION;
  /** Names of the context features, in vector order. */
  features: string[];
  /** The arms' prior: weight and noise standard deviations, in reward units. */
  prior: ArmPrior;
  /** Outcomes learned from, over all arms; exploration decays with it. */
  updates: number;
  /** Snapshot time of the last outcome learned, ms since the epoch; null before the first. */
  updatedAt: number | null;
  prng: PrngState | null;
  arms: Record<string, ArmState>;
}

export function newModel(features: readonly string[], arms: readonly string[], prior: ArmPrior): LearnerModel {
  const m: LearnerModel = {
    version: MODEL_VERSION,
    features: [...features],
    prior: { ...prior },
    updates: 0,
    updatedAt: null,
    prng: null,
    arms: {},
  };
  for (const a of arms) m.arms[a] = freshArm(features.length, prior);
  return m;
}

/**
 * The model over another feature list: statistics are carried over by name. A feature the model has not seen gets
 * zeros, which is exactly what learning with that feature absent (0) would have produced; a feature no longer
 * extracted is dropped. Arms missing from the model start fresh; arms
 * the learner no longer offers are kept, so unregistering an action for a while does not forget it.
 */
export function adaptModel(model: LearnerModel, features: readonly string[], arms: readonly string[]): LearnerModel {
  const same = model.features.length === features.length && model.features.every((f, i) => f === features[i]);
  const out: LearnerModel = { ...model, features: [...features], arms: {} };
  const d = features.length;
  const od = model.features.length;
  const from = features.map((f) => model.features.indexOf(f));
  for (const [name, a] of Object.entries(model.arms)) {
    if (same) {
      out.arms[name] = a;
      continue;
    }
    const b: ArmState = { ...a, gram: new Array<number>(d * d).fill(0), moment: new Array<number>(d).fill(0) };
    for (let i = 0; i < d; i++) {
      const oi = from[i]!;
      if (oi < 0) continue;
      b.moment[i] = a.moment[oi]!;
      for (let j = 0; j < d; j++) {
        const oj = from[j]!;
        if (oj >= 0) b.gram[i * d + j] = a.gram[oi * od + oj]!;
      }
    }
    out.arms[name] = b;
  }
  for (const a of arms) out.arms[a] ??= freshArm(d, model.prior);
  return out;
}
