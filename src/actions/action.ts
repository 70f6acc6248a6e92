/**
 * The action contract. An action declares the knobs it touches for a target, reads their current state in its own
 * units, plans a change from a desired state, and applies or reverts it — always through the KnobWriter, which owns
 * scope checks, journaling and override detection. The orchestrator treats every action alike through this.
 *
 * Adding an action touches its own folder and its line in index.ts's ACTIONS list:
 *   - `src/actions/<name>/<name>.ts` (the Action), its README (with Overhead and Safety), its tests;
 *   - `conformance.fixture.ts` beside it, exporting the action's `conformance` case: the shared conformance suite
 *     (src/testing/conformance.ts) runs against every registered action and finds the case there — a desired state
 *     that changes something, and where needed a fake for knobs outside the cgroup tree, what a real tree needs
 *     first, or another writer's value for a new kind of knob file;
 *   - optionally `learner-arm.ts` beside it, listed in the action's `learnerArms`: the learned strategy offers every
 *     arm a registered action declares (in the order of ACTIONS, which breaks its ties), and none of an action that
 *     declares none. The learner's folder keeps only the arm contract (src/engine/learned/candidates.ts);
 *   - a heuristic rule that proposes the action, if any, lives under src/engine/heuristic and is one line in
 *     src/engine/registry.ts.
 */
import { TunerError } from '../core/errors.js';
import type { KnobRef, Target } from '../core/types.js';
import type { RestoreItem } from '../journal/restore.js';
import type { KnobWriter, SetResult } from './knob-writer.js';
import type { KnobBounds } from '../engine/guardrails.js';
import type { LearnerArm } from '../engine/learned/candidates.js';

export type Desired = Record<string, number | string>;

export interface PlannedChange {
  knob: KnobRef;
  /** The knob's value when planned. */
  from: string;
  /** The value to write, in the knob's own format. */
  to: string;
  /**
   * Knobs the kernel rewrites when this one is written (cpu.idle resets cpu.weight): journaled before the write, so
   * their originals come back on restore.
   */
  rewrites?: KnobRef[];
}

export interface ActionPlan {
  action: string;
  target: string;
  /** The desired state after normalization (clamped, rounded), in the action's units. */
  desired: Desired;
  /** Empty when the knobs already hold the desired state. */
  changes: PlannedChange[];
  /** Adjustments made to the request, e.g. a value clamped to the knob's range. */
  notes: string[];
}

export interface ApplyResult {
  action: string;
  target: string;
  results: SetResult[];
  /** Some knob was written. */
  changed: boolean;
  /** Some knob belongs to another writer now and was left alone. */
  overridden: boolean;
}

export interface Action {
  readonly name: string;
  /**
   * Limits on each numeric key of `desired`, which the guardrails enforce on every forward nudge: a key without
   * bounds is refused (UNBOUNDED).
   */
  readonly bounds: Readonly<Record<string, KnobBounds>>;
  /** Once per agent start, after the journal is restored and before the first tick (e.g. clear stale side files). */
  start?(ctx: { stateDir: string; dryRun: boolean }): void;
  /** The knobs this action may change for a target; refuses targets it cannot act on. */
  knobs(target: Target): KnobRef[];
  /** Current state in the action's units (e.g. { weight: 100 }), whatever the knob's own format. */
  read(target: Target): Record<string, number>;
  /** A single-knob action's units from its knob's raw text (a journaled original), as read() would report it. */
  decode?(target: Target, raw: string): Record<string, number>;
  plan(target: Target, desired: Desired): ActionPlan;
  apply(plan: ActionPlan, writer: KnobWriter): ApplyResult;
  /** Put back every knob this action changed for the target (those another writer took are left alone). */
  revert(target: Target, writer: KnobWriter): RestoreItem[];
  /**
   * Every restore is a `revert`, even one that names values: the knobs are found in the journal (one per thread, a
   * cgroup's cpuset), and what `read` sums them up as (a count of CPUs, a node) is no plan that would write each one
   * back exactly. Absent: a restore that names values is planned like any other.
   */
  readonly restoresFromJournal?: true;
  /**
   * The learned strategy's arms for this action (usually one, in `learner-arm.ts` beside it): each turns a situation
   * into one nudge of this action. Arm names key the persisted model, so an arm keeps its name. Absent: the learner
   * never chooses this action (the rules may still propose it).
   */
  readonly learnerArms?: readonly LearnerArm[];
}

/** `desired[key]` as a finite number; anything else is refused with the plan's error, naming what was given. */
export function desiredNumber(action: string, target: Target, desired: Desired, key: string): number {
  const asked = desired[key];
  if (typeof asked !== 'number' || !Number.isFinite(asked)) {
    throw new TunerError(
      'ACTION_FAILED',
      `plan ${action} for target ${target.name}: desired.${key} must be a finite number, got ${JSON.stringify(asked)}`,
    );
  }
  return asked;
}

/** What applying `plan` came to, from the writer's results. */
export function applyResult(plan: ActionPlan, results: SetResult[]): ApplyResult {
  return {
    action: plan.action,
    target: plan.target,
    results,
    changed: results.some((r) => r.status === 'written'),
    overridden: results.some((r) => r.status === 'overridden'),
  };
}

/** The apply every knob-setting action shares: each planned change through the writer, in order. */
export function applyPlan(plan: ActionPlan, writer: KnobWriter): ApplyResult {
  return applyResult(
    plan,
    plan.changes.map((c) => {
      for (const k of c.rewrites ?? []) writer.hold(k, plan.action);
      return writer.set(c.knob, plan.action, c.to);
    }),
  );
}

/** The revert every knob-setting action shares: restore each declared knob that has an active journal entry. */
export function revertKnobs(knobs: KnobRef[], writer: KnobWriter): RestoreItem[] {
  const out: RestoreItem[] = [];
  for (const k of knobs) {
    const item = writer.restore(k.id);
    if (item !== undefined) out.push(item);
  }
  return out;
}
