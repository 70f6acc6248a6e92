/**
 * What happens to every request before and after its handler, in this order: the Host check on loopback, the token
 * off loopback, the declared body size, 404, 405, then for a `write` route the token and the bounded body; any error
 * becomes the JSON error body. Routes declare only who may call them (router.ts `Access`); the checks live here, once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostOfHeader, isLoopbackHost } from './address.js';
import type { HttpApp } from './context.js';
import { HttpError } from './errors.js';
import { readBody, sendError, tooLarge } from './respond.js';
import type { Router } from './router.js';

export interface PipelineOptions {
  /** The server listens on loopback: reads need no token, and only local Host names are answered. */
  loopback: boolean;
  /** Off loopback, serve `scrape` routes (/metrics) without the token. */
  publicMetrics: boolean;
  /** Largest request body accepted; larger gets 413. */
  maxBodyBytes: number;
}

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export function requestPipeline(router: Router, app: HttpApp, opts: PipelineOptions): RequestListener {
  return async (req, res) => {
    try {
      // A page on another site can point a name it controls at 127.0.0.1 (DNS rebinding); on loopback only local
      // names are accepted, so such a page cannot read the API.
      if (opts.loopback && !isLoopbackHost(hostOfHeader(req.headers.host ?? ''))) {
        throw new HttpError(
          403,
          'FORBIDDEN',
          'check Host header: this server listens on loopback and answers only to local names',
        );
      }
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const pathname = q === -1 ? url : url.slice(0, q);
      const found = router.match(pathname);
      // Off loopback the network can reach the server: the token guards every read too, unknown paths included,
      // except the health probes an orchestrator must reach without credentials (and /metrics when made public).
      if (!opts.loopback && !found?.endpoint.opensWithoutToken(opts.publicMetrics)) app.auth.authorize(req);
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > opts.maxBodyBytes) throw tooLarge(opts.maxBodyBytes);
      if (!found) throw new HttpError(404, 'NOT_FOUND', `find ${pathname}: no such endpoint`);
      const params = found.endpoint.decodeParams(found.rawParams);
      const method = req.method === 'HEAD' ? 'GET' : req.method;
      const route = method === 'GET' || method === 'POST' ? found.endpoint.byMethod.get(method) : undefined;
      if (!route) {
        const allow = found.endpoint.allow().join(', ');
        throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${req.method ?? '?'} ${pathname}: method not allowed; use ${allow}`, {
          Allow: allow,
        });
      }
      if (route.access === 'write') {
        // The token first, so nothing is read or done for a stranger; then the body, bounded.
        app.auth.authorize(req);
        await readBody(req, opts.maxBodyBytes);
      }
      await route.handler({ app, req, res, query: new URLSearchParams(q === -1 ? '' : url.slice(q + 1)), params });
    } catch (err) {
      if (err instanceof HttpError) {
        sendError(res, err);
        return;
      }
      app.log.error({ err, path: req.url }, 'handle http request: failed');
      sendError(res, new HttpError(500, 'INTERNAL', `handle request: ${err instanceof Error ? err.message : String(err)}`));
    }
  };
}
