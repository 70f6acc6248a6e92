/**
 * What the learner may choose between: action templates, each turning the current situation into one concrete nudge
 * (or a reason it does not apply now), plus "do nothing". Each template is one arm of the bandit.
 *
 * The templates are not listed here. Each action declares its own arms beside itself (`Action.learnerArms`, of the
 * `LearnerArm` type below), the agent hands the learner the actions it registered, and `templatesOf` builds their
 * arms in the order the actions are registered, which is also the order ties are broken in. So an action joins the
 * learner through its own folder and the one line that registers it; old models keep the arms of actions that are
 * gone. This module holds only the contract the arms share, so actions import types and helpers from the engine and
 * the engine never imports an action.
 */
import { TunerError } from '../../core/errors.js';
import type { TargetSignals, TickSnapshot } from '../../core/types.js';
import type { DecideInput, StrategyTarget } from '../strategy.js';

/** The arm that takes no action. It is always offered and judged like the others. */
export const NOOP_ARM = 'noop';

export interface HotTarget {
  readonly name: string;
  readonly p99: number;
}

export interface CandidateContext {
  readonly input: DecideInput;
  /** Protect targets over the threshold for long enough, worst first. */
  readonly hot: readonly HotTarget[];
  readonly protect: readonly StrategyTarget[];
  readonly noisy: readonly StrategyTarget[];
}

export interface Candidate {
  target: string;
  /** Values to write, in the action's units. */
  desired: Record<string, number>;
  /** The move in words, e.g. "batch cpu.weight 100 → 50". */
  move: string;
}

export type Proposal = Candidate | { skip: string };

export interface CandidateTemplate {
  /** Arm name, unique; also the end of the nudge's rule (`learned:<name>`) and the key of its model. */
  readonly name: string;
  /** The action its nudges name. */
  readonly action: string;
  propose(ctx: CandidateContext): Proposal;
}

/** What the arms share with the rules, from the config: the noisy-neighbor rule's weight step. */
export interface ArmSettings {
  readonly step: { readonly stepFraction: number; readonly minWeight: number };
}

/** An arm as an action declares it: its template, built once the settings are known. */
export type LearnerArm = (settings: ArmSettings) => CandidateTemplate;

/** What the learner knows of a registered action: its name and the arms it declares (none: it never chooses it). */
export interface RegisteredAction {
  readonly name: string;
  readonly learnerArms?: readonly LearnerArm[];
}

/** The registered actions' arms, in the order the actions are registered; each must name the action declaring it. */
export function templatesOf(actions: readonly RegisteredAction[], settings: ArmSettings): CandidateTemplate[] {
  return actions.flatMap((a) =>
    (a.learnerArms ?? []).map((arm) => {
      const t = arm(settings);
      if (t.action !== a.name) {
        throw new TunerError('INTERNAL', `create learned strategy: action ${a.name} declares arm ${t.name}, whose nudges name ${t.action}`);
      }
      return t;
    }),
  );
}

export function isSkip(p: Proposal): p is { skip: string } {
  return 'skip' in p;
}

export interface BusyTarget {
  readonly name: string;
  /** On-CPU time in this tick's window. */
  readonly oncpuUs: number;
}

/**
 * For an arm that holds a neighbour back: the first candidate `pick` makes for a noisy target that ran this tick,
 * busiest first (ties by name). `none` says why there is none when some ran.
 */
export function onBusiestNoisy(ctx: CandidateContext, pick: (t: BusyTarget) => Candidate | undefined, none: string): Proposal {
  const busy = busiestNoisy(ctx.input.snapshot, ctx.noisy);
  if (busy.length === 0) return { skip: 'no noisy target ran' };
  for (const t of busy) {
    const c = pick(t);
    if (c !== undefined) return c;
  }
  return { skip: none };
}

function busiestNoisy(snapshot: TickSnapshot, noisy: readonly StrategyTarget[]): BusyTarget[] {
  const out: BusyTarget[] = [];
  for (const t of noisy) {
    const q: TargetSignals['runqlat'] = snapshot.targets[t.name]?.runqlat;
    if (q !== undefined && q.oncpuUs > 0) out.push({ name: t.name, oncpuUs: q.oncpuUs });
  }
  return out.sort((a, b) => b.oncpuUs - a.oncpuUs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
