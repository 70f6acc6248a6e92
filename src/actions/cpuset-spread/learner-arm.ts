/**
 * The learner's cpuset_spread arm: spread the worst hot protect target's threads over more CPUs. With an action
 * that reads `{ cpus }` (CPUs its threads may use), one step: room for every runnable thread the placement signal
 * saw, at least one CPU more, at most double, never more than its cpusets allow (which CPUs is the action's choice).
 * Otherwise `{ spread: 1 }`.
 */
import type { TargetSignals } from '../../core/types.js';
import { formatUs } from '../../engine/format.js';
import type { CandidateContext, CandidateTemplate, Proposal } from '../../engine/learned/candidates.js';

const NAME = 'cpuset_spread';

export function cpusetSpreadArm(): CandidateTemplate {
  return {
    name: NAME,
    action: NAME,
    propose(ctx: CandidateContext): Proposal {
      for (const h of ctx.hot) {
        if (ctx.input.changed(h.name, NAME)) continue;
        const cur = ctx.input.current(h.name, NAME);
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

function placementOf(t: TargetSignals | undefined): { allowedCpus?: number; runnable?: number } | undefined {
  const p = t?.placement;
  if (typeof p !== 'object' || p === null) return undefined;
  const r: Record<string, unknown> = { ...p };
  const out: { allowedCpus?: number; runnable?: number } = {};
  if (typeof r.allowedCpus === 'number' && r.allowedCpus > 0) out.allowedCpus = r.allowedCpus;
  if (typeof r.runnable === 'number' && r.runnable >= 0) out.runnable = r.runnable;
  return out;
}
