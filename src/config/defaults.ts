/**
 * The built-in configuration: what the agent runs with when a setting (or the whole file) is absent. The schema
 * takes every default from here, so the documented defaults, an empty file and no file at all agree by construction.
 */
import type { Config, StrategyConfig } from './types.js';

/** Slots a `cgroup_pattern` target reserves for its matches unless `max_matches` says otherwise. */
export const DEFAULT_MAX_MATCHES = 64;

/** The `source` of a configuration that did not come from a file. */
export const BUILT_IN_SOURCE = '<built-in>';

type DeepReadonly<T> = T extends (infer E)[]
  ? readonly DeepReadonly<E>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

function deepFreeze<T>(value: T): DeepReadonly<T> {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value as DeepReadonly<T>;
}

/**
 * Every setting's default, in the camelCase shape the agent uses. Frozen because the schema hands parts of it out
 * as defaults: a caller mutating its Config must never change the next one.
 */
export const DEFAULTS = deepFreeze({
  tickMs: 1000,
  ewmaAlpha: 0.3,
  signals: {
    // attach: auto picks the cheapest variant this kernel takes (tp_btf, else raw_tp; futex: sched_switch, then the syscall hooks).
    runqlat: { enabled: true, perThread: false, attach: 'auto' },
    // No PSI trigger by default: each one makes the kernel sample pressure far more often while stalls last (window/10
    // with CAP_SYS_RESOURCE), and no default rule acts faster than a tick, which reads the same pressure anyway.
    psi: { enabled: true, triggers: [] },
    cgstat: { enabled: true },
    net: { enabled: true, attach: 'auto' },
    futex: { enabled: true, attach: 'auto' },
    blkio: { enabled: true, attach: 'auto' },
  },
  targets: [],
  // No device knob is changed unless its device is named: io_prefetch observes and explains.
  devices: [],
  policy: {
    noisyNeighbor: {
      enabled: true,
      p99ThresholdUs: 4000,
      triggerTicks: 2,
      calmTicks: 10,
      calmFraction: 0.5,
      stepFraction: 0.5,
      minWeight: 10,
      maxNoisyPerStep: 1,
    },
    pressureBackoff: {
      enabled: true,
      psiSomeAvg10Threshold: 20,
      triggerTicks: 3,
      calmTicks: 30,
      decreaseFactor: 0.5,
      increaseStepCpus: 0.25,
      floorCpus: 0.2,
    },
    ioPrefetch: {
      enabled: true,
      seqRatioThreshold: 0.8,
      maxRequestKb: 64,
      minIosPerS: 50,
      triggerTicks: 3,
      calmTicks: 10,
      readAheadKb: 1024,
      prefetchMb: 0,
    },
    cpusetSpread: {
      enabled: true,
      mode: 'affinity',
      minPileup: 2,
      idleBelow: 0.5,
      triggerTicks: 3,
      calmTicks: 30,
      pinCpus: '',
    },
    numaRebalance: {
      enabled: true,
      move: 'cpus',
      remoteThreshold: 0.5,
      dominance: 0.75,
      calmFraction: 0.8,
      minMemoryMb: 64,
      triggerTicks: 5,
      calmTicks: 30,
      sampleTicks: 5,
    },
  },
  guardrails: {
    cooldownMs: 3000,
    maxChangesPerMinute: 30,
    denyCgroups: [],
  },
  closedLoop: {
    windowTicks: 5,
    margin: 0.1,
    penaltyMs: 300_000,
    significance: 0.05,
    warmupTicks: 2,
  },
} satisfies Omit<Config, 'source'>);

/**
 * The strategy section's defaults. Kept out of DEFAULTS because a config without the section carries none: the
 * default rule stays in charge until the learner is asked for.
 */
export const DEFAULT_STRATEGY = deepFreeze({
  kind: 'heuristic',
  canaryTargets: [],
  seed: 1,
  exploration: { scale: 1, decay: 0.98, minScale: 0.05 },
} satisfies StrategyConfig);

/** A fresh, mutable copy of the built-in configuration. */
export function defaultConfig(source: string = BUILT_IN_SOURCE): Config {
  // The clone is what makes the readonly view safe to hand out as mutable.
  return { source, ...(structuredClone(DEFAULTS) as unknown as Omit<Config, 'source'>) };
}
