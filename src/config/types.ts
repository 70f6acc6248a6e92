/**
 * The validated configuration, as the rest of the agent sees it (camelCase). The YAML file uses snake_case keys;
 * `schema.ts` is the one place that maps and validates one into the other.
 */
import type { Role } from '../core/types.js';

export interface TargetConfig {
  name: string;
  role: Role;
  /** Absolute path of a cgroup directory (v1: under a controller mount such as /sys/fs/cgroup/cpu; v2: the unified tree). */
  cgroup?: string;
  pids?: number[];
}

export interface NoisyNeighborPolicy {
  enabled: boolean;
  /** A protect target's run-queue p99 above this (µs) counts as a hot tick. */
  p99ThresholdUs: number;
  /** Consecutive hot ticks before acting. */
  triggerTicks: number;
  /** Consecutive calm ticks (p99 below threshold × calmFraction) before restoring. */
  calmTicks: number;
  calmFraction: number;
  /** Each step multiplies the noisy target's weight by (1 - stepFraction). */
  stepFraction: number;
  /** Floor for the noisy target's weight, in cgroup v2 cpu.weight units (1..10000). */
  minWeight: number;
  /** How many of the busiest noisy targets to lower per step. */
  maxNoisyPerStep: number;
}

export interface GuardrailsConfig {
  /** Minimum time between two changes to the same target, ms. */
  cooldownMs: number;
  /** Global budget: at most this many knob changes in any 60 s window. */
  maxChangesPerMinute: number;
  /** Cgroup paths (and their subtrees) that are never written. The root cgroups are always denied. */
  denyCgroups: string[];
}

export interface ClosedLoopConfig {
  /** Ticks compared before and after a change. */
  windowTicks: number;
  /** Minimum relative improvement of the protected metric to keep a change (0.1 = 10%). */
  margin: number;
  /** How long a reverted (rule, target) pair is not tried again, ms. */
  penaltyMs: number;
}

export interface Config {
  /** Where the config came from, for error messages; '<built-in>' for the default. */
  source: string;
  tickMs: number;
  /** EWMA smoothing factor for per-tick statistics, 0 < alpha ≤ 1. */
  ewmaAlpha: number;
  signals: {
    runqlat: { enabled: boolean; perThread: boolean };
  };
  targets: TargetConfig[];
  policy: { noisyNeighbor: NoisyNeighborPolicy };
  guardrails: GuardrailsConfig;
  closedLoop: ClosedLoopConfig;
}
