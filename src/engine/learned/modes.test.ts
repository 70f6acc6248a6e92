import { describe, expect, it } from 'vitest';
import { ClosedLoop } from '../closed-loop.js';
import { DecisionEngine, type Decision } from '../engine.js';
import { Guardrails } from '../guardrails.js';
import { restoreNudge, type Strategy, type StrategyFeedback } from '../strategy.js';
import { CanaryStrategy, ShadowStrategy, type ShadowEvent } from './modes.js';
import { SIM_BOUNDS, SIM_CLOSED_LOOP, SIM_GUARDRAILS, SIM_TARGETS, SimHost, simHeuristic, simLearner } from './simulate.js';
import { ACTIONS } from '../../actions/index.js';

/** The simulated host in cpu-pileup trouble, with the engine and the given strategy; applies what is proposed. */
function world(strategy: Strategy) {
  const host = new SimHost(3);
  host.begin('cpu-pileup');
  const loop = new ClosedLoop(SIM_CLOSED_LOOP);
  const engine = new DecisionEngine({
    strategies: [strategy],
    guardrails: new Guardrails(SIM_GUARDRAILS, SIM_BOUNDS, { penalties: loop }),
    closedLoop: loop,
  });
  let now = 0;
  const run = (ticks: number): Decision[] => {
    const out: Decision[] = [];
    for (let i = 0; i < ticks; i++) {
      now += 1000;
      const ds = engine.tick({
        now,
        snapshot: host.snapshot(now),
        targets: SIM_TARGETS,
        current: (t, a) => host.current(t, a),
        changed: (t, a) => host.changed(t, a),
        original: (t, a) => host.original(t, a),
      });
      for (const d of ds) {
        if (d.kind !== 'proposed' && d.kind !== 'revert') continue;
        const { from, to } = host.apply(d.nudge);
        engine.applied(d.id, from, to, now);
      }
      out.push(...ds);
    }
    return out;
  };
  return { host, run };
}

describe('ShadowStrategy', () => {
  it('acts exactly as the rules would, logging the learner\'s choice beside theirs', () => {
    const events: ShadowEvent[] = [];
    const shadow = world(new ShadowStrategy([simHeuristic()], simLearner(1, ACTIONS), { onShadow: (e) => events.push(e) }));
    const alone = world(simHeuristic());
    const ds = shadow.run(12);
    const plain = alone.run(12);
    const brief = (x: Decision[]) => x.map((d) => `${d.time}:${d.kind}:${d.nudge.rule}:${JSON.stringify(d.nudge.desired)}`);
    expect(brief(ds)).toEqual(brief(plain));
    expect(ds.every((d) => !d.nudge.rule.startsWith('learned:'))).toBe(true);
    expect(events.length).toBeGreaterThan(0);
    const e = events[0]!;
    expect(e).toMatchObject({ kind: 'shadow', id: 'shadow-00000001', time: 2000 });
    expect(e.reason).toMatch(/^shadow: learner would choose \S+/);
    expect(e.acted).toEqual([{ action: 'cpu_weight', target: 'batch', desired: { weight: 50 }, rule: 'noisy-neighbor' }]);
    expect(e.learner.acting).toBe(false);
    expect(Object.keys(e.evidence).some((k) => k.startsWith('est.'))).toBe(true);
  });

  it('teaches the learner from the rules\' verdicts and routes their feedback back to them', () => {
    const seen: StrategyFeedback[] = [];
    const rule = simHeuristic();
    const listening: Strategy = { name: rule.name, historyTicks: rule.historyTicks, decide: (i) => rule.decide(i), feedback: (o) => seen.push(o) };
    const learner = simLearner(1, ACTIONS);
    const { run } = world(new ShadowStrategy([listening], learner));
    const ds = run(12);
    const verdicts = ds.filter((d) => d.verdict !== undefined);
    expect(verdicts.length).toBeGreaterThan(0);
    expect(seen.map((o) => o.decisionId)).toEqual(verdicts.map((d) => d.verdict!.decisionId));
    expect(learner.model.arms.cpu_weight!.n).toBe(verdicts.length);
  });

  it('keeps the rules acting when the learner throws', () => {
    const errors: unknown[] = [];
    const learner = simLearner(1, ACTIONS);
    learner.choose = () => {
      throw new Error('model exploded');
    };
    const { run } = world(new ShadowStrategy([simHeuristic()], learner, { onLearnerError: (e) => errors.push(e) }));
    expect(run(3).some((d) => d.kind === 'proposed')).toBe(true);
    expect(String(errors[0])).toMatch(/model exploded/);
  });
});

describe('CanaryStrategy', () => {
  it('lets the learner act on canary targets only; elsewhere its choice is shadow and the rules act', () => {
    const events: ShadowEvent[] = [];
    // Trained on pileup: the learner wants to spread web; web is not a canary, batch is.
    const learner = trainedOnPileup();
    const { run } = world(new CanaryStrategy([simHeuristic()], learner, ['batch'], { onShadow: (e) => events.push(e) }));
    const ds = run(3);
    expect(ds.filter((d) => d.kind === 'proposed').map((d) => `${d.nudge.rule} ${d.nudge.target}`)).toEqual([]);
    expect(events[0]).toMatchObject({ action: 'cpuset_spread', target: 'web' });
    // The rules do not act on batch either: cpu_weight on a canary target is the learner's to take.
    const { run: run2 } = world(new CanaryStrategy([simHeuristic()], trainedOnPileup(), ['web']));
    const ds2 = run2(3).filter((d) => d.kind === 'proposed');
    expect(ds2.map((d) => `${d.nudge.rule} ${d.nudge.target} ${d.nudge.action}`)).toEqual([
      'learned:cpuset_spread web cpuset_spread',
      'noisy-neighbor batch cpu_weight',
    ]);
  });

  it('acting on all targets, it replaces the rules for the actions it covers', () => {
    const { run } = world(new CanaryStrategy([simHeuristic()], trainedOnPileup(), 'all'));
    const ds = run(3).filter((d) => d.kind === 'proposed');
    expect(ds.map((d) => `${d.source} ${d.nudge.rule} ${d.nudge.target}`)).toEqual(['learned learned:cpuset_spread web']);
  });
});

describe('CanaryStrategy: a rule\'s restore of a change the learner is judging', () => {
  it('is held back until the verdict, then goes out', () => {
    // A rule that restores any cpuset_spread change on web it finds, at once (as the cpuset_spread rule does when
    // web has no pile-up of its own).
    const restorer: Strategy = {
      name: 'restorer',
      decide: (input) =>
        input.changed('web', 'cpuset_spread')
          ? [restoreNudge({ action: 'cpuset_spread', target: 'web', reason: 'calm', rule: 'restorer', evidence: {} })]
          : [],
    };
    const { run } = world(new CanaryStrategy([restorer], trainedOnPileup(), 'all'));
    const ds = run(12).filter((d) => d.kind !== 'refused');
    const brief = ds.map((d) => `${d.time / 1000}:${d.kind}:${d.nudge.rule}`);
    const step = brief.findIndex((b) => b.endsWith(':proposed:learned:cpuset_spread'));
    const verdict = brief.findIndex((b) => /:(kept|revert):learned:cpuset_spread$/.test(b));
    const restore = brief.findIndex((b) => b.endsWith(':proposed:restorer'));
    expect(step, brief.join(' ')).toBeGreaterThanOrEqual(0);
    expect(verdict, brief.join(' ')).toBeGreaterThan(step);
    // Nothing of the rule's between the learner's step and its verdict; after it, the rule's restore goes out.
    expect(restore, brief.join(' ')).toBeGreaterThan(verdict);
  });
});

function trainedOnPileup() {
  const learner = simLearner(2, ACTIONS, { exploration: { scale: 0, minScale: 0 } });
  const host = new SimHost(9);
  host.begin('cpu-pileup');
  const before = host.snapshot(1000);
  const nudge = { kind: 'set' as const, action: 'cpuset_spread', target: 'web', desired: { cpus: 2 }, reason: '', rule: 'learned:cpuset_spread', evidence: {} };
  for (let i = 0; i < 8; i++) {
    learner.observe({
      decisionId: `t${i}`,
      nudge,
      verdict: { decisionId: `t${i}`, verdict: 'kept', rule: nudge.rule, action: nudge.action, target: 'web', metric: 'runqlat.p99', before: 15_000, after: 5_000, improvement: 0.66, samples: 3, samplesBefore: 3, pValue: null, low: null, high: null, confidence: 0.9 },
      snapshotBefore: before,
      snapshotAfter: host.snapshot(5000),
    });
  }
  return learner;
}
