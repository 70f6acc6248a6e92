/**
 * The contract between the server and its handlers: what a handler is given (the services that live as long as the
 * server, and the request) and what it is. Handlers hold no state of their own; everything they read or change is
 * reached through the context, so each can be read, and called, on its own.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../core/log.js';
import type { BearerAuth } from './auth.js';
import type { Asset } from './handlers/assets.js';
import type { SseHub } from './sse.js';
import type { Telemetry } from './telemetry.js';
import type { AgentControl } from './types.js';

/** Built once by startHttpServer; the same for every request. */
export interface HttpApp {
  readonly control: AgentControl;
  readonly telemetry: Telemetry;
  readonly sse: SseHub;
  readonly auth: BearerAuth;
  readonly log: Logger;
  /** Reported by /api/status and /metrics. */
  readonly version: string;
  /** Whether a token is configured, i.e. whether pause, resume and revert can be used at all. */
  readonly writable: boolean;
  /** prom-client's default process and Node.js collectors, started with the server. */
  readonly processes: Registry;
  /** The dashboard's files by route, read at start. */
  readonly assets: ReadonlyMap<string, Asset>;
}

export interface RequestContext {
  readonly app: HttpApp;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly query: URLSearchParams;
  /** The route's `:name` path segments, percent-decoded. */
  readonly params: Readonly<Record<string, string>>;
}

/** Answers one request, or throws an HttpError (any other error becomes a 500). */
export type Handler = (ctx: RequestContext) => void | Promise<void>;
