/**
 * The built-in configuration: what the agent runs with when a setting (or the whole file) is absent. Every default
 * is declared in the schema; these are that schema's answers for an empty document, so the documented defaults, an
 * empty file and no file at all agree by construction.
 */
import { configSchema } from './schema.js';
import type { Config, StrategyConfig } from './types.js';

export { DEFAULT_MAX_MATCHES } from './schema.js';

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

/** A fresh, mutable copy of the built-in configuration. */
export function defaultConfig(source: string = BUILT_IN_SOURCE): Config {
  return { source, ...configSchema.parse({}) };
}

/**
 * Every setting's default, in the camelCase shape the agent uses. Frozen so that code reading it can never change
 * what the next reader sees.
 */
export const DEFAULTS = deepFreeze(configSchema.parse({}));

/**
 * The strategy section's defaults. Kept out of DEFAULTS because a config without the section carries none: the
 * default rule stays in charge until the learner is asked for.
 */
export const DEFAULT_STRATEGY: DeepReadonly<StrategyConfig> = deepFreeze(strategyDefaults());

function strategyDefaults(): StrategyConfig {
  const { strategy } = configSchema.parse({ strategy: {} });
  if (strategy === undefined) throw new Error('the schema dropped an empty strategy section');
  return strategy;
}
