/**
 * The one event bus. Producers publish on `tuner:<area>:<event>` channels; the metrics exporter, the dashboard,
 * the audit log and tests subscribe instead of reaching into internals. diagnostics_channel costs nothing when
 * nobody subscribes (`hasSubscribers` is checked before building a message).
 */
import diagnostics_channel from 'node:diagnostics_channel';
import type { Verdict } from '../engine/closed-loop.js';
import type { HoldChange } from '../engine/holds.js';

export const channels = {
  /** One per tick: every target's windowed signals. Payload: TickSnapshot. */
  tick: diagnostics_channel.channel('tuner:signals:tick'),
  /** A decision was made (applied, dry-run, refused, reverted, overridden). Payload: DecisionEvent. */
  decision: diagnostics_channel.channel('tuner:engine:decision'),
  /**
   * A change held on purpose began, changed its cause, or ended (see engine/holds.ts); once per change of state, not
   * per tick. Payload: HoldEvent.
   */
  hold: diagnostics_channel.channel('tuner:engine:hold'),
  /** A knob was written or restored. Payload: KnobEvent. */
  knob: diagnostics_channel.channel('tuner:actions:knob'),
  /** Agent lifecycle: attached, ready, stopping, stopped. Payload: { state: string }. */
  lifecycle: diagnostics_channel.channel('tuner:agent:lifecycle'),
  /** A rare kernel event from a ring buffer. Payload depends on the signal. */
  kernelEvent: diagnostics_channel.channel('tuner:signals:event'),
} as const;

export function publish(ch: diagnostics_channel.Channel, msg: () => unknown): void {
  if (ch.hasSubscribers) ch.publish(msg());
}

/** Every kind of decision the audit trail records and `channels.decision` carries. */
export const DECISION_KINDS = ['applied', 'dry-run', 'refused', 'reverted', 'kept', 'overridden', 'failed', 'restored'] as const;
export type DecisionKind = (typeof DECISION_KINDS)[number];

/** Payload of `channels.decision`: one decision as the audit trail records it. */
export interface DecisionEvent {
  id: string;
  /** Wall clock, ms since the epoch. */
  time: number;
  kind: DecisionKind;
  action: string;
  target: string;
  rule: string;
  reason: string;
  from?: string;
  to?: string;
  outcome?: string;
  evidence?: Record<string, number>;
  /** The decision this one refers to (a revert's or a verdict's subject). */
  ref?: string;
  expected?: string;
  /** For kept and reverted decisions: the closed loop's verdict, with its uncertainty. */
  verdict?: Verdict;
}

/**
 * Every kind `channels.decision` carries: the audit trail's, and `shadow`, a choice the learned strategy reports
 * without acting on it (engine/learned/modes.ts), which is never audited.
 */
export const BUS_DECISION_KINDS = [...DECISION_KINDS, 'shadow'] as const;

/** A payload of `channels.decision`: a decision, or a shadow choice with the same fields. */
export type BusDecision = Omit<DecisionEvent, 'kind'> & { kind: (typeof BUS_DECISION_KINDS)[number] };

/**
 * Whether a bus payload (untyped on the channel) has what every decision carries: the required fields with their
 * types, and a kind the channel carries.
 */
export function isBusDecision(m: unknown): m is BusDecision {
  if (typeof m !== 'object' || m === null) return false;
  const d = m as Record<string, unknown>;
  return (
    typeof d.time === 'number' &&
    (BUS_DECISION_KINDS as readonly unknown[]).includes(d.kind) &&
    ['id', 'action', 'target', 'rule', 'reason'].every((k) => typeof d[k] === 'string')
  );
}

/** Payload of `channels.knob`: a knob was written (or would be, in dry-run), restored, or found changed by another writer. */
export interface KnobEvent {
  kind: 'written' | 'dry-run' | 'restored' | 'overridden' | 'vanished' | 'failed';
  knobId: string;
  path: string;
  target: string;
  action: string;
  /** Value before the change. */
  from?: string;
  /** Value written (or that would be, in dry-run). */
  to?: string;
  /** What another writer left in the knob. */
  observed?: string;
  error?: string;
  /** ms since the epoch. */
  time: number;
}

/** Payload of `channels.hold`: a hold began or changed its cause (`held`), or ended (`released`). */
export type HoldEvent = HoldChange;
