/**
 * The route table's shape and its matcher. A route is one entry — method, path pattern, who may call it, handler —
 * so the table in routes.ts is the one place that says what the server answers; this module turns it into a lookup
 * and refuses a table that declares a method and path twice.
 */
import type { Handler } from './context.js';
import { HttpError } from './errors.js';

export type Method = 'GET' | 'POST';

/**
 * Who may call a route. On loopback every read is open; off loopback (only possible with a token configured) the
 * token guards everything except what an orchestrator or a scraper must reach without credentials.
 * - `probe`: anyone, even off loopback (health probes).
 * - `scrape`: like `read`, but open off loopback too when the server runs with publicMetrics.
 * - `read`: anyone on loopback, the token off loopback.
 * - `write`: changes agent state: the token always (403 when none is configured), checked before the body is read.
 */
export type Access = 'probe' | 'scrape' | 'read' | 'write';

export interface Route {
  method: Method;
  /** Literal segments and whole-segment `:name` parameters, e.g. `/api/changes/:knobId/revert`. */
  path: string;
  access: Access;
  /** What each `:name` parameter holds, as a 400 for a malformed percent-encoding names it, e.g. `knob id`. */
  params?: Readonly<Record<string, string>>;
  handler: Handler;
}

/** What a request path matched: every route on that path pattern, and the pattern's parameters as sent. */
export interface PathMatch {
  endpoint: Endpoint;
  /**
   * Still percent-encoded: the path is matched before the token check (it decides whether the path needs one), but a
   * malformed encoding is answered only after it, by `Endpoint.decodeParams`.
   */
  rawParams: Record<string, string>;
}

/** All routes on one path pattern. */
export class Endpoint {
  readonly byMethod = new Map<Method, Route>();
  /** Undefined for a literal path, which is matched by equality instead. */
  readonly regex: RegExp | undefined;
  readonly #names: string[] = [];
  readonly #labels: Record<string, string> = {};

  constructor(readonly pattern: string) {
    const segments = pattern.split('/');
    if (segments.some((s) => s.startsWith(':'))) {
      const source = segments
        .map((s) => {
          if (!s.startsWith(':')) return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          this.#names.push(s.slice(1));
          return '([^/]+)';
        })
        .join('/');
      this.regex = new RegExp(`^${source}$`);
    }
  }

  add(route: Route): void {
    if (this.byMethod.has(route.method)) throw new Error(`route table: ${route.method} ${route.path} is declared twice`);
    this.byMethod.set(route.method, route);
    Object.assign(this.#labels, route.params);
  }

  /** Whether every route here is open off loopback without the token: a path is only as open as its strictest route. */
  opensWithoutToken(publicMetrics: boolean): boolean {
    return [...this.byMethod.values()].every((r) => r.access === 'probe' || (publicMetrics && r.access === 'scrape'));
  }

  /** The `Allow` list for a 405: HEAD wherever GET is, since HEAD is answered as a GET. */
  allow(): string[] {
    return [...this.byMethod.keys()].flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
  }

  rawParams(match: RegExpExecArray): Record<string, string> {
    return Object.fromEntries(this.#names.map((name, i) => [name, match[i + 1] ?? '']));
  }

  /** Percent-decodes parameters; 400 naming the parameter when one is not valid percent-encoding. */
  decodeParams(raw: Record<string, string>): Record<string, string> {
    const params: Record<string, string> = {};
    for (const [name, value] of Object.entries(raw)) {
      try {
        params[name] = decodeURIComponent(value);
      } catch {
        throw new HttpError(400, 'BAD_REQUEST', `parse ${this.#labels[name] ?? name}: malformed percent-encoding`);
      }
    }
    return params;
  }
}

export class Router {
  /** Literal paths, looked up first and by equality. */
  readonly #literal = new Map<string, Endpoint>();
  /** Patterns with parameters, tried in table order. */
  readonly #patterns: Endpoint[] = [];

  constructor(routes: readonly Route[]) {
    const all = new Map<string, Endpoint>();
    for (const route of routes) {
      let ep = all.get(route.path);
      if (!ep) {
        ep = new Endpoint(route.path);
        all.set(route.path, ep);
        if (ep.regex) this.#patterns.push(ep);
        else this.#literal.set(route.path, ep);
      }
      ep.add(route);
    }
  }

  /** The endpoint for a request path, or undefined (a 404). */
  match(pathname: string): PathMatch | undefined {
    const literal = this.#literal.get(pathname);
    if (literal) return { endpoint: literal, rawParams: {} };
    for (const ep of this.#patterns) {
      const m = ep.regex?.exec(pathname);
      if (m) return { endpoint: ep, rawParams: ep.rawParams(m) };
    }
    return undefined;
  }
}
