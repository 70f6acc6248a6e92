/**
 * The HTTP server's bearer-token check. The token is asked of its source on every check, so a rewritten file is
 * used at once and a file that became unsafe refuses (503) until it is fixed; it is compared in constant time.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../core/log.js';
import { tokenEquals, type TokenSource } from '../security/token.js';
import { HttpError } from './errors.js';

export class BearerAuth {
  readonly #source: TokenSource | undefined;
  readonly #log: Logger;
  /** Why the token cannot be read now, told once per distinct problem. */
  #problem: string | undefined;

  constructor(source: TokenSource | undefined, log: Logger) {
    this.#source = source;
    this.#log = log;
  }

  /** The token as its source holds it now; undefined when none is configured. Throws 503 while it cannot be read. */
  current(): string | undefined {
    if (this.#source === undefined) return undefined;
    let t: string;
    try {
      t = this.#source.current();
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (msg !== this.#problem) this.#log.error({ err: msg }, 'check http token: refusing every request that needs the token until the file is fixed');
      this.#problem = msg;
      throw new HttpError(503, 'TOKEN_UNAVAILABLE', `check token: ${msg}`);
    }
    if (this.#problem !== undefined) this.#log.info('check http token: the token file is usable again');
    this.#problem = undefined;
    return t;
  }

  /** Asks the source every `everyMs`, so a problem with it is logged even while no request needs the token; returns a function that stops it. */
  watch(everyMs: number): () => void {
    const timer = setInterval(() => {
      try {
        this.current();
      } catch {
        // logged by current()
      }
    }, everyMs);
    // Only a check: it must not keep the agent alive.
    timer.unref();
    return () => clearInterval(timer);
  }

  /** Lets the request through only with `Authorization: Bearer <token>`: 403 without a token configured, 401 otherwise. */
  authorize(req: IncomingMessage): void {
    const token = this.current();
    if (token === undefined) {
      throw new HttpError(
        403,
        'FORBIDDEN',
        'change agent state: disabled because no token is configured; start the agent with --token-file FILE to enable pause, resume and revert',
      );
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m || !tokenEquals(m[1]!, token)) {
      this.#log.warn({ remote: req.socket.remoteAddress, path: req.url }, 'refuse http request: missing or wrong bearer token');
      throw new HttpError(401, 'UNAUTHORIZED', 'authorize request: missing or wrong bearer token', {
        'WWW-Authenticate': 'Bearer realm="ebpf-tuner"',
      });
    }
  }
}
