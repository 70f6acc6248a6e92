/**
 * The shapes the HTTP server needs from the rest of the agent. The server sees the agent only through these and the
 * event bus, so it can be tested against a fake and never reaches into the engine's internals.
 */
import type { AuditRecord } from '../audit/audit.js';
import type { Hold } from '../engine/holds.js';
import type { KnobState } from '../journal/journal.js';

/**
 * One row of `AgentControl.changes()`: a knob the agent changed, as the journal holds it now. A knob that vanished
 * shows as restored: nothing of ours is left in it.
 */
export interface KnobChange {
  knobId: string;
  target: string;
  action: string;
  /** Absolute path of the file written. */
  path: string;
  /** The value journaled before the first write; what a revert restores. */
  original: string;
  value: string;
  state: Exclude<KnobState, 'vanished'>;
  /** When the knob was last written or restored, ms since the epoch. */
  time?: number;
}

export interface TargetInfo {
  name: string;
  role: string;
}

/** Cumulative kernel counters of one BPF program (bpf_prog_info run_time_ns / run_cnt; zero unless bpf_stats_enabled). */
export interface ProgramStats {
  name: string;
  runTimeNs: number;
  runCnt: number;
}

/** What the agent lets the HTTP server read and do. Every method is synchronous and cheap: it runs on a request. */
export interface AgentControl {
  paused(): boolean;
  pause(): void;
  resume(): void;
  /** Restore one knob to its journaled original. False when no change with that id is in effect. */
  revert(knobId: string): boolean;
  /** Every change the agent made that is still in effect (and recently restored or overridden ones, marked so). */
  changes(): KnobChange[];
  targets(): TargetInfo[];
  /** True once signals are attached and the first tick has been taken. */
  ready(): boolean;
  /**
   * The agent's lifecycle state now (starting, ready, stopping, stopped). Asked, not only heard on the lifecycle
   * channel: the server starts after the agent, so it never hears the agent become ready.
   */
  state?(): string;
  programStats(): ProgramStats[];
  /** Names of the actions a decision can carry, so their decision counters exist at 0 before the first one. */
  actions?(): readonly string[];
  /**
   * One decision from the audit trail and the later decisions that refer to it (verdict, revert), as `explain ID`
   * reads them; undefined when there is no such decision. Without this method the server answers from the decisions
   * it heard on the bus.
   */
  decision?(id: string): { decision: AuditRecord; related: AuditRecord[] } | undefined;
  /**
   * The changes a strategy keeps in effect on purpose, with why and since when, as of the last tick (engine/holds.ts).
   * Absent: the agent reports none.
   */
  holds?(): Hold[];
  /** Advice published for cooperating applications (e.g. pressure_backoff's concurrency hints), by target. */
  hints?(): Record<string, unknown>;
}
