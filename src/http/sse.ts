/**
 * Server-Sent Events fan-out for /api/stream. Bounded on both axes: at most `maxClients` connections, and a client
 * that stops reading is dropped once `maxBufferedBytes` are queued for it, so a stalled browser tab cannot make the
 * agent hold memory.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface SseOptions {
  maxClients: number;
  heartbeatMs: number;
  maxBufferedBytes: number;
  /** Browser reconnect delay sent to clients. */
  retryMs: number;
}

export class SseHub {
  /** Each client with the view it asked for: `full`, `overview` or `target:NAME`. */
  private readonly clients = new Map<ServerResponse, string>();
  private readonly heartbeat: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly opts: SseOptions) {
    this.heartbeat = setInterval(() => this.write(': ping\n\n'), opts.heartbeatMs);
    // The heartbeat only keeps proxies from timing the stream out; it must not keep the agent alive.
    this.heartbeat.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Clients it takes at most. */
  get capacity(): number {
    return this.opts.maxClients;
  }

  get full(): boolean {
    return this.clients.size >= this.opts.maxClients;
  }

  /** Takes over the response as an event stream. Caller checks `full` first. */
  add(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, view = 'full'): void {
    res.writeHead(200, {
      ...headers,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      // Disables response buffering in nginx-style reverse proxies, which would otherwise batch events.
      'X-Accel-Buffering': 'no',
    });
    res.write(`retry: ${this.opts.retryMs}\n: connected\n\n`);
    this.clients.set(res, view);
    const drop = (): void => {
      this.clients.delete(res);
    };
    req.on('close', drop);
    res.on('close', drop);
    res.on('error', drop);
  }

  /** The distinct views clients are watching, so a view's payload is built only when someone reads it. */
  views(): Set<string> {
    return new Set(this.clients.values());
  }

  /** Whether any client watches `view`. */
  watching(view: string): boolean {
    for (const v of this.clients.values()) if (v === view) return true;
    return false;
  }

  /** Sends to every client, or only to those watching `view`. */
  send(event: string, json: string, view?: string): void {
    if (this.clients.size === 0) return;
    this.write(`event: ${event}\ndata: ${json}\n\n`, view);
  }

  private write(chunk: string, view?: string): void {
    for (const [res, v] of this.clients) {
      if (view !== undefined && v !== view) continue;
      if (res.writableLength > this.opts.maxBufferedBytes) {
        this.clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(chunk);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const res of this.clients.keys()) res.end();
    this.clients.clear();
  }
}
