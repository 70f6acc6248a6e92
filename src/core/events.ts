/**
 * The one event bus. Producers publish on `tuner:<area>:<event>` channels; the metrics exporter, the dashboard,
 * the audit log and tests subscribe instead of reaching into internals. diagnostics_channel costs nothing when
 * nobody subscribes (`hasSubscribers` is checked before building a message).
 */
import diagnostics_channel from 'node:diagnostics_channel';

export const channels = {
  /** One per tick: every target's windowed signals. Payload: TickSnapshot. */
  tick: diagnostics_channel.channel('tuner:signals:tick'),
  /** A decision was made (applied, dry-run, refused, reverted, overridden). Payload: DecisionEvent. */
  decision: diagnostics_channel.channel('tuner:engine:decision'),
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
