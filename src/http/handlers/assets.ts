/**
 * The dashboard's files: a fixed list, read once at start, each served under its own route with an ETag. No request
 * path ever reaches the file system; to serve another file, add it to DASHBOARD_FILES.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errnoCode, TunerError } from '../../core/errors.js';
import type { Handler } from '../context.js';
import { COMMON_HEADERS, PAGE_HEADERS } from '../respond.js';
import type { Route } from '../router.js';

export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

interface DashboardFile {
  route: string;
  /** `dashboard`: the page's own sources; `uplot`: uPlot's dist folder in its npm package. */
  from: 'dashboard' | 'uplot';
  name: string;
  type: string;
}

const DASHBOARD_FILES: readonly DashboardFile[] = [
  { route: '/', from: 'dashboard', name: 'index.html', type: 'text/html; charset=utf-8' },
  { route: '/app.js', from: 'dashboard', name: 'app.js', type: 'text/javascript; charset=utf-8' },
  { route: '/style.css', from: 'dashboard', name: 'style.css', type: 'text/css; charset=utf-8' },
  { route: '/vendor/uPlot.iife.min.js', from: 'uplot', name: 'uPlot.iife.min.js', type: 'text/javascript; charset=utf-8' },
  { route: '/vendor/uPlot.min.css', from: 'uplot', name: 'uPlot.min.css', type: 'text/css; charset=utf-8' },
];

/**
 * Reads every file in DASHBOARD_FILES. The dashboard sources sit under src/dashboard in the source tree, and under
 * dist/dashboard when the build (the container image) copies them there; uPlot comes from its npm package.
 */
export function loadAssets(): Map<string, Asset> {
  const here = dirname(fileURLToPath(import.meta.url));
  const dirs: Record<DashboardFile['from'], string[]> = {
    dashboard: [join(here, '..', '..', 'dashboard'), join(here, '..', '..', '..', 'src', 'dashboard')],
    uplot: [join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist')],
  };
  const assets = new Map<string, Asset>();
  for (const { route, from, name, type } of DASHBOARD_FILES) {
    let body: Buffer | undefined;
    let lastErr: unknown;
    for (const dir of dirs[from]) {
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
        `load dashboard asset ${name}: ${errnoCode(lastErr) ?? String(lastErr)} in ${dirs[from].join(', ')}`,
        { cause: lastErr },
      );
    }
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    assets.set(route, { body, type, etag });
  }
  return assets;
}

/** Serves the file loaded for `route`; `no-cache` with an ETag, so a browser revalidates and mostly gets a 304. */
function serve(route: string): Handler {
  return ({ app, req, res }) => {
    const asset = app.assets.get(route);
    if (!asset) throw new Error(`serve ${route}: not loaded at start`);
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
  };
}

/** One GET route per file, for the route table. */
export const ASSET_ROUTES: readonly Route[] = DASHBOARD_FILES.map(({ route }) => ({
  method: 'GET',
  path: route,
  access: 'read',
  handler: serve(route),
}));
