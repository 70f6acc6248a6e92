/**
 * Handlers for the agent as a whole: the health probes, the Prometheus page, /api/status, the dashboard's first
 * screen (/api/overview) and the agent's own overhead over time.
 */
import type { Handler, HttpApp } from '../context.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from '../metrics.js';
import { buildOverview } from '../overview.js';
import type { AgentStatus } from '../api.js';
import { sendBody, sendJson, sendText } from '../respond.js';
import { holdsOf } from '../overview.js';

/** 200 while the event loop runs: answering at all is the proof. */
export const healthz: Handler = ({ res }) => sendText(res, 200, 'ok\n');

export const readyz: Handler = ({ app, res }) =>
  app.control.ready() ? sendText(res, 200, 'ready\n') : sendText(res, 503, 'not ready\n');

export const metrics: Handler = async ({ app, res }) => {
  const { telemetry, control, version, sse, processes } = app;
  sendText(res, 200, await renderMetrics({ telemetry, control, version, sseClients: sse.size, process: processes }), METRICS_CONTENT_TYPE);
};

function statusOf({ control, telemetry, version, writable }: HttpApp): AgentStatus {
  return {
    version,
    paused: control.paused(),
    ready: control.ready(),
    state: control.state?.() ?? telemetry.lifecycle,
    startedAt: telemetry.startedAt,
    uptimeSeconds: (Date.now() - telemetry.startedAt) / 1000,
    ticks: telemetry.ticks,
    lastTickAt: telemetry.lastTickTime ?? null,
    windowMs: telemetry.windowMs ?? null,
    writable,
    overhead: telemetry.overheadRing.last() ?? null,
    holds: holdsOf(control),
  };
}

export const status: Handler = ({ app, res }) => sendBody(res, '/api/status', statusOf(app));

export const overview: Handler = ({ app, res }) =>
  sendBody(res, '/api/overview', { status: statusOf(app), ...buildOverview(app.telemetry, app.control) });

export const overhead: Handler = ({ app, res }) => sendJson(res, 200, { samples: app.telemetry.overheadRing.toArray() });
