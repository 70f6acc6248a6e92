/**
 * The learner's view of a tick: a short vector of numbers, each scaled to about [0, 1], that says which kind of
 * trouble the protect targets are in. Every signal contributes a group with a `present` bit, so a signal that is
 * not enabled (or not built yet) reads as "unknown" rather than as "low": the model learns a separate weight for
 * the bit and never mistakes a missing signal for a calm one.
 *
 * Groups are pluggable (LearnerOptions.features): a new signal adds one FeatureGroup. The model file records the
 * feature names, so a changed list is mapped by name on load rather than misread.
 */
import type { TickSnapshot } from '../../core/types.js';
import type { PsiResources } from '../../signals/psi/psi.js';

export interface FeatureContext {
  readonly snapshot: TickSnapshot;
  /** Protect targets, worst run-queue p99 first. */
  readonly protect: readonly string[];
  readonly noisy: readonly string[];
  readonly p99ThresholdUs: number;
}

export interface FeatureGroup {
  /** Prefix of the group's feature names, e.g. 'psi'. */
  readonly name: string;
  /** One name per value `read` returns, e.g. ['cpu', 'memory', 'io']. */
  readonly features: readonly string[];
  /** The values, each about [0, 1], or undefined when the signal has no data in this tick. */
  read(ctx: FeatureContext): readonly number[] | undefined;
}

export const BIAS_FEATURE = 'bias';

/** A feature vector with the names of its entries; names[i] labels values[i]. */
export interface Features {
  readonly names: readonly string[];
  readonly values: Float64Array;
}

export function featureNames(groups: readonly FeatureGroup[]): string[] {
  const names = [BIAS_FEATURE];
  for (const g of groups) {
    names.push(`${g.name}.present`);
    for (const f of g.features) names.push(`${g.name}.${f}`);
  }
  return names;
}

export function extractFeatures(groups: readonly FeatureGroup[], ctx: FeatureContext, names = featureNames(groups)): Features {
  const values = new Float64Array(names.length);
  values[0] = 1;
  let i = 1;
  for (const g of groups) {
    let v: readonly number[] | undefined;
    try {
      v = g.read(ctx);
    } catch {
      // A malformed signal block is treated like a missing one: the learner must not fail a tick over it.
      v = undefined;
    }
    const ok = v !== undefined && v.length === g.features.length && v.every(Number.isFinite);
    values[i++] = ok ? 1 : 0;
    for (let k = 0; k < g.features.length; k++) values[i++] = ok ? clamp01(v![k]!) : 0;
  }
  return { names, values };
}

// ---- the default groups -------------------------------------------------------------------------------------------

/** Run-queue latency of the worst protect target, and the protect targets' share of the on-CPU time. */
export const runqlatGroup: FeatureGroup = {
  name: 'runqlat',
  features: ['severity', 'protectShare'],
  read(ctx) {
    let worst: number | undefined;
    for (const n of ctx.protect) {
      const q = ctx.snapshot.targets[n]?.runqlat;
      if (q !== undefined && q.count > 0 && (worst === undefined || q.p99 > worst)) worst = q.p99;
    }
    if (worst === undefined) return undefined;
    // log2 of how many times the threshold: 1× → 0, 8× → 1.
    const severity = ctx.p99ThresholdUs > 0 && worst > 0 ? Math.log2(worst / ctx.p99ThresholdUs) / 3 : 0;
    let mine = 0;
    let all = 0;
    for (const t of Object.values(ctx.snapshot.targets)) {
      const on = t.runqlat?.oncpuUs;
      if (typeof on !== 'number' || !(on > 0)) continue;
      all += on;
      if (t.role === 'protect') mine += on;
    }
    return [severity, all > 0 ? mine / all : 0];
  },
};

/** Time the protect targets' threads spent waiting on futexes, per second of window, saturating at 1. */
export const futexGroup: FeatureGroup = {
  name: 'futex',
  features: ['wait'],
  read(ctx) {
    let waitS: number | undefined;
    for (const n of ctx.protect) {
      const us = finite(ctx.snapshot.targets[n]?.futex?.waitUs);
      if (us !== undefined) waitS = (waitS ?? 0) + us / 1e6;
    }
    if (waitS === undefined) return undefined;
    const windowS = ctx.snapshot.windowMs > 0 ? ctx.snapshot.windowMs / 1000 : 1;
    return [1 - Math.exp(-waitS / windowS)];
  },
};

const PSI_RESOURCES = ['cpu', 'memory', 'io'] as const;

/**
 * PSI "some" avg10 per resource, as a fraction: the worst protect target's own (cgroup v2) where it has one,
 * else the host's. Missing resources inside a present block read 0.
 */
export const psiGroup: FeatureGroup = {
  name: 'psi',
  features: PSI_RESOURCES,
  read(ctx) {
    const sources: (PsiResources | undefined)[] = [...ctx.protect.map((n) => ctx.snapshot.targets[n]?.psi), ctx.snapshot.host?.psi];
    for (const src of sources) {
      if (src === undefined) continue;
      const vals = PSI_RESOURCES.map((r) => finite(src[r]?.someAvg10));
      if (vals.every((v) => v === undefined)) continue;
      return vals.map((v) => (v ?? 0) / 100);
    }
    return undefined;
  },
};

/** How idle the host's CPUs were over the window: 1 − mean busy fraction (the placement signal's host part). */
export const cpusGroup: FeatureGroup = {
  name: 'cpus',
  features: ['idle'],
  read(ctx) {
    const busy = ctx.snapshot.host?.placement?.cpus;
    if (!Array.isArray(busy)) return undefined;
    const vals = busy.filter((v) => finite(v) !== undefined);
    if (vals.length === 0) return undefined;
    return [1 - vals.reduce((a, b) => a + b, 0) / vals.length];
  },
};

/**
 * Where the worst protect target's runnable threads sit (the placement signal): `pileup` is the share of its
 * runnable threads beyond the first that queue on one CPU (0 spread out, 1 all on one), `idleAllowed` the share
 * of the CPUs it may use that sat idle. Both high is the case spreading fixes.
 */
export const placementGroup: FeatureGroup = {
  name: 'placement',
  features: ['pileup', 'idleAllowed'],
  read(ctx) {
    for (const n of ctx.protect) {
      const b = ctx.snapshot.targets[n]?.placement;
      const runnable = finite(b?.runnable);
      const pile = finite(b?.pileup);
      if (runnable === undefined || pile === undefined) continue;
      const allowed = finite(b?.allowedCpus) ?? 0;
      const idle = finite(b?.idleCpus) ?? 0;
      return [runnable >= 2 ? (pile - 1) / (runnable - 1) : 0, allowed > 0 ? idle / allowed : 0];
    }
    return undefined;
  },
};

export const DEFAULT_FEATURE_GROUPS: readonly FeatureGroup[] = [runqlatGroup, futexGroup, psiGroup, cpusGroup, placementGroup];

/** The value when it is a finite number (a recording from another version may hold anything), else undefined. */
function finite(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}
