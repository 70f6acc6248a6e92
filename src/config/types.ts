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
  /** A file holding the pid (re-read as the process restarts). */
  pidfile?: string;
  /** Every process whose /proc/<pid>/comm equals this (followed as processes come and go). */
  comm?: string;
  /** Also every descendant of the matched processes. */
  children?: boolean;
  /**
   * Every cgroup matching this glob (wildcards within path components) is a target of its own, named
   * `<name>/<path below the pattern's fixed prefix>`; matches are picked up and let go of as cgroups come and go.
   */
  cgroupPattern?: string;
  /** Slots reserved for the pattern's matches; a match beyond them is reported and left out. */
  maxMatches?: number;
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

export interface PressureBackoffPolicy {
  enabled: boolean;
  /** PSI "some" avg10 (percent of time, 0–100) of the host or a protect target above this counts as a pressured tick. */
  psiSomeAvg10Threshold: number;
  /** Consecutive pressured ticks before lowering the offender's CPU quota. */
  triggerTicks: number;
  /** Consecutive unpressured ticks before putting the original quota back. */
  calmTicks: number;
  /** Each decrease multiplies the quota by this (0 < f < 1). */
  decreaseFactor: number;
  /** Each increase while unpressured adds this many CPUs. */
  increaseStepCpus: number;
  /** The quota is never lowered below this many CPUs. */
  floorCpus: number;
}

export interface IoPrefetchPolicy {
  enabled: boolean;
  /** Fraction of a target's reads that continue where the previous one ended, for its reads to count as a stream. */
  seqRatioThreshold: number;
  /** A stream's mean request at or below this many KiB counts as small. */
  maxRequestKb: number;
  /** A stream needs at least this many requests per second. */
  minIosPerS: number;
  /** Consecutive ticks of small sequential reads before raising read-ahead. */
  triggerTicks: number;
  /** Consecutive ticks without a sequential stream before putting read-ahead back. */
  calmTicks: number;
  /** The device's read_ahead_kb while the stream lasts. */
  readAheadKb: number;
  /** Pre-read this many MiB of the streamed files per raise; 0 turns pre-reading off. */
  prefetchMb: number;
}

export interface CpusetSpreadPolicy {
  enabled: boolean;
  /** How to spread: 'affinity' sets each thread's CPU affinity, 'cpuset' the target's cpuset.cpus. */
  mode: 'affinity' | 'cpuset';
  /** Runnable threads on one CPU that make a pile-up (≥ 2). */
  minPileup: number;
  /** A CPU busy for less than this fraction of the window counts as idle (0 < x ≤ 1). */
  idleBelow: number;
  /** Consecutive pile-up ticks before spreading. */
  triggerTicks: number;
  /** Consecutive ticks with fewer runnable threads than minPileup before restoring the original placement. */
  calmTicks: number;
  /** A CPU list (e.g. "2-3"): when set, a pile-up pins the target to exactly these CPUs instead of spreading it. */
  pinCpus: string;
}

export interface NumaRebalancePolicy {
  enabled: boolean;
  /** 'cpus' moves the target's CPUs to its memory (cpuset.cpus); 'memory' its memory to its CPUs (cpuset.mems, migrate_pages). */
  move: 'cpus' | 'memory';
  /** Expected share of remote memory accesses at or above which a tick counts as "memory far from its CPUs". */
  remoteThreshold: number;
  /** Share of the target's memory one node must hold to be its home node. */
  dominance: number;
  /** Calm (restore) when the home node's share falls below dominance × calmFraction. */
  calmFraction: number;
  /** Targets with less memory than this (MiB) are left alone. */
  minMemoryMb: number;
  triggerTicks: number;
  calmTicks: number;
  /** numa_maps is read every this many ticks (it walks every mapped page). */
  sampleTicks: number;
}

/** A PSI trigger: wake the agent when `kind` stall on `resource` reaches stallUs within any windowUs. */
export interface PsiTriggerConfig {
  resource: 'cpu' | 'memory' | 'io';
  kind: 'some' | 'full';
  stallUs: number;
  windowUs: number;
  /** A cgroup v2 target whose own <resource>.pressure is watched; host-wide (/proc/pressure) when absent. */
  target?: string;
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
  /** Largest one-sided p-value of the rank test at which a change counts as shown to help. */
  significance: number;
  /** Ticks after start-up that never serve as a baseline; no forward change before warm-up plus one full window. */
  warmupTicks: number;
}

/** Which strategy decides: the default rule alone, the learner alone, or the learner beside the rule. */
export type StrategyKind = 'heuristic' | 'learned' | 'shadow' | 'canary';

export interface StrategyConfig {
  kind: StrategyKind;
  /** For kind canary: the targets the learner may act on; elsewhere it only reports what it would do. */
  canaryTargets: string[];
  /** Seed of the learner's random draws, so runs and tests replay. */
  seed: number;
  exploration: {
    /** Spread of the learner's draws, in posterior standard deviations, before it has learned anything. */
    scale: number;
    /** Multiplies the spread once per outcome learned. */
    decay: number;
    /** The spread never falls below this. */
    minScale: number;
  };
}

export interface Config {
  /** Where the config came from, for error messages; '<built-in>' for the default. */
  source: string;
  tickMs: number;
  /** EWMA smoothing factor for per-tick statistics, 0 < alpha ≤ 1. */
  ewmaAlpha: number;
  signals: {
    runqlat: { enabled: boolean; perThread: boolean; attach: 'auto' | 'tp_btf' | 'raw_tp' };
    psi: { enabled: boolean; triggers: PsiTriggerConfig[] };
    cgstat: { enabled: boolean };
    net: { enabled: boolean; attach: 'auto' | 'tp_btf' | 'raw_tp' };
    futex: { enabled: boolean; attach: 'auto' | 'sched_switch' | 'sched_switch_raw' | 'tracepoint' | 'tp_btf' | 'raw_tp' };
    blkio: { enabled: boolean; attach: 'auto' | 'tp_btf' | 'raw_tp' };
  };
  targets: TargetConfig[];
  /**
   * Block devices (`sda`, `/dev/nvme0n1`, `8:0`) whose queue knobs the agent may change; empty: none. A device knob
   * is shared by everything on the device, so it needs this scope of its own beside the targets.
   */
  devices: string[];
  policy: { noisyNeighbor: NoisyNeighborPolicy; pressureBackoff: PressureBackoffPolicy; ioPrefetch: IoPrefetchPolicy; cpusetSpread: CpusetSpreadPolicy; numaRebalance: NumaRebalancePolicy };
  guardrails: GuardrailsConfig;
  closedLoop: ClosedLoopConfig;
  /** Absent when the file has no strategy section: DEFAULT_STRATEGY applies (the default rule alone). */
  strategy?: StrategyConfig;
}
