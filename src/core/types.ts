/**
 * The small contracts every part of the agent is written against. The orchestrator treats every signal and every
 * action alike through these; it never branches on a name.
 */
import type { Logger } from './log.js';

export type Role = 'protect' | 'noisy';

/** A target after config validation and resolution against the live system. */
export interface Target {
  /** Stable name from the config; the key for metrics, JSON and logs. */
  name: string;
  role: Role;
  /** Index into the kernel-side per-target arrays (0..MAX_TARGETS-1). */
  slot: number;
  scope:
    | { kind: 'cgroup'; path: string; version: 1 | 2; id: bigint }
    | { kind: 'pids'; pids: number[]; source?: ProcessSource };
}

/** A log2 histogram: counts[i] holds values in [2^i, 2^(i+1)) (counts[0] also holds 0). Units are the signal's. */
export interface Log2Histogram {
  counts: number[];
  total: number;
  sum: number;
}

/**
 * A log2 histogram of everything seen since the signal started, in µs: counts[i] holds values in [2^i, 2^(i+1)) µs,
 * counts[0] also holds 0, and the last bucket holds everything above. `sum` is the exact total in µs. Exported as a
 * Prometheus histogram, whose buckets must be cumulative since start.
 */
export interface CumulativeHistogram {
  counts: number[];
  count: number;
  sumUs: number;
}

/** Windowed statistics of one latency-like quantity, in microseconds unless the field name says otherwise. */
export interface LatencyStats {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  /** EWMA of p99 across ticks. */
  p99Ewma: number;
}

/** How a process target finds its processes again as they come and go (re-resolved every few ticks). */
export interface ProcessSource {
  pids?: number[];
  pidfile?: string;
  comm?: string;
  children?: boolean;
}

/**
 * What one tick's worth of signals says about one target. Signals fill in the parts they own, and each declares its
 * part beside itself (`declare module` in src/signals/<name>/<name>.ts), so this type lists every signal in the
 * program. Other keys (a recording from another version) are possible and untyped.
 */
export interface TargetSignals {
  name: string;
  role: Role;
  [signal: string]: unknown;
}

/** What one tick's worth of signals says about the whole host, by signal; declared like TargetSignals. */
export interface HostSignals {
  [signal: string]: unknown;
}

export interface TickSnapshot {
  /** Wall clock, ms since the epoch. */
  time: number;
  /** Window length this snapshot covers, ms. */
  windowMs: number;
  targets: Record<string, TargetSignals>;
  /** Host-wide windows by signal name, from each signal's hostWindow(). */
  host?: HostSignals;
}

/**
 * The kernel side's per-target arrays, sized once at start: slots 0..slots-1 belong to targets (a pattern target owns
 * a range of them, for the cgroups it may match later), slot `slots` aggregates the host. `cgroups`/`pids` say which
 * membership maps the programs consult — set when any target may ever need them, not only when one does now.
 */
export interface SlotCapacity {
  slots: number;
  cgroups: boolean;
  pids: boolean;
}

export interface SignalContext {
  log: Logger;
  targets: Target[];
  /** Slots reserved for targets; derived from `targets` when absent (a fixed set). */
  capacity?: SlotCapacity;
  /** Cgroup mode of the host, which decides how the kernel side reads a task's cgroup id. */
  cgroupVersion: 1 | 2;
}

/**
 * A signal: open/attach → collect(now) → close(). `collect` reads its kernel aggregates in bulk and writes its
 * part of each target's TargetSignals. `close` is idempotent.
 */
export interface Signal {
  readonly name: string;
  start(ctx: SignalContext): Promise<void> | void;
  /** Targets changed (a process came or went): update the kernel-side membership maps. */
  updateTargets?(targets: Target[]): void;
  collect(now: number, out: Record<string, TargetSignals>): void;
  /**
   * For signals that can see a spike before the next tick (PSI triggers): call `fn` to have the agent tick now.
   * Returns a function that unregisters it.
   */
  onWake?(fn: (reason: string) => void): (() => void) | undefined;
  /** The host-wide window of the last collect, for signals that also aggregate the whole host. */
  hostWindow?(): unknown;
  /** The BPF programs this signal has attached, for per-program cost (run_time_ns / run_cnt). */
  programs?(): { name: string; fd: number }[];
  close(): void;
}

/** One file (or other setting) an action may change. `id` is unique and stable across runs. */
export interface KnobRef {
  id: string;
  /** Absolute path of the file written, for audit and scope checks. */
  path: string;
  target: string;
}

/** What every nudge carries, whichever way it moves the knob. */
interface NudgeBase {
  action: string;
  target: string;
  reason: string;
  /** The rule or strategy that proposed it. */
  rule: string;
  /** The signal values that triggered it, for audit and explain. */
  evidence: Record<string, number>;
}

/** Moves a knob somewhere new. Guardrails hold it to its action's bounds, step limits, cooldown and budget. */
export interface SetNudge extends NudgeBase {
  kind: 'set';
  /** Action-specific desired value, e.g. { weight: 50 }; a string where a number cannot say it (a CPU list). */
  desired: Record<string, number | string>;
}

/**
 * Puts back a value the knob held before: its original, or the value before a step the closed loop reverts. Always
 * allowed, as it moves toward what the administrator set.
 */
export interface RestoreNudge extends NudgeBase {
  kind: 'restore';
  /**
   * The values to put back, in the action's units, when the proposer knows them (a step back rather than all the way).
   * Absent: the action puts back the journaled original itself, which also ends its journal entries.
   */
  desired?: Record<string, number>;
}

/** One change a strategy asks for; `kind` says which way, so no value has to double as a marker. */
export type Nudge = SetNudge | RestoreNudge;
