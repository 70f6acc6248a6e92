/**
 * The default rule for pressure_backoff: when the host, or a protect target, keeps stalling on a resource (PSI "some"
 * avg10 above a threshold for several ticks), cap the busiest noisy target's CPU bandwidth, AIMD style:
 *
 *   - pressured for `triggerTicks` ticks → multiplicative decrease of its quota (never below `floorCpus`);
 *   - not pressured → additive increase of every capped target's quota, one `increaseStepCpus` at a time;
 *   - not pressured for `calmTicks` ticks, or an increase that would reach the original → restore the original
 *     (often unlimited).
 *
 * A decrease starts from what the target actually used in the window when that is below its quota, so the first cut
 * bites even when the quota was unlimited (which reads as every CPU of the host).
 *
 * While pressured, each capped target is reported as held (`DecideInput.hold`, cause `pressured`), so `status` and
 * the API say why a cap is still in place.
 *
 * Like every rule here it keeps no state: streaks come from the history the engine passes in. PSI arrives as
 * `snapshot.host.psi.{cpu,memory,io}.someAvg10` and `targets[name].psi.{cpu,memory,io}.someAvg10`, in percent.
 */
import type { PressureBackoffPolicy } from '../../config/types.js';
import type { TickSnapshot } from '../../core/types.js';
import { restoreNudge, type DecideInput, type Objective, type Strategy, type StrategyNudge, type StrategyTarget } from '../strategy.js';
import { cmp, recallNothing, recallSignal, streak } from './common.js';

type Report = NonNullable<DecideInput['hold']>;

export const PRESSURE_BACKOFF_RULE = 'pressure-backoff';
/** The action this rule drives; its knob is `quotaCpus` (and `unlimited` 0/1 when read). */
export const PRESSURE_BACKOFF_ACTION = 'pressure_backoff';

export type Resource = 'cpu' | 'memory' | 'io';
const RESOURCES: readonly Resource[] = ['cpu', 'memory', 'io'];

/** One PSI reading: where it was measured ('host' or a protect target's name), on what, how much (percent). */
export interface Pressure {
  source: string;
  resource: Resource;
  value: number;
}

/** Quotas are proposed in hundredths of a CPU: finer steps would be noise in the kernel's own accounting. */
function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** The quota after one decrease from `base` CPUs: base × decreaseFactor, never below the floor. */
export function decreaseQuota(base: number, policy: Pick<PressureBackoffPolicy, 'decreaseFactor' | 'floorCpus'>): number {
  return Math.max(policy.floorCpus, round2(base * policy.decreaseFactor));
}

/** The quota after one increase: current + increaseStepCpus. */
export function increaseQuota(current: number, policy: Pick<PressureBackoffPolicy, 'increaseStepCpus'>): number {
  return round2(current + policy.increaseStepCpus);
}

function psiValue(block: unknown, resource: Resource): number | undefined {
  if (typeof block !== 'object' || block === null) return undefined;
  const r = (block as Record<string, unknown>)[resource];
  if (typeof r !== 'object' || r === null) return undefined;
  const v = (r as Record<string, unknown>).someAvg10;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Every PSI reading in a snapshot that the rule watches: the host's and each protect target's. */
export function pressures(snapshot: TickSnapshot, protect: readonly string[]): Pressure[] {
  const out: Pressure[] = [];
  const sources: [string, unknown][] = [['host', snapshot.host?.psi], ...protect.map((n): [string, unknown] => [n, snapshot.targets[n]?.psi])];
  for (const [source, block] of sources) {
    for (const resource of RESOURCES) {
      const value = psiValue(block, resource);
      if (value !== undefined) out.push({ source, resource, value });
    }
  }
  return out;
}

/** The highest reading; ties go to the host, then cpu before memory before io, then by name. */
export function worstPressure(snapshot: TickSnapshot, protect: readonly string[]): Pressure | undefined {
  let worst: Pressure | undefined;
  for (const p of pressures(snapshot, protect)) if (worst === undefined || p.value > worst.value) worst = p;
  return worst;
}

function describe(p: Pressure): string {
  return `${p.source} ${p.resource} PSI some avg10 ${fmtPct(p.value)}`;
}

function fmtPct(x: number): string {
  return `${String(Number(x.toFixed(1)))}%`;
}

function fmtCpus(x: number): string {
  return `${String(Number(x.toFixed(2)))} CPU${x === 1 ? '' : 's'}`;
}

interface Quota {
  quotaCpus: number;
  unlimited: boolean;
}

function quotaOf(values: Record<string, number> | undefined): Quota | undefined {
  const q = values?.quotaCpus;
  if (q === undefined || !Number.isFinite(q) || q <= 0) return undefined;
  return { quotaCpus: q, unlimited: values?.unlimited === 1 };
}

function showQuota(q: Quota): string {
  return q.unlimited ? 'unlimited' : fmtCpus(q.quotaCpus);
}

export class PressureBackoffRule implements Strategy {
  readonly name = PRESSURE_BACKOFF_RULE;
  readonly historyTicks: number;
  readonly #policy: PressureBackoffPolicy;

  constructor(policy: PressureBackoffPolicy) {
    this.#policy = policy;
    this.historyTicks = Math.max(policy.triggerTicks, policy.calmTicks) - 1;
  }

  /** Streaks look back at the host's and the protect targets' PSI only. */
  recall(snapshot: TickSnapshot): TickSnapshot {
    if (!this.#policy.enabled) return recallNothing(snapshot);
    return recallSignal(snapshot, 'psi', (t) => t.role === 'protect', 'psi');
  }

  decide(input: DecideInput): StrategyNudge[] {
    const p = this.#policy;
    if (!p.enabled) return [];
    const protect = input.targets.filter((t) => t.role === 'protect').map((t) => t.name);
    const noisy = input.targets.filter((t) => t.role === 'noisy');
    const hot = (s: TickSnapshot): boolean => (worstPressure(s, protect)?.value ?? 0) > p.psiSomeAvg10Threshold;

    const hotTicks = streak(input, p.triggerTicks, hot);
    // While pressured a cap in place stays, whether the rule lowers another one or waits for more evidence: said as
    // one hold for the whole stretch of pressure, not one per tick or per step.
    if (hotTicks > 0 && input.hold !== undefined) this.#holdPressured(input, input.hold, worstPressure(input.snapshot, protect)!, noisy);
    if (hotTicks >= p.triggerTicks) return this.#decrease(input, worstPressure(input.snapshot, protect)!, hotTicks, noisy);
    // Pressured, but not for long enough: hold whatever is in place.
    if (hotTicks > 0) return [];

    const held = noisy.filter((t) => input.changed(t.name, PRESSURE_BACKOFF_ACTION)).sort((a, b) => cmp(a.name, b.name));
    if (held.length === 0) return [];
    const calmTicks = streak(input, p.calmTicks, (s) => !hot(s));
    const worstNow = worstPressure(input.snapshot, protect);
    if (calmTicks >= p.calmTicks) {
      const why =
        `calm: no PSI some avg10 above ${fmtPct(p.psiSomeAvg10Threshold)} for ${calmTicks} ticks` +
        (worstNow !== undefined ? ` (worst now ${describe(worstNow)})` : '');
      return held.map((t) => this.#restore(input, t, why, { calmTicks }));
    }
    return held.flatMap((t) => this.#increase(input, t, worstNow, calmTicks));
  }

  /** Reports each capped noisy target as held while pressure lasts; the words are made only when one is capped. */
  #holdPressured(input: DecideInput, report: Report, worst: Pressure, noisy: StrategyTarget[]): void {
    const p = this.#policy;
    let reason: string | undefined;
    for (const t of noisy) {
      if (!input.changed(t.name, PRESSURE_BACKOFF_ACTION)) continue;
      reason ??= `${describe(worst)} > ${fmtPct(p.psiSomeAvg10Threshold)}: the quota is given back only once no PSI some avg10 is above it`;
      report({
        action: PRESSURE_BACKOFF_ACTION,
        target: t.name,
        rule: PRESSURE_BACKOFF_RULE,
        cause: 'pressured',
        reason,
        evidence: { psiSomeAvg10: worst.value, threshold: p.psiSomeAvg10Threshold },
      });
    }
  }

  #decrease(input: DecideInput, worst: Pressure, hotTicks: number, noisy: StrategyTarget[]): StrategyNudge[] {
    const p = this.#policy;
    const windowUs = input.snapshot.windowMs * 1000;
    const rows = noisy.map((t) => {
      const s = input.snapshot.targets[t.name];
      const oncpu = s?.runqlat?.oncpuUs;
      const usage = oncpu !== undefined && Number.isFinite(oncpu) && windowUs > 0 ? oncpu / windowUs : undefined;
      return { name: t.name, usage, ownPsi: psiValue(s?.psi, worst.resource) };
    });
    // With activity data, only a target that did something can be the offender; without any, every noisy target is
    // a suspect (the config named them), taken in name order.
    const anyData = rows.some((r) => r.usage !== undefined || r.ownPsi !== undefined);
    const suspects = rows
      .filter((r) => !anyData || (r.usage ?? 0) > 0 || (r.ownPsi ?? 0) > 0)
      .sort((a, b) => (b.usage ?? 0) - (a.usage ?? 0) || (b.ownPsi ?? 0) - (a.ownPsi ?? 0) || cmp(a.name, b.name));

    for (const r of suspects) {
      const cur = quotaOf(input.current(r.name, PRESSURE_BACKOFF_ACTION));
      if (cur === undefined) continue;
      const base = r.usage !== undefined && r.usage > 0 ? Math.min(cur.quotaCpus, r.usage) : cur.quotaCpus;
      const to = decreaseQuota(base, p);
      if (to >= cur.quotaCpus) continue; // at the floor already
      const cause = `${describe(worst)} > ${fmtPct(p.psiSomeAvg10Threshold)} for ${hotTicks} ticks`;
      const used = r.usage !== undefined ? ` (${fmtCpus(r.usage)} used)` : '';
      const evidence: Record<string, number> = {
        psiSomeAvg10: worst.value,
        threshold: p.psiSomeAvg10Threshold,
        hotTicks,
        fromQuotaCpus: cur.quotaCpus,
        fromUnlimited: cur.unlimited ? 1 : 0,
        toQuotaCpus: to,
      };
      if (r.usage !== undefined) evidence.usageCpus = r.usage;
      if (r.ownPsi !== undefined) evidence.ownPsiSomeAvg10 = r.ownPsi;
      return [
        {
          kind: 'set',
          action: PRESSURE_BACKOFF_ACTION,
          target: r.name,
          desired: { quotaCpus: to, cause },
          reason: `${cause}; ${r.name} is the busiest noisy target${used}; CPU quota ${showQuota(cur)} → ${fmtCpus(to)}`,
          rule: PRESSURE_BACKOFF_RULE,
          evidence,
          expected: `${worst.source} ${worst.resource} pressure falls below ${fmtPct(p.psiSomeAvg10Threshold)}`,
          objective: { ...decreaseObjective(worst), baselineTicks: p.triggerTicks },
        },
      ];
    }
    return [];
  }

  #increase(input: DecideInput, t: StrategyTarget, worstNow: Pressure | undefined, calmTicks: number): StrategyNudge[] {
    const p = this.#policy;
    const cur = quotaOf(input.current(t.name, PRESSURE_BACKOFF_ACTION));
    // An unlimited quota has nothing to give back; the calm restore settles the journal.
    if (cur === undefined || cur.unlimited) return [];
    const original = quotaOf(input.original?.(t.name, PRESSURE_BACKOFF_ACTION));
    const to = increaseQuota(cur.quotaCpus, p);
    const bar = `no PSI some avg10 above ${fmtPct(p.psiSomeAvg10Threshold)}` + (worstNow !== undefined ? ` (worst now ${describe(worstNow)})` : '');
    if (original !== undefined && to >= original.quotaCpus) {
      return [this.#restore(input, t, `${bar}; one more step reaches the original`, { calmTicks })];
    }
    const evidence: Record<string, number> = {
      threshold: p.psiSomeAvg10Threshold,
      calmTicks,
      fromQuotaCpus: cur.quotaCpus,
      toQuotaCpus: to,
    };
    if (worstNow !== undefined) evidence.psiSomeAvg10 = worstNow.value;
    return [
      {
        kind: 'set',
        action: PRESSURE_BACKOFF_ACTION,
        target: t.name,
        desired: { quotaCpus: to, cause: `${bar}, giving CPU back step by step` },
        reason: `${bar} for ${calmTicks} tick${calmTicks === 1 ? '' : 's'}; giving ${t.name} CPU back: quota ${fmtCpus(cur.quotaCpus)} → ${fmtCpus(to)}`,
        rule: PRESSURE_BACKOFF_RULE,
        evidence,
        expected: `${t.name} uses the CPU given back without pressure returning`,
        // An increase is worth keeping when the capped target uses what it got back.
        objective: { targets: [t.name], metric: 'runqlat.oncpuUs', better: 'higher', unit: 'us', baselineTicks: calmTicks },
      },
    ];
  }

  #restore(input: DecideInput, t: StrategyTarget, why: string, extra: Record<string, number>): StrategyNudge {
    const p = this.#policy;
    const cur = quotaOf(input.current(t.name, PRESSURE_BACKOFF_ACTION));
    const original = quotaOf(input.original?.(t.name, PRESSURE_BACKOFF_ACTION));
    const evidence: Record<string, number> = { threshold: p.psiSomeAvg10Threshold, ...extra };
    if (cur !== undefined) evidence.fromQuotaCpus = cur.quotaCpus;
    if (original !== undefined) {
      evidence.toQuotaCpus = original.quotaCpus;
      evidence.toUnlimited = original.unlimited ? 1 : 0;
    }
    const move = `${cur !== undefined ? showQuota(cur) : '?'} → ${original !== undefined ? showQuota(original) : 'its journaled original'}`;
    return restoreNudge({
      action: PRESSURE_BACKOFF_ACTION,
      target: t.name,
      reason: `${why}; restoring ${t.name} CPU quota ${move}`,
      rule: PRESSURE_BACKOFF_RULE,
      evidence,
      expected: `pressure stays below ${fmtPct(p.psiSomeAvg10Threshold)} with ${t.name} at its original quota`,
    });
  }
}

/**
 * What a decrease should improve. The closed loop reads target signals only, so host pressure is judged on the
 * protect targets: by their run-queue p99 for CPU (which eBPF measures on any cgroup version), by their own PSI
 * for memory and I/O (cgroup v2 only). With no protect target there is nothing to judge by, and the loop reverts.
 */
export function decreaseObjective(worst: Pressure): Objective {
  if (worst.source !== 'host') return { targets: [worst.source], metric: `psi.${worst.resource}.someAvg10`, better: 'lower' };
  if (worst.resource === 'cpu') return { metric: 'runqlat.p99', better: 'lower', unit: 'us' };
  return { metric: `psi.${worst.resource}.someAvg10`, better: 'lower' };
}

