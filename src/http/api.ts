/**
 * The JSON the HTTP API answers with, declared once: the handlers send these shapes (sendBody names the route, so a
 * handler cannot drift from its declared body), and the dashboard's app.js type-checks against the same declarations.
 */
import type { Explainable } from '../audit/explain.js';
import type { DecisionEvent, HoldEvent, KnobEvent } from '../core/events.js';
import type { Hold } from '../engine/holds.js';
import type { TargetDetails, TargetTickDelta } from './details.js';
import type { Overview, OverviewDelta } from './overview.js';
import type { OverheadSample } from './telemetry.js';
import type { KnobChange, TargetInfo } from './types.js';

/** The body of /api/status, and the `status` of /api/overview. */
export interface AgentStatus {
  version: string;
  paused: boolean;
  ready: boolean;
  /** Lifecycle state: starting, ready, stopping, stopped (or `unknown` before the agent says). */
  state: string;
  /** ms since the epoch. */
  startedAt: number;
  uptimeSeconds: number;
  ticks: number;
  lastTickAt: number | null;
  windowMs: number | null;
  /** Whether a token is configured, so pause, resume and revert can be asked for at all. */
  writable: boolean;
  /** The newest sample of the agent's own cost; null until two samples were taken. */
  overhead: OverheadSample | null;
  /** Changes kept in effect on purpose, with why and since when (as of the last tick), by target. */
  holds: Hold[];
}

/**
 * The bodies of the JSON API's GET routes that the dashboard reads, by path (/api/signals: with ?target=NAME). The
 * dashboard's app.js type-checks against these, so a shape changed here is a type error there.
 */
export interface ApiBodies {
  '/api/status': AgentStatus;
  '/api/overview': Overview & { status: AgentStatus };
  '/api/signals': TargetDetails;
  /** Newest first, each as it was heard on the bus. */
  '/api/decisions': { decisions: DecisionEvent[] };
  '/api/changes': { changes: KnobChange[] };
  /** The configured targets; `holds` only on a target with a change held on purpose. */
  '/api/targets': { targets: (TargetInfo & { holds?: Hold[] })[] };
  /** /api/decisions/ID: the decision, the later ones that refer to it, where it was found, and `explain ID`'s text. */
  '/api/decisions/ID': { decision: Explainable; related: Explainable[]; source: 'audit' | 'recent'; explain: string };
}

/** The body of every answer that is not a success. */
export interface ApiErrorBody {
  error: { code: string; message: string };
}

/**
 * The events of the dashboard's streams (/api/stream?view=overview and view=target) and the JSON each carries.
 * `overview` and `target` go only to the view that asked; the rest to every stream.
 */
export interface ViewStreamEvents {
  overview: OverviewDelta;
  target: TargetTickDelta;
  decision: DecisionEvent;
  change: KnobEvent;
  overhead: OverheadSample;
  /** A hold began, changed its cause or ended. */
  hold: HoldEvent;
}

