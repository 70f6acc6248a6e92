import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import diagnostics_channel from 'node:diagnostics_channel';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../config/defaults.js';
import type { Config, StrategyConfig } from '../../config/types.js';
import { channels } from '../../core/events.js';
import { createStrategies } from '../registry.js';
import type { DecideInput, StrategyFeedback } from '../strategy.js';
import { CanaryStrategy, ShadowStrategy, type ShadowEvent } from './modes.js';
import { MODEL_FILE, loadModel } from './model-store.js';
import { SIM_TARGETS, SimHost } from './simulate.js';
import { ACTIONS } from '../../actions/index.js';


let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ebpf-tuner-strategies-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function config(strategy?: Partial<StrategyConfig>): Config {
  const c = defaultConfig();
  c.targets = [
    { name: 'web', role: 'protect', pids: [1] },
    { name: 'batch', role: 'noisy', pids: [2] },
  ];
  c.policy.noisyNeighbor.triggerTicks = 2;
  if (strategy !== undefined) {
    c.strategy = {
      kind: 'heuristic',
      canaryTargets: [],
      seed: 3,
      exploration: { scale: 1, decay: 0.98, minScale: 0.05, uniformShare: 0 },
      ...strategy,
    };
  }
  return c;
}

/** Hot ticks of the simulated pile-up, as DecideInputs. */
function* hotTicks(): Generator<DecideInput> {
  const host = new SimHost(5);
  host.begin('cpu-pileup');
  const history = [];
  for (let i = 1; ; i++) {
    const snapshot = host.snapshot(i * 1000);
    yield {
      now: snapshot.time,
      snapshot,
      history: history.slice(),
      targets: SIM_TARGETS,
      current: (t, a) => host.current(t, a),
      changed: (t, a) => host.changed(t, a),
    };
    history.push(snapshot);
  }
}

describe('createStrategies and strategy.kind', () => {
  it('keeps the rules alone when the config has no strategy section, or kind heuristic', () => {
    for (const c of [config(), config({ kind: 'heuristic' })]) {
      const names = createStrategies(c, { actions: ACTIONS }).map((s) => s.name);
      expect(names[0]).toBe('noisy-neighbor');
      expect(names.some((n) => ['learned', 'shadow', 'canary'].includes(n))).toBe(false);
    }
  });

  it('builds the learner beside the rules (shadow), on the canary targets (canary), or on all (learned)', () => {
    const [shadow] = createStrategies(config({ kind: 'shadow' }), { actions: ACTIONS });
    expect(shadow).toBeInstanceOf(ShadowStrategy);
    const [canary] = createStrategies(config({ kind: 'canary', canaryTargets: ['batch'] }), { actions: ACTIONS });
    expect(canary).toBeInstanceOf(CanaryStrategy);
    expect((canary as CanaryStrategy).name).toBe('canary');
    const learned = createStrategies(config({ kind: 'learned' }), { actions: ACTIONS });
    expect(learned.map((s) => s.name)).toEqual(['learned']);
  });

  it('offers only the registered actions it is told about', () => {
    const [s] = createStrategies(config({ kind: 'learned' }), { actions: ACTIONS.filter((a) => a.name === 'cpu_weight') });
    expect((s as CanaryStrategy).learner.arms).toEqual(['noop', 'cpu_weight']);
  });

  it('gives the cpu_weight arm the noisy-neighbor policy\'s step', () => {
    const c = config({ kind: 'learned' });
    c.policy.noisyNeighbor.stepFraction = 0.25;
    const [s] = createStrategies(c, { actions: ACTIONS });
    const ticks = hotTicks();
    let choice;
    for (let i = 0; i < 3 && choice === undefined; i++) choice = (s as CanaryStrategy).learner.choose(ticks.next().value!, () => false).choice;
    expect(choice!.estimates.find((e) => e.arm === 'cpu_weight')).toMatchObject({ eligible: true, move: 'batch cpu.weight 100 → 75' });
  });

  it('publishes shadow choices on the decision channel with kind shadow', () => {
    const seen: ShadowEvent[] = [];
    const listener = (m: unknown): void => {
      if ((m as { kind?: string }).kind === 'shadow') seen.push(m as ShadowEvent);
    };
    diagnostics_channel.subscribe(channels.decision.name, listener);
    try {
      const [shadow] = createStrategies(config({ kind: 'shadow' }), { actions: ACTIONS });
      const ticks = hotTicks();
      for (let i = 0; i < 3; i++) shadow!.decide(ticks.next().value!);
    } finally {
      diagnostics_channel.unsubscribe(channels.decision.name, listener);
    }
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ kind: 'shadow', time: 2000, acted: [{ action: 'cpu_weight', target: 'batch' }] });
  });

  it('persists the model in the state directory after each outcome, and a new agent continues from it', () => {
    const [s] = createStrategies(config({ kind: 'learned' }), { actions: ACTIONS, stateDir: dir });
    const ticks = hotTicks();
    let nudge;
    for (let i = 0; i < 3 && nudge === undefined; i++) nudge = s!.decide(ticks.next().value!).find((n) => n.kind === 'set');
    expect(existsSync(path.join(dir, MODEL_FILE))).toBe(false);
    const fb: StrategyFeedback = {
      decisionId: 'd-1',
      nudge: nudge!,
      verdict: { decisionId: 'd-1', verdict: 'kept', rule: nudge!.rule, action: nudge!.action, target: nudge!.target, metric: 'runqlat.p99', before: 15_000, after: 6_000, improvement: 0.6, samples: 5, samplesBefore: 5, pValue: null, low: null, high: null, confidence: 0.9 },
      snapshotAfter: ticks.next().value!.snapshot,
    };
    s!.feedback!(fb);
    const saved = loadModel(dir);
    expect(saved.status).toBe('loaded');
    expect(saved.model!.updates).toBe(1);
    const [again] = createStrategies(config({ kind: 'learned' }), { actions: ACTIONS, stateDir: dir });
    expect((again as CanaryStrategy).learner.model.updates).toBe(1);
  });

  it('learns and saves nothing in a dry run', () => {
    const [s] = createStrategies(config({ kind: 'learned' }), { actions: ACTIONS, stateDir: dir, dryRun: true });
    const ticks = hotTicks();
    let nudge;
    for (let i = 0; i < 3 && nudge === undefined; i++) nudge = s!.decide(ticks.next().value!)[0];
    s!.feedback!({
      decisionId: 'd-1',
      nudge: nudge!,
      verdict: { decisionId: 'd-1', verdict: 'revert', rule: nudge!.rule, action: nudge!.action, target: nudge!.target, metric: 'runqlat.p99', before: 15_000, after: 15_000, improvement: 0, samples: 5, samplesBefore: 5, pValue: null, low: null, high: null, confidence: 0.9 },
    });
    expect((s as CanaryStrategy).learner.model.updates).toBe(0);
    expect(existsSync(path.join(dir, MODEL_FILE))).toBe(false);
  });

  it('starts fresh over a corrupt model file instead of failing to start', () => {
    writeFileSync(path.join(dir, MODEL_FILE), 'not json');
    const [s] = createStrategies(config({ kind: 'learned' }), { actions: ACTIONS, stateDir: dir });
    expect((s as CanaryStrategy).learner.model.updates).toBe(0);
  });
});
