/**
 * `ebpf-tuner model show|reset`: what the learned strategy has learned so far, read from the state directory
 * without starting the agent, and a way to make it start over.
 */
import { BayesLinearArm } from './bayes-linear.js';
import type { LearnerModel } from './model.js';
import { loadModel, resetModel } from './model-store.js';

interface ArmSummary {
  outcomes: number;
  meanReward: number | null;
  lastReward: number | null;
  noiseSd: number;
  /** Posterior mean weight per feature. */
  weights: Record<string, number>;
}

/** The model as text for people, or as JSON (`json`) for scripts. */
export function modelShow(stateDir: string, json: boolean): string {
  const r = loadModel(stateDir);
  if (r.status !== 'loaded') {
    if (json) return JSON.stringify({ path: r.path, status: r.status, ...(r.detail !== undefined ? { detail: r.detail } : {}) }, null, 2);
    return r.status === 'missing'
      ? `no learned model in ${stateDir}: the learned strategy has not learned from an outcome yet`
      : `learned model ${r.path} cannot be used (${r.detail}); the agent starts fresh and replaces it, or run: ebpf-tuner model reset`;
  }
  const m = r.model!;
  const arms = summarize(m);
  if (json) {
    return JSON.stringify(
      { path: r.path, status: r.status, version: m.version, updates: m.updates, updatedAt: m.updatedAt, features: m.features, arms },
      null,
      2,
    );
  }
  const when = m.updatedAt !== null ? `, the last at ${new Date(m.updatedAt).toISOString()}` : '';
  const lines = [
    `learned model ${r.path} (version ${m.version})`,
    `${m.updates} outcome${m.updates === 1 ? '' : 's'} learned${when}`,
    '',
    `${'arm'.padEnd(18)}${'outcomes'.padStart(9)}${'mean reward'.padStart(13)}${'last'.padStart(8)}${'noise sd'.padStart(10)}  strongest weights`,
  ];
  for (const [name, a] of Object.entries(arms)) {
    const strongest = Object.entries(a.weights)
      .filter(([f]) => f !== 'bias')
      .sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]))
      .slice(0, 3)
      .filter(([, w]) => Math.abs(w) >= 0.005)
      .map(([f, w]) => `${f} ${w >= 0 ? '+' : ''}${w.toFixed(2)}`)
      .join(', ');
    lines.push(
      `${name.padEnd(18)}${String(a.outcomes).padStart(9)}${num(a.meanReward).padStart(13)}${num(a.lastReward).padStart(8)}` +
        `${a.noiseSd.toFixed(2).padStart(10)}  ${a.outcomes > 0 ? strongest || '(none)' : '(prior)'}`,
    );
  }
  return lines.join('\n');
}

/** Delete the model; the learner starts fresh at the next start of the agent. */
export function modelReset(stateDir: string): void {
  resetModel(stateDir);
}

function summarize(m: LearnerModel): Record<string, ArmSummary> {
  const out: Record<string, ArmSummary> = {};
  for (const [name, state] of Object.entries(m.arms)) {
    const arm = new BayesLinearArm(m.features.length, state, m.prior);
    const w = arm.weights();
    out[name] = {
      outcomes: state.n,
      meanReward: state.n > 0 ? state.rewardSum / state.n : null,
      lastReward: state.lastReward,
      noiseSd: arm.noiseSd(),
      weights: Object.fromEntries(m.features.map((f, i) => [f, Math.round(w[i]! * 1e4) / 1e4])),
    };
  }
  return out;
}

function num(v: number | null): string {
  return v === null ? '-' : v.toFixed(2);
}
