/** The agent as the HTTP server sees it (src/http/types.ts AgentControl): cheap, synchronous reads and a few controls. */
import type { AgentControl, KnobChange, ProgramStats, TargetInfo } from '../http/types.js';
import { progStats } from '../bpf/stats.js';
import { concurrencyHints } from '../actions/pressure-backoff/pressure-backoff.js';
import { ACTIONS } from '../actions/index.js';
import type { Agent } from './agent.js';

/** `agent` may be a getter: a config reload replaces the agent while the HTTP server keeps serving. */
export function agentControl(of: Agent | (() => Agent)): AgentControl {
  const current = typeof of === 'function' ? of : () => of;
  // Each method reads the agent at call time.
  const agent = new Proxy({} as Agent, { get: (_t, k) => Reflect.get(current(), k, current()) });
  return {
    paused: () => agent.paused,
    pause: () => agent.pause('paused over HTTP'),
    resume: () => agent.resume(),
    revert: (knobId) => agent.revert(knobId),
    changes: (): KnobChange[] =>
      agent.changes().map((e) => ({
        knobId: e.knobId,
        target: e.target,
        action: e.action,
        path: e.path,
        original: e.original,
        value: e.state === 'overridden' ? (e.observed ?? '') : (e.lastWritten ?? e.original),
        state: e.state === 'vanished' ? 'restored' : e.state,
        time: e.updatedAt,
      })),
    hints: () => concurrencyHints(),
    holds: () => agent.holds(),
    decision: (id) => agent.decision(id),
    actions: () => ACTIONS.map((a) => a.name),
    targets: (): TargetInfo[] => agent.targetList.map((t) => ({ name: t.name, role: t.role })),
    ready: () => agent.ready && agent.last !== undefined,
    state: () => agent.lifecycle,
    programStats: (): ProgramStats[] =>
      agent.programs().map((p) => {
        try {
          return { name: p.name, ...progStats(p.fd) };
        } catch {
          return { name: p.name, runTimeNs: 0, runCnt: 0 };
        }
      }),
  };
}
