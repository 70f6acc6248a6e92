/**
 * The validated configuration, as the rest of the agent sees it (camelCase). Every type here is inferred from the
 * one declaration in `schema.ts`; the YAML file spells the same keys in snake_case.
 */
import type { z } from 'zod';
import type { configSchema } from './schema.js';

type Settings = z.output<typeof configSchema>;

export interface Config extends Settings {
  /** Where the config came from, for error messages; '<built-in>' for the default. */
  source: string;
}

export type TargetConfig = Config['targets'][number];
/** A PSI trigger: wake the agent when `kind` stall on `resource` reaches stallUs within any windowUs. */
export type PsiTriggerConfig = Config['signals']['psi']['triggers'][number];
export type NoisyNeighborPolicy = Config['policy']['noisyNeighbor'];
export type PressureBackoffPolicy = Config['policy']['pressureBackoff'];
export type IoPrefetchPolicy = Config['policy']['ioPrefetch'];
export type CpusetSpreadPolicy = Config['policy']['cpusetSpread'];
export type NumaRebalancePolicy = Config['policy']['numaRebalance'];
export type GuardrailsConfig = Config['guardrails'];
export type ClosedLoopConfig = Config['closedLoop'];
/** The learner's settings; absent from a Config without a strategy section (DEFAULT_STRATEGY applies). */
export type StrategyConfig = NonNullable<Config['strategy']>;
/** Which strategy decides: the default rule alone, the learner alone, or the learner beside the rule. */
export type StrategyKind = StrategyConfig['kind'];
