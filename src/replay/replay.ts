/**
 * Replay: runs the strategies, guardrails and closed loop over a recording without touching the system. Knobs are
 * simulated: they start at the values recorded in the header and take whatever each applied decision sets. Time is
 * the recording's, never the wall clock, so the same recording and config always give the same decisions.
 */
import type { TickSnapshot } from '../core/types.js';
import type { Config } from '../config/types.js';
import { ClosedLoop } from '../engine/closed-loop.js';
import { DecisionEngine, type Decision } from '../engine/engine.js';
import { Guardrails } from '../engine/guardrails.js';
import { createStrategies } from '../engine/registry.js';
import { knobValuesOf, type KnobValues } from '../engine/strategy.js';
import type { RecordingHeader } from './recording.js';
import { ACTION_BOUNDS, ACTIONS } from '../actions/index.js';

export interface ReplayedDecision {
  tick: number;
  time: number;
  id: string;
  kind: Decision['kind'];
  action: string;
  target: string;
  rule: string;
  reason: string;
  from?: KnobValues;
  to?: KnobValues;
  refusal?: string;
}

export function replay(header: RecordingHeader, ticks: readonly TickSnapshot[], config: Config): ReplayedDecision[] {
  const knobs = new Map<string, KnobValues>();
  const originals = new Map<string, KnobValues>();
  for (const [target, byAction] of Object.entries(header.knobs)) {
    for (const [action, values] of Object.entries(byAction)) knobs.set(`${target}|${action}`, { ...values });
  }
  const closedLoop = new ClosedLoop(config.closedLoop);
  const engine = new DecisionEngine({
    strategies: createStrategies(config, { actions: ACTIONS }),
    guardrails: new Guardrails(config.guardrails, ACTION_BOUNDS, { penalties: closedLoop }),
    closedLoop,
    idPrefix: 'replay',
  });
  const targets = header.targets;
  const out: ReplayedDecision[] = [];
  ticks.forEach((snapshot, tick) => {
    const now = snapshot.time;
    const decisions = engine.tick({
      now,
      snapshot,
      targets,
      current: (t, a) => knobs.get(`${t}|${a}`),
      changed: (t, a) => originals.has(`${t}|${a}`),
      original: (t, a) => originals.get(`${t}|${a}`),
    });
    for (const d of decisions) {
      const { action, target, rule, reason } = d.nudge;
      const key = `${target}|${action}`;
      const rec: ReplayedDecision = { tick, time: now, id: d.id, kind: d.kind, action, target, rule, reason };
      if (d.kind === 'refused') rec.refusal = `${d.refusal?.code}: ${d.refusal?.reason}`;
      if (d.kind === 'proposed' || d.kind === 'revert') {
        const from = knobs.get(key) ?? {};
        const to: KnobValues =
          d.nudge.kind === 'restore' && d.nudge.desired === undefined
            ? { ...(originals.get(key) ?? from) }
            : { ...from, ...knobValuesOf(d.nudge) };
        if (!originals.has(key)) originals.set(key, { ...from });
        knobs.set(key, to);
        const orig = originals.get(key)!;
        if (Object.keys(orig).every((k) => orig[k] === to[k])) originals.delete(key);
        engine.applied(d.id, from, to, now);
        rec.from = from;
        rec.to = to;
      }
      out.push(rec);
    }
  });
  return out;
}

export function formatReplay(ds: readonly ReplayedDecision[]): string {
  if (ds.length === 0) return 'no decisions: the strategies would not have acted on this recording';
  const v = (x?: KnobValues) => (x ? Object.entries(x).map(([k, n]) => `${k}=${n}`).join(' ') : '');
  return ds
    .map((d) => `tick ${String(d.tick).padStart(4)}  ${d.kind.padEnd(8)} ${d.action} ${d.target}${d.from ? ` ${v(d.from)} → ${v(d.to)}` : ''}  ${d.refusal ?? d.reason}`)
    .join('\n');
}
