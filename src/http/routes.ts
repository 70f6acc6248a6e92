/**
 * Every endpoint the HTTP server answers, one entry each: method, path, who may call it (router.ts `Access`) and the
 * handler, grouped in handlers/ by what they serve. Adding an endpoint is adding an entry here and its row in
 * README.md; the checks every request goes through are applied by pipeline.ts from the entry's `access`.
 */
import { ASSET_ROUTES } from './handlers/assets.js';
import * as control from './handlers/control.js';
import * as decisions from './handlers/decisions.js';
import * as status from './handlers/status.js';
import { stream } from './handlers/stream.js';
import * as targets from './handlers/targets.js';
import type { Route } from './router.js';

export const ROUTES: readonly Route[] = [
  { method: 'GET', path: '/healthz', access: 'probe', handler: status.healthz },
  { method: 'GET', path: '/readyz', access: 'probe', handler: status.readyz },
  { method: 'GET', path: '/metrics', access: 'scrape', handler: status.metrics },
  { method: 'GET', path: '/api/status', access: 'read', handler: status.status },
  { method: 'GET', path: '/api/overview', access: 'read', handler: status.overview },
  { method: 'GET', path: '/api/overhead', access: 'read', handler: status.overhead },

  { method: 'GET', path: '/api/targets', access: 'read', handler: targets.targets },
  { method: 'GET', path: '/api/hints', access: 'read', handler: targets.hints },
  { method: 'GET', path: '/api/signals', access: 'read', handler: targets.signals },

  { method: 'GET', path: '/api/decisions', access: 'read', handler: decisions.list },
  { method: 'GET', path: '/api/decisions/:id', access: 'read', params: { id: 'decision id' }, handler: decisions.explain },

  { method: 'GET', path: '/api/changes', access: 'read', handler: control.changes },
  { method: 'POST', path: '/api/changes/:knobId/revert', access: 'write', params: { knobId: 'knob id' }, handler: control.revert },
  { method: 'POST', path: '/api/pause', access: 'write', handler: control.pause },
  { method: 'POST', path: '/api/resume', access: 'write', handler: control.resume },

  { method: 'GET', path: '/api/stream', access: 'read', handler: stream },

  // The dashboard page and the files it loads, one route per file in assets.ts.
  ...ASSET_ROUTES,
];
