/**
 * The agent's HTTP face: Prometheus /metrics, health probes, a read-only JSON API, a live event stream and the
 * dashboard page, plus three state-changing endpoints (pause, resume, revert) behind a bearer token.
 *
 * Safe by default: it listens on loopback, refuses a non-loopback address unless a token is set, refuses every
 * state-changing request when no token is set, and bounds everything a client can make it hold (body size, header
 * and request time, connections, stream clients and their buffers). It serves a fixed list of files, never a path
 * taken from the request.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { errnoCode, TunerError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { METRICS_CONTENT_TYPE, processRegistry, renderMetrics } from './metrics.js';
import { SseHub } from './sse.js';
import { buildTargetDetails, targetTickDelta, type TargetDetails, type TargetTickDelta } from './details.js';
import { buildOverview, overviewDelta, type Overview, type OverviewDelta } from './overview.js';
import { explainText } from '../audit/explain.js';
import type { AuditRecord } from '../audit/audit.js';
import type { DecisionEvent, KnobEvent } from '../core/events.js';
import { Telemetry, type OverheadSample, type StreamEvent } from './telemetry.js';
import type { AgentControl, KnobChange } from './types.js';
import { MIN_TOKEN_LENGTH, type TokenSource } from '../security/token.js';
import { BearerAuth } from './auth.js';
import { HttpError } from './errors.js';

export const DEFAULT_LISTEN = '127.0.0.1:9479';

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
  /** /api/decisions/ID: the decision, the later ones that refer to it, where it was found, and `explain ID`'s text. */
  '/api/decisions/ID': { decision: AuditRecord; related: AuditRecord[]; source: 'audit' | 'recent'; explain: string };
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
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses `HOST:PORT` / `[V6]:PORT`. */
export function parseListen(listen: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new TunerError(
      'CONFIG_INVALID',
      `parse http listen address "${listen}": expected HOST:PORT or [IPV6]:PORT with a port 0-65535 — fix: pass e.g. --listen ${DEFAULT_LISTEN}`,
    );
  }
  const host = m[1] ?? m[2] ?? '';
  if (m[1] !== undefined && isIP(host) !== 6) {
    throw new TunerError('CONFIG_INVALID', `parse http listen address "${listen}": "${host}" is not an IPv6 address — fix: write an IPv6 address in brackets, e.g. [::1]:9479`);
  }
  return { host, port };
}

/** Loopback only: 127.0.0.0/8, ::1 (also v4-mapped) and the name localhost. Any other name counts as remote. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

function hostOfHeader(hostHeader: string): string {
  const h = hostHeader.trim();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') === -1 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
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

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/**
 * The fixed set of files the page needs, read once at start. The dashboard sources sit next to this module in the
 * source tree and under dist/ when the build copies them there; uPlot comes from its npm package.
 */
function loadAssets(): Map<string, Asset> {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '..', 'dashboard'), join(here, '..', '..', 'src', 'dashboard')];
  const require = createRequire(import.meta.url);
  const uplotDist = join(dirname(require.resolve('uplot/package.json')), 'dist');
  const files: [route: string, dir: string[], name: string, type: string][] = [
    ['/', candidates, 'index.html', 'text/html; charset=utf-8'],
    ['/app.js', candidates, 'app.js', 'text/javascript; charset=utf-8'],
    ['/style.css', candidates, 'style.css', 'text/css; charset=utf-8'],
    ['/vendor/uPlot.iife.min.js', [uplotDist], 'uPlot.iife.min.js', 'text/javascript; charset=utf-8'],
    ['/vendor/uPlot.min.css', [uplotDist], 'uPlot.min.css', 'text/css; charset=utf-8'],
  ];
  const assets = new Map<string, Asset>();
  for (const [route, dirs, name, type] of files) {
    let body: Buffer | undefined;
    let lastErr: unknown;
    for (const dir of dirs) {
      try {
        body = readFileSync(join(dir, name));
        break;
      } catch (err) {
        lastErr = err;
      }
    }
    if (!body) {
      throw new TunerError(
        'INTERNAL',
        `load dashboard asset ${name}: ${errnoCode(lastErr) ?? String(lastErr)} in ${dirs.join(', ')}`,
        {
          cause: lastErr,
        },
      );
    }
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    assets.set(route, { body, type, etag });
  }
  return assets;
}

/** Served without the token even off loopback. */
const OPEN_PATHS = new Set(['/healthz', '/readyz']);

const COMMON_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
} as const;

const PAGE_HEADERS = {
  ...COMMON_HEADERS,
  // uPlot positions its legend and cursor through element.style, which CSP allows; nothing else inline is needed.
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
} as const;

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  query: URLSearchParams;
  params: Record<string, string>;
}

type Handler = (ctx: Ctx) => void | Promise<void>;
type Route = Partial<Record<'GET' | 'POST', Handler>>;

function sendJson(res: ServerResponse, status: number, body: unknown, raw = false): void {
  const text = raw ? (body as string) : JSON.stringify(body);
  res.writeHead(status, {
    ...COMMON_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Answers 200 with the body ApiBodies declares for `route`: the route names the shape it must have. */
function sendBody<R extends keyof ApiBodies>(res: ServerResponse, _route: R, body: ApiBodies[R]): void {
  sendJson(res, 200, body);
}

function sendText(res: ServerResponse, status: number, text: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, {
    ...COMMON_HEADERS,
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: ServerResponse, err: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  sendJson(res, err.status, { error: { code: err.code, message: err.message } } satisfies ApiErrorBody);
}

const KnobIdSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'must not contain control characters');

/** A page can ask for more decisions than are kept; it gets what there is. The cap only bounds the request. */
const DecisionsQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) });

function parseQuery<T>(schema: z.ZodType<T>, query: URLSearchParams): T {
  const r = schema.safeParse(Object.fromEntries(query));
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue?.path.join('.') || 'query';
    throw new HttpError(400, 'BAD_REQUEST', `parse query parameter ${field}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}

const TargetName = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'must not contain control characters');

const SignalsQuery = z.object({ target: TargetName.optional() });

const StreamQuery = z.object({
  view: z.enum(['full', 'overview', 'target']).default('full'),
  target: TargetName.optional(),
});

/** Reads the body up to `max` bytes; past that, rejects with 413 without buffering the rest. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > max) {
        req.off('data', onData);
        req.pause();
        reject(tooLarge(max));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function tooLarge(max: number): HttpError {
  return new HttpError(413, 'PAYLOAD_TOO_LARGE', `read request body: larger than ${max} bytes`, {
    Connection: 'close',
  });
}

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServerHandle> {
  const limits: HttpLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const listen = opts.listen ?? DEFAULT_LISTEN;
  const { host, port } = parseListen(listen);
  const loopback = isLoopbackHost(host);
  const source: TokenSource | undefined = typeof opts.token === 'string' ? { current: () => opts.token as string } : opts.token;
  const token = source?.current();
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
  const log = opts.log.child({ module: 'http' });
  const auth = new BearerAuth(source, log);
  const control = opts.control;
  const version = opts.version ?? packageVersion();
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
  const unlisten = telemetry.addListener((event: StreamEvent, json: () => string) => {
    // The full stream carries every snapshot; the dashboard's views get only what they draw. A snapshot's text is
    // made only when a client of the full stream is there to take it.
    if (event === 'tick' || event === 'fields') {
      if (sse.watching('full')) sse.send(event, json(), 'full');
      if (event === 'tick') sendViews();
      return;
    }
    sse.send(event, json());
  });
  const sendViews = (): void => {
    const tick = telemetry.lastTick();
    if (!tick) return;
    for (const view of sse.views()) {
      if (view === 'overview') sendView('overview', overviewDelta(tick), view);
      else if (view.startsWith('target:')) sendView('target', targetTickDelta(tick, view.slice(7)), view);
    }
  };
  const sendView = <E extends 'overview' | 'target'>(event: E, body: ViewStreamEvents[E], view: string): void => {
    sse.send(event, JSON.stringify(body), view);
  };
  const targetRole = (name: string): string | undefined => {
    let configured: { name: string; role: string }[] = [];
    try {
      configured = control.targets();
    } catch {
      // between configs
    }
    const c = configured.find((t) => t.name === name || name.startsWith(`${t.name}/`));
    if (c) return c.role;
    for (const t of telemetry.ticksKept().reverse()) {
      const s = t.summary.get(name);
      if (s) return s.role ?? '';
    }
    return undefined;
  };
  const knownTarget = (name: string): string => {
    const role = targetRole(name);
    if (role === undefined) throw new HttpError(404, 'NOT_FOUND', `find target ${name}: no such target — list them with GET /api/targets or /api/overview`);
    return role;
  };

  /** Wraps a state-changing handler: token first (nothing is read or done for a stranger), then the bounded body. */
  const mutating =
    (fn: Handler): Handler =>
    async (ctx) => {
      auth.authorize(ctx.req);
      await readBody(ctx.req, limits.maxBodyBytes);
      await fn(ctx);
    };

  const status = (): AgentStatus => ({
    version,
    paused: control.paused(),
    ready: control.ready(),
    state: control.state?.() ?? telemetry.lifecycle,
    startedAt: telemetry.startedAt,
    uptimeSeconds: (Date.now() - telemetry.startedAt) / 1000,
    ticks: telemetry.ticks,
    lastTickAt: telemetry.lastTickTime ?? null,
    windowMs: telemetry.windowMs ?? null,
    writable: source !== undefined,
    overhead: telemetry.overheadRing.last() ?? null,
  });

  const routes = new Map<string, Route>([
    ['/healthz', { GET: ({ res }) => sendText(res, 200, 'ok\n') }],
    [
      '/readyz',
      {
        GET: ({ res }) => (control.ready() ? sendText(res, 200, 'ready\n') : sendText(res, 503, 'not ready\n')),
      },
    ],
    [
      '/metrics',
      {
        GET: async ({ res }) =>
          sendText(
            res,
            200,
            await renderMetrics({ telemetry, control, version, sseClients: sse.size, process: processes }),
            METRICS_CONTENT_TYPE,
          ),
      },
    ],
    ['/api/status', { GET: ({ res }) => sendBody(res, '/api/status', status()) }],
    ['/api/overview', { GET: ({ res }) => sendBody(res, '/api/overview', { status: status(), ...buildOverview(telemetry, control) }) }],
    ['/api/targets', { GET: ({ res }) => sendJson(res, 200, { targets: control.targets() }) }],
    ['/api/hints', { GET: ({ res }) => sendJson(res, 200, { hints: control.hints?.() ?? {} }) }],
    [
      '/api/signals',
      {
        // Snapshots are kept as the JSON text they were serialised to on arrival, so this only concatenates.
        GET: ({ res, query }) => {
          const { target } = parseQuery(SignalsQuery, query);
          if (target !== undefined) {
            const role = knownTarget(target);
            sendBody(res, '/api/signals', buildTargetDetails(telemetry.ticksKept(), target, role));
            return;
          }
          sendJson(
            res,
            200,
            `{"windowMs":${JSON.stringify(telemetry.windowMs ?? null)},"fields":${JSON.stringify(telemetry.fieldList())},` +
              `"last":${telemetry.lastSnapshotJson() ?? 'null'},"history":[${telemetry.historyJson().join(',')}]}`,
            true,
          );
        },
      },
    ],
    [
      '/api/decisions',
      {
        GET: ({ res, query }) => {
          const { limit } = parseQuery(DecisionsQuery, query);
          sendJson(res, 200, `{"decisions":[${telemetry.decisionsJson(limit).join(',')}]}`, true);
        },
      },
    ],
    ['/api/changes', { GET: ({ res }) => sendBody(res, '/api/changes', { changes: control.changes() }) }],
    ['/api/overhead', { GET: ({ res }) => sendJson(res, 200, { samples: telemetry.overheadRing.toArray() }) }],
    [
      '/api/stream',
      {
        GET: ({ req, res, query }) => {
          const { view, target } = parseQuery(StreamQuery, query);
          let key: string = view;
          if (view === 'target') {
            if (target === undefined) throw new HttpError(400, 'BAD_REQUEST', 'parse query parameter target: view=target needs target=NAME');
            knownTarget(target);
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
            throw new HttpError(
              503,
              'TOO_MANY_STREAMS',
              `open event stream: ${limits.maxSseClients} clients already connected`,
              {
                'Retry-After': '10',
              },
            );
          }
          sse.add(req, res, COMMON_HEADERS, key);
        },
      },
    ],
    [
      '/api/pause',
      {
        POST: mutating(({ req, res }) => {
          log.info({ remote: req.socket.remoteAddress }, 'pause agent: requested over http');
          control.pause();
          sendJson(res, 200, { paused: control.paused() });
        }),
      },
    ],
    [
      '/api/resume',
      {
        POST: mutating(({ req, res }) => {
          log.info({ remote: req.socket.remoteAddress }, 'resume agent: requested over http');
          control.resume();
          sendJson(res, 200, { paused: control.paused() });
        }),
      },
    ],
  ]);
  for (const [route, asset] of assets) {
    routes.set(route, {
      GET: ({ req, res }) => {
        const headers = {
          ...(asset.type.startsWith('text/html') ? PAGE_HEADERS : COMMON_HEADERS),
          'Content-Type': asset.type,
          'Cache-Control': 'no-cache',
          ETag: asset.etag,
        };
        if (req.headers['if-none-match'] === asset.etag) {
          res.writeHead(304, headers);
          res.end();
          return;
        }
        res.writeHead(200, { ...headers, 'Content-Length': asset.body.length });
        res.end(asset.body);
      },
    });
  }

  const revertRoute: Route = {
    POST: mutating(({ req, res, params }) => {
      const parsed = KnobIdSchema.safeParse(params.knobId);
      if (!parsed.success) {
        throw new HttpError(400, 'BAD_REQUEST', `parse knob id: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      }
      const knobId = parsed.data;
      log.info({ remote: req.socket.remoteAddress, knobId }, 'revert change: requested over http');
      if (!control.revert(knobId)) {
        throw new HttpError(404, 'NOT_FOUND', `revert change ${knobId}: no change with that id is in effect`);
      }
      sendJson(res, 200, { reverted: knobId });
    }),
  };

  const decisionRoute: Route = {
    GET: ({ res, params }) => {
      const parsed = KnobIdSchema.safeParse(params.id);
      if (!parsed.success) {
        throw new HttpError(400, 'BAD_REQUEST', `parse decision id: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      }
      const id = parsed.data;
      // The audit trail first: it has the closed loop's later outcome and verdicts; the decisions heard on the bus are
      // the fallback (an agent without an audit trail, or a decision older than it keeps).
      let found = control.decision?.(id);
      let source: 'audit' | 'recent' = 'audit';
      if (!found) {
        const rec = telemetry.findDecision(id);
        if (rec) {
          found = { decision: rec as unknown as AuditRecord, related: telemetry.relatedDecisions(id) as unknown as AuditRecord[] };
          source = 'recent';
        }
      }
      if (!found) throw new HttpError(404, 'NOT_FOUND', `explain ${id}: no such decision — list them with GET /api/decisions`);
      sendBody(res, '/api/decisions/ID', { ...found, source, explain: explainText(found.decision, found.related) });
    },
  };

  const match = (pathname: string): { route: Route; params: Record<string, string> } | undefined => {
    const fixed = routes.get(pathname);
    if (fixed) return { route: fixed, params: {} };
    const dm = /^\/api\/decisions\/([^/]+)$/.exec(pathname);
    if (dm && dm[1] !== undefined) {
      try {
        return { route: decisionRoute, params: { id: decodeURIComponent(dm[1]) } };
      } catch {
        throw new HttpError(400, 'BAD_REQUEST', 'parse decision id: malformed percent-encoding');
      }
    }
    const m = /^\/api\/changes\/([^/]+)\/revert$/.exec(pathname);
    if (!m || m[1] === undefined) return undefined;
    let knobId: string;
    try {
      knobId = decodeURIComponent(m[1]);
    } catch {
      throw new HttpError(400, 'BAD_REQUEST', 'parse knob id: malformed percent-encoding');
    }
    return { route: revertRoute, params: { knobId } };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      // A page on another site can point a name it controls at 127.0.0.1 (DNS rebinding); on loopback only local
      // names are accepted, so such a page cannot read the API.
      if (loopback && !isLoopbackHost(hostOfHeader(req.headers.host ?? ''))) {
        throw new HttpError(
          403,
          'FORBIDDEN',
          'check Host header: this server listens on loopback and answers only to local names',
        );
      }
      // Off loopback the network can reach the server: the token guards every read too, except the health probes
      // an orchestrator must reach without credentials (and /metrics when made public on purpose).
      const pathOnly = (req.url ?? '/').split('?', 1)[0] ?? '/';
      if (!loopback && !OPEN_PATHS.has(pathOnly) && !(opts.publicMetrics === true && pathOnly === '/metrics')) auth.authorize(req);
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > limits.maxBodyBytes) throw tooLarge(limits.maxBodyBytes);
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const pathname = q === -1 ? url : url.slice(0, q);
      const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
      const found = match(pathname);
      if (!found) throw new HttpError(404, 'NOT_FOUND', `find ${pathname}: no such endpoint`);
      const method = req.method === 'HEAD' ? 'GET' : req.method;
      const handler = method === 'GET' || method === 'POST' ? found.route[method] : undefined;
      if (!handler) {
        const allow = Object.keys(found.route).flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
        throw new HttpError(
          405,
          'METHOD_NOT_ALLOWED',
          `${req.method ?? '?'} ${pathname}: method not allowed; use ${allow.join(', ')}`,
          {
            Allow: allow.join(', '),
          },
        );
      }
      await handler({ req, res, query, params: found.params });
    } catch (err) {
      if (err instanceof HttpError) {
        sendError(res, err);
        return;
      }
      log.error({ err, path: req.url }, 'handle http request: failed');
      sendError(
        res,
        new HttpError(500, 'INTERNAL', `handle request: ${err instanceof Error ? err.message : String(err)}`),
      );
    }
  };

  /**
   * Every open connection, least recently active first, and whether a request is in progress on it. A connection
   * without one (never sent a whole request, or idle between keep-alive requests) costs the server nothing to drop,
   * and dropping the one idle longest at the cap is what keeps room for /healthz and /readyz under any number of
   * idle or slowloris clients. Requests finish in milliseconds (the handlers are synchronous or bounded by the body
   * limit), and streams are capped at maxSseClients, so busy connections cannot fill the table themselves.
   */
  const conns = new Map<Socket, { busy: boolean }>();
  let evicted = 0;
  const server: Server = createServer(
    { maxHeaderSize: limits.maxHeaderBytes, connectionsCheckingInterval: limits.timeoutCheckMs },
    (req, res) => {
      const sock = req.socket;
      const c = conns.get(sock);
      if (c !== undefined) {
        c.busy = true;
        res.once('close', () => {
          c.busy = false;
          // Re-inserted: the map's order is the eviction order, least recently active first.
          if (conns.delete(sock)) conns.set(sock, c);
        });
      }
      void handle(req, res);
    },
  );
  server.on('connection', (sock: Socket) => {
    if (conns.size >= limits.maxConnections) {
      let victim: Socket | undefined;
      for (const [s, c] of conns) {
        if (!c.busy) {
          victim = s;
          break;
        }
      }
      if (victim === undefined) {
        sock.destroy();
        return;
      }
      conns.delete(victim);
      victim.destroy();
      if (evicted++ % 1000 === 0) log.warn({ open: conns.size + 1, evicted }, 'serve http: at the connection cap; dropping the longest-idle connections');
    }
    conns.set(sock, { busy: false });
    sock.once('close', () => conns.delete(sock));
  });
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxHeadersCount = 64;

  const cleanup = (): void => {
    unlisten();
    sse.close();
    telemetry.close();
  };

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      cleanup();
      const code = errnoCode(err);
      const why =
        code === 'EADDRINUSE'
          ? 'the address is in use — fix: pick another port with --listen'
          : code === 'EACCES'
            ? 'permission denied — fix: use a port from 1024 up, or grant CAP_NET_BIND_SERVICE'
            : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
              ? 'no such local address — fix: use an address of this host'
              : `${code ?? err.message} — fix: check --listen`;
      reject(
        new TunerError(code === 'EACCES' ? 'PERMISSION' : 'CONFIG_INVALID', `listen on ${listen}: ${why}`, {
          cause: err,
        }),
      );
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });

  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  log.info({ url, writable: source !== undefined }, 'serve http: listening');
  if (!loopback) {
    log.warn(
      { url, publicMetrics: opts.publicMetrics === true },
      `serve http: listening beyond loopback; the token guards everything but /healthz and /readyz${opts.publicMetrics === true ? ' and /metrics' : ''}`,
    );
  }
  // Notice a token file gone unsafe even while no request asks for it.
  const tokenWatch = source !== undefined && typeof opts.token !== 'string'
    ? setInterval(() => {
        try {
          auth.current();
        } catch {
          // logged by auth.current()
        }
      }, 5000)
    : undefined;
  tokenWatch?.unref();

  let closing: Promise<void> | undefined;
  return {
    url,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        if (tokenWatch) clearInterval(tokenWatch);
        cleanup();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
