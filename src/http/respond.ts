/**
 * How every handler reads its input and writes its answer: the headers all responses carry, JSON and text bodies,
 * the JSON error body, and the bounded parsing of query strings, path segments and request bodies. Handlers go
 * through these so that no endpoint can answer without the common headers or read more than the limits allow.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { ApiBodies, ApiErrorBody } from './api.js';
import { HttpError } from './errors.js';

export const COMMON_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
} as const;

/** For the HTML page, which alone runs in a browser as a document. */
export const PAGE_HEADERS = {
  ...COMMON_HEADERS,
  // uPlot positions its legend and cursor through element.style, which CSP allows; nothing else inline is needed.
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
} as const;

/** `raw`: `body` is already JSON text (kept snapshots and decisions are stored serialised), sent as it is. */
export function sendJson(res: ServerResponse, status: number, body: unknown, raw = false): void {
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
export function sendBody<R extends keyof ApiBodies>(res: ServerResponse, _route: R, body: ApiBodies[R]): void {
  sendJson(res, 200, body);
}

export function sendText(res: ServerResponse, status: number, text: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, {
    ...COMMON_HEADERS,
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** `{"error": {"code", "message"}}` with the error's status and headers; a response already started is cut off. */
export function sendError(res: ServerResponse, err: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  sendJson(res, err.status, { error: { code: err.code, message: err.message } } satisfies ApiErrorBody);
}

/** A target name, knob id or decision id from a request: bounded, and free of control characters that would reach logs. */
export const NameSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'must not contain control characters');

/** Checks a path segment with NameSchema; 400 naming `what` it was meant to be. */
export function parseName(value: string | undefined, what: string): string {
  const parsed = NameSchema.safeParse(value);
  if (!parsed.success) throw new HttpError(400, 'BAD_REQUEST', `parse ${what}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

/** Parses the query string with `schema`; 400 naming the first parameter at fault. */
export function parseQuery<T>(schema: z.ZodType<T>, query: URLSearchParams): T {
  const r = schema.safeParse(Object.fromEntries(query));
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue?.path.join('.') || 'query';
    throw new HttpError(400, 'BAD_REQUEST', `parse query parameter ${field}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}

/** Reads the body up to `max` bytes; past that, rejects with 413 without buffering the rest. */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
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

/** 413, closing the connection: the rest of the body is never read, so the connection cannot carry another request. */
export function tooLarge(max: number): HttpError {
  return new HttpError(413, 'PAYLOAD_TOO_LARGE', `read request body: larger than ${max} bytes`, {
    Connection: 'close',
  });
}
