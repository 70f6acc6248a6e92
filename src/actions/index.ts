/** Every action the agent can take. Adding one is one line here; the orchestrator never branches on a name. */
import type { ActionBounds } from '../engine/guardrails.js';
import type { Action } from './action.js';
import { cpuWeight } from './cpu-weight/cpu-weight.js';
import { cpusetSpread } from './cpuset-spread/cpuset-spread.js';
import { numaRebalance } from './numa-rebalance/numa-rebalance.js';
import { ioPrefetch } from './io-prefetch/io-prefetch.js';
import { pressureBackoff } from './pressure-backoff/pressure-backoff.js';

export const ACTIONS: readonly Action[] = [
  cpuWeight,
  cpusetSpread,
  numaRebalance,
  pressureBackoff,
  ioPrefetch,
];

/** Every action's bounds, by action name, for the guardrails. */
export const ACTION_BOUNDS: ActionBounds = Object.fromEntries(ACTIONS.map((a) => [a.name, a.bounds]));

export type { Action, ActionPlan, ApplyResult, Desired, PlannedChange } from './action.js';

/** The action a nudge names, or undefined for a name no action has. */
export function findAction(name: string): Action | undefined {
  return ACTIONS.find((a) => a.name === name);
}
