/**
 * The agent's HTTP face: Prometheus /metrics, health probes, a read-only JSON API, a live event stream and the
 * dashboard page, plus three state-changing endpoints (pause, resume, revert) behind a bearer token.
 *
 * Safe by default: it listens on loopback, refuses a non-loopback address unless a token is set, refuses every
 * state-changing request when no token is set, and bounds everything a client can make it hold (body size, header
 * and request time, connections, stream clients and their buffers). It serves a fixed list of files, never a path
 * taken from the request.
 *
 * This module starts and stops it: it checks the options, builds what the handlers share (context.ts `HttpApp`),
 * listens, and undoes all of it on close. What it answers is the table in routes.ts, the checks every request goes
 * through are in pipeline.ts, and the handlers are in handlers/, grouped by what they serve.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errnoCode, TunerError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { MIN_TOKEN_LENGTH, type TokenSource } from '../security/token.js';
import { DEFAULT_LISTEN, isLoopbackHost, parseListen } from './address.js';
import { BearerAuth } from './auth.js';
import { ConnectionCap } from './connections.js';
import type { HttpApp } from './context.js';
import { loadAssets } from './handlers/assets.js';
import { relayToStream } from './handlers/stream.js';
import { processRegistry } from './metrics.js';
import { requestPipeline } from './pipeline.js';
import { Router } from './router.js';
import { ROUTES } from './routes.js';
import { SseHub } from './sse.js';
import { Telemetry } from './telemetry.js';
import type { AgentControl } from './types.js';

export interface HttpLimits {
  /** Largest request body accepted; larger gets 413. */
  maxBodyBytes: number;
  /** Time a client has to send its request headers. */
  headersTimeoutMs: number;
  /** Time a client has to send its whole request. */
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** How often the two timeouts above are enforced (Node checks them on an interval, 30 s by default). */
  timeoutCheckMs: number;
  maxHeaderBytes: number;
  /**
   * Open connections at most. At the cap a new connection evicts the connection that has been idle longest — one
   * between requests, or one still sending its request — so idle or slow clients can never lock out a health probe;
   * only connections with a request in progress (bounded by maxSseClients for streams) are never evicted.
   */
  maxConnections: number;
  maxSseClients: number;
  sseHeartbeatMs: number;
  /** Bytes queued for one stream client before it is considered stalled and dropped. */
  sseMaxBufferedBytes: number;
}

export const DEFAULT_LIMITS: HttpLimits = {
  maxBodyBytes: 16 * 1024,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5_000,
  timeoutCheckMs: 1_000,
  maxHeaderBytes: 8 * 1024,
  maxConnections: 128,
  maxSseClients: 16,
  sseHeartbeatMs: 15_000,
  sseMaxBufferedBytes: 1024 * 1024,
};

export interface HttpServerOptions {
  /** `HOST:PORT` or `[IPV6]:PORT`; port 0 picks a free one. Default 127.0.0.1:9479. */
  listen?: string;
  /**
   * Bearer token for the state-changing endpoints (and, off loopback, for everything but the health probes); without
   * one they are disabled. A TokenSource is asked on every request, so a changed or newly unsafe file is noticed.
   */
  token?: string | TokenSource;
  /** Off loopback, serve /metrics without the token (for a scraper that cannot send one). Default false. */
  publicMetrics?: boolean;
  control: AgentControl;
  log: Logger;
  /** Tick snapshots kept for /api/signals (and overhead samples for /api/overhead). Default 600. */
  history?: number;
  /** At most this many bytes of kept snapshots; past it the oldest go first. Default 32 MiB. */
  historyBytes?: number;
  /** Decisions kept for /api/decisions. Default 1000. */
  decisions?: number;
  /** Reported by /api/status and /metrics; default: this package's version. */
  version?: string;
  limits?: Partial<HttpLimits>;
}

export interface HttpServerHandle {
  /** Base URL actually bound, e.g. http://127.0.0.1:9479. */
  url: string;
  /** Stops listening, ends stream clients and unsubscribes from the bus. Idempotent. */
  close(): Promise<void>;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServerHandle> {
  const limits: HttpLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const listen = opts.listen ?? DEFAULT_LISTEN;
  const { host, port } = parseListen(listen);
  const loopback = isLoopbackHost(host);
  const source: TokenSource | undefined = typeof opts.token === 'string' ? { current: () => opts.token as string } : opts.token;
  checkToken(source?.current(), loopback, listen);
  const log = opts.log.child({ module: 'http' });
  const control = opts.control;
  const auth = new BearerAuth(source, log);
  const version = opts.version ?? packageVersion();
  // Read before Telemetry subscribes to the bus, so a missing file leaves nothing to unsubscribe.
  const assets = loadAssets();
  const processes = processRegistry();
  const telemetry = new Telemetry({
    control,
    log,
    history: opts.history ?? 600,
    historyBytes: opts.historyBytes ?? 32 * 2 ** 20,
    decisions: opts.decisions ?? 1000,
  });
  const sse = new SseHub({
    maxClients: limits.maxSseClients,
    heartbeatMs: limits.sseHeartbeatMs,
    maxBufferedBytes: limits.sseMaxBufferedBytes,
    retryMs: 3000,
  });
  const unrelay = relayToStream(telemetry, sse);
  const app: HttpApp = { control, telemetry, sse, auth, log, version, writable: source !== undefined, processes, assets };

  const handle = requestPipeline(new Router(ROUTES), app, {
    loopback,
    publicMetrics: opts.publicMetrics === true,
    maxBodyBytes: limits.maxBodyBytes,
  });
  const conns = new ConnectionCap(limits.maxConnections, log);
  const server: Server = createServer(
    { maxHeaderSize: limits.maxHeaderBytes, connectionsCheckingInterval: limits.timeoutCheckMs },
    (req, res) => {
      conns.request(req, res);
      void handle(req, res);
    },
  );
  server.on('connection', (sock) => conns.admit(sock));
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxHeadersCount = 64;

  const cleanup = (): void => {
    unrelay();
    sse.close();
    telemetry.close();
  };

  try {
    await listenOn(server, host, port);
  } catch (err) {
    cleanup();
    throw listenError(listen, err as Error);
  }

  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  log.info({ url, writable: app.writable }, 'serve http: listening');
  if (!loopback) {
    log.warn(
      { url, publicMetrics: opts.publicMetrics === true },
      `serve http: listening beyond loopback; the token guards everything but /healthz and /readyz${opts.publicMetrics === true ? ' and /metrics' : ''}`,
    );
  }
  // A token file can go unsafe while no request asks for it; a fixed string cannot change.
  const unwatch = source !== undefined && typeof opts.token !== 'string' ? auth.watch(5000) : undefined;

  let closing: Promise<void> | undefined;
  return {
    url,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        unwatch?.();
        cleanup();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Refuses a short token, and a non-loopback address without one. */
function checkToken(token: string | undefined, loopback: boolean, listen: string): void {
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH) {
    throw new TunerError(
      'CONFIG_INVALID',
      `check http token: it has ${token.length} characters, fewer than ${MIN_TOKEN_LENGTH}; ` +
        'write a random one to the token file, e.g. `head -c 32 /dev/urandom | base64 > FILE`',
    );
  }
  if (!loopback && token === undefined) {
    throw new TunerError(
      'CONFIG_INVALID',
      `bind http server to ${listen}: refusing to serve beyond loopback without a token, so that exposing the agent ` +
        'to the network is always a deliberate choice; pass --token-file FILE, or listen on 127.0.0.1',
    );
  }
}

function listenOn(server: Server, host: string, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Why `listen` could not be bound, and the fix. */
function listenError(listen: string, err: Error): TunerError {
  const code = errnoCode(err);
  const why =
    code === 'EADDRINUSE'
      ? 'the address is in use — fix: pick another port with --listen'
      : code === 'EACCES'
        ? 'permission denied — fix: use a port from 1024 up, or grant CAP_NET_BIND_SERVICE'
        : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
          ? 'no such local address — fix: use an address of this host'
          : `${code ?? err.message} — fix: check --listen`;
  return new TunerError(code === 'EACCES' ? 'PERMISSION' : 'CONFIG_INVALID', `listen on ${listen}: ${why}`, { cause: err });
}
