/**
 * /api/stream: the live event stream, and the relay that feeds it from Telemetry. A client picks a view: `full`
 * (every event, snapshots included), `overview` or `target:NAME` (one small delta per tick, what that screen draws).
 */
import { z } from 'zod';
import type { ViewStreamEvents } from '../api.js';
import type { Handler } from '../context.js';
import { targetTickDelta } from '../details.js';
import { HttpError } from '../errors.js';
import { overviewDelta } from '../overview.js';
import { COMMON_HEADERS, NameSchema, parseQuery } from '../respond.js';
import type { SseHub } from '../sse.js';
import type { StreamEvent, Telemetry } from '../telemetry.js';
import { knownTarget } from './targets.js';

const StreamQuery = z.object({
  view: z.enum(['full', 'overview', 'target']).default('full'),
  target: NameSchema.optional(),
});

export const stream: Handler = ({ app, req, res, query }) => {
  const { sse } = app;
  const { view, target } = parseQuery(StreamQuery, query);
  let key: string = view;
  if (view === 'target') {
    if (target === undefined) throw new HttpError(400, 'BAD_REQUEST', 'parse query parameter target: view=target needs target=NAME');
    knownTarget(app, target);
    key = `target:${target}`;
  }
  if (req.method === 'HEAD') {
    res.writeHead(200, {
      ...COMMON_HEADERS,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
    });
    res.end();
    return;
  }
  if (sse.full) {
    throw new HttpError(503, 'TOO_MANY_STREAMS', `open event stream: ${sse.capacity} clients already connected`, {
      'Retry-After': '10',
    });
  }
  sse.add(req, res, COMMON_HEADERS, key);
};

/** Sends what Telemetry hears to the stream's clients, each what its view draws. Returns the unsubscribe. */
export function relayToStream(telemetry: Telemetry, sse: SseHub): () => void {
  /** Sends one view its event, with the body ViewStreamEvents declares for it. */
  const sendView = <E extends 'overview' | 'target'>(event: E, body: ViewStreamEvents[E], view: string): void => {
    sse.send(event, JSON.stringify(body), view);
  };
  const sendViews = (): void => {
    const tick = telemetry.lastTick();
    if (!tick) return;
    for (const view of sse.views()) {
      if (view === 'overview') sendView('overview', overviewDelta(tick), view);
      else if (view.startsWith('target:')) sendView('target', targetTickDelta(tick, view.slice(7)), view);
    }
  };
  return telemetry.addListener((event: StreamEvent, json: () => string) => {
    // The full stream carries every snapshot; the dashboard's views get only what they draw. A snapshot's text is
    // made only when a client of the full stream is there to take it.
    if (event === 'tick' || event === 'fields') {
      if (sse.watching('full')) sse.send(event, json(), 'full');
      if (event === 'tick') sendViews();
      return;
    }
    sse.send(event, json());
  });
}
