/**
 * What the learner may choose between: a declared list of action templates, each turning the current situation into
 * one concrete nudge (or a reason it does not apply now), plus "do nothing". Each template is one arm of the bandit.
 * The list is pluggable: a template names its action, and the learner offers only templates whose action the agent
 * has registered, so new actions join by adding a template and old models keep their other arms.
 */
import type { TargetSignals, TickSnapshot } from '../../core/types.js';
import { formatUs } from '../format.js';
import { stepWeight } from '../heuristic/noisy-neighbor.js';
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
  /** Arm name, unique; also the end of the nudge's rule (`learned:<name>`). */
  readonly name: string;
  /** The action its nudges name. */
  readonly action: string;
  propose(ctx: CandidateContext): Proposal;
}

export function isSkip(p: Proposal): p is { skip: string } {
  return 'skip' in p;
}

/** Lower the busiest noisy target's cpu.weight by one step, as the noisy-neighbor rule would. */
export function cpuWeightStep(policy: { stepFraction: number; minWeight: number }): CandidateTemplate {
  return {
    name: 'cpu_weight',
    action: 'cpu_weight',
    propose(ctx: CandidateContext): Proposal {
      const busy = busiest(ctx.input.snapshot, ctx.noisy);
      if (busy.length === 0) return { skip: 'no noisy target ran' };
      for (const t of busy) {
        const from = ctx.input.current(t.name, 'cpu_weight')?.weight;
        if (from === undefined || !Number.isFinite(from)) continue;
        const to = stepWeight(from, policy);
        if (to >= from) continue;
        return { target: t.name, desired: { weight: to }, move: `${t.name} cpu.weight ${from} → ${to}` };
      }
      return { skip: 'every busy noisy target is at the weight floor or has no readable weight' };
    },
  };
}

/**
 * Spread the worst hot protect target's threads over more CPUs. With an action that reads `{ cpus }` (CPUs its
 * threads may use), one step: room for every runnable thread the placement signal saw, at least one CPU more, at
 * most double, never more than its cpusets allow (which CPUs is the action's choice). Otherwise `{ spread: 1 }`.
 */
export function cpusetSpread(): CandidateTemplate {
  return {
    name: 'cpuset_spread',
    action: 'cpuset_spread',
    propose(ctx: CandidateContext): Proposal {
      for (const h of ctx.hot) {
        if (ctx.input.changed(h.name, 'cpuset_spread')) continue;
        const cur = ctx.input.current(h.name, 'cpuset_spread');
        const p99 = `p99 ${formatUs(h.p99)}`;
        if (cur?.cpus !== undefined && Number.isFinite(cur.cpus)) {
          const pl = placementOf(ctx.input.snapshot.targets[h.name]);
          // One bounded step, as the spread rule takes: room for every runnable thread, at most double.
          const double = Math.max(1, cur.cpus) * 2;
          const want = Math.min(pl?.allowedCpus ?? Infinity, Math.max(cur.cpus + 1, Math.min(pl?.runnable ?? double, double)));
          if (!(want > cur.cpus)) continue;
          return { target: h.name, desired: { cpus: want }, move: `spread ${h.name} (${p99}) from ${cur.cpus} to ${want} CPUs` };
        }
        if (cur?.spread === 1) continue;
        return { target: h.name, desired: { spread: 1 }, move: `spread ${h.name} (${p99}) over more CPUs` };
      }
      return { skip: 'every hot protect target is already spread, or uses every CPU it may' };
    },
  };
}

/**
 * Cap the busiest noisy target's CPU while pressure lasts. With an action that reads `{ quotaCpus }`, the cap is
 * `fraction` of what the target used in this tick (or of its current quota, when that is lower); otherwise the
 * generic `{ quotaFraction }`.
 */
export function pressureBackoff(opts: { fraction: number } = { fraction: 0.5 }): CandidateTemplate {
  return {
    name: 'pressure_backoff',
    action: 'pressure_backoff',
    propose(ctx: CandidateContext): Proposal {
      const busy = busiest(ctx.input.snapshot, ctx.noisy);
      if (busy.length === 0) return { skip: 'no noisy target ran' };
      const windowUs = ctx.input.snapshot.windowMs * 1000;
      for (const t of busy) {
        if (ctx.input.changed(t.name, 'pressure_backoff')) continue;
        const cur = ctx.input.current(t.name, 'pressure_backoff');
        if (cur?.quotaCpus !== undefined && Number.isFinite(cur.quotaCpus)) {
          const used = windowUs > 0 ? t.oncpuUs / windowUs : cur.quotaCpus;
          const base = Math.min(cur.quotaCpus, used);
          const cap = Math.round(Math.max(0.01, base * opts.fraction) * 100) / 100;
          if (!(cap < cur.quotaCpus)) continue;
          return {
            target: t.name,
            desired: { quotaCpus: cap },
            move: `cap ${t.name} at ${cap} CPUs (${Math.round(opts.fraction * 100)}% of the ${round2(base)} it used)`,
          };
        }
        const q = cur?.quotaFraction;
        if (q !== undefined && q <= opts.fraction) continue;
        return {
          target: t.name,
          desired: { quotaFraction: opts.fraction },
          move: `back ${t.name} off to ${Math.round(opts.fraction * 100)}% of its CPU`,
        };
      }
      return { skip: 'every busy noisy target is already backed off' };
    },
  };
}

/** The default arms besides "do nothing", in the order ties are broken. */
export function defaultTemplates(policy: { stepFraction: number; minWeight: number }): CandidateTemplate[] {
  return [cpuWeightStep(policy), cpusetSpread(), pressureBackoff()];
}

function placementOf(t: TargetSignals | undefined): { allowedCpus?: number; runnable?: number } | undefined {
  const p = t?.placement;
  if (typeof p !== 'object' || p === null) return undefined;
  const r: Record<string, unknown> = { ...p };
  const out: { allowedCpus?: number; runnable?: number } = {};
  if (typeof r.allowedCpus === 'number' && r.allowedCpus > 0) out.allowedCpus = r.allowedCpus;
  if (typeof r.runnable === 'number' && r.runnable >= 0) out.runnable = r.runnable;
  return out;
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

/** Noisy targets that ran this tick, busiest first (ties by name). */
function busiest(snapshot: TickSnapshot, noisy: readonly StrategyTarget[]): { name: string; oncpuUs: number }[] {
  const out: { name: string; oncpuUs: number }[] = [];
  for (const t of noisy) {
    const q: TargetSignals['runqlat'] = snapshot.targets[t.name]?.runqlat;
    if (q !== undefined && q.oncpuUs > 0) out.push({ name: t.name, oncpuUs: q.oncpuUs });
  }
  return out.sort((a, b) => b.oncpuUs - a.oncpuUs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
