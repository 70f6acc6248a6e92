/**
 * The learner's pressure_backoff arm: cap the busiest noisy target's CPU while pressure lasts. With an action that
 * reads `{ quotaCpus }`, the cap is `fraction` of what the target used in this tick (or of its current quota, when
 * that is lower); otherwise the generic `{ quotaFraction }`.
 */
import { onBusiestNoisy, type Candidate, type CandidateTemplate } from '../../engine/learned/candidates.js';

const NAME = 'pressure_backoff';

export function pressureBackoffArm(opts: { fraction: number } = { fraction: 0.5 }): CandidateTemplate {
  const pct = Math.round(opts.fraction * 100);
  return {
    name: NAME,
    action: NAME,
    propose(ctx) {
      const windowUs = ctx.input.snapshot.windowMs * 1000;
      return onBusiestNoisy(
        ctx,
        (t): Candidate | undefined => {
          if (ctx.input.changed(t.name, NAME)) return undefined;
          const cur = ctx.input.current(t.name, NAME);
          if (cur?.quotaCpus !== undefined && Number.isFinite(cur.quotaCpus)) {
            const used = windowUs > 0 ? t.oncpuUs / windowUs : cur.quotaCpus;
            const base = Math.min(cur.quotaCpus, used);
            const cap = Math.round(Math.max(0.01, base * opts.fraction) * 100) / 100;
            if (!(cap < cur.quotaCpus)) return undefined;
            return { target: t.name, desired: { quotaCpus: cap }, move: `cap ${t.name} at ${cap} CPUs (${pct}% of the ${round2(base)} it used)` };
          }
          const q = cur?.quotaFraction;
          if (q !== undefined && q <= opts.fraction) return undefined;
          return { target: t.name, desired: { quotaFraction: opts.fraction }, move: `back ${t.name} off to ${pct}% of its CPU` };
        },
        'every busy noisy target is already backed off',
      );
    },
  };
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}
