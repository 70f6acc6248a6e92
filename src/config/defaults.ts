/**
 * The built-in configuration: what the agent runs with when a setting (or the whole file) is absent. The schema
 * takes every default from here, so the documented defaults, an empty file and no file at all agree by construction.
 */
import type { Config } from './types.js';

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
    runqlat: { enabled: true, perThread: false },
  },
  targets: [],
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
  },
} satisfies Omit<Config, 'source'>);

/** A fresh, mutable copy of the built-in configuration. */
export function defaultConfig(source: string = BUILT_IN_SOURCE): Config {
  // The clone is what makes the readonly view safe to hand out as mutable.
  return { source, ...(structuredClone(DEFAULTS) as unknown as Omit<Config, 'source'>) };
}
