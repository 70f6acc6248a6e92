/**
 * The cap on open connections. At the cap a new connection evicts the one idle longest instead of being turned away,
 * so no number of idle or slowloris clients can lock a health probe out.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../core/log.js';

export class ConnectionCap {
  /**
   * Every open connection, least recently active first, and whether a request is in progress on it. A connection
   * without one (never sent a whole request, or idle between keep-alive requests) costs the server nothing to drop,
   * and dropping the one idle longest at the cap is what keeps room for /healthz and /readyz under any number of
   * idle or slowloris clients. Requests finish in milliseconds (the handlers are synchronous or bounded by the body
   * limit), and streams are capped at maxSseClients, so busy connections cannot fill the table themselves.
   */
  readonly #conns = new Map<Socket, { busy: boolean }>();
  #evicted = 0;

  constructor(
    private readonly max: number,
    private readonly log: Logger,
  ) {}

  /** For the server's `connection` event: makes room for `sock`, or destroys it when every connection is busy. */
  admit(sock: Socket): void {
    const conns = this.#conns;
    if (conns.size >= this.max) {
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
      if (this.#evicted++ % 1000 === 0) this.log.warn({ open: conns.size + 1, evicted: this.#evicted }, 'serve http: at the connection cap; dropping the longest-idle connections');
    }
    conns.set(sock, { busy: false });
    sock.once('close', () => conns.delete(sock));
  }

  /** Called as a request starts: its connection is busy until the response closes. */
  request(req: IncomingMessage, res: ServerResponse): void {
    const sock = req.socket;
    const c = this.#conns.get(sock);
    if (c === undefined) return;
    c.busy = true;
    res.once('close', () => {
      c.busy = false;
      // Re-inserted: the map's order is the eviction order, least recently active first.
      if (this.#conns.delete(sock)) this.#conns.set(sock, c);
    });
  }
}
