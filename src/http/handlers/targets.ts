/**
 * Handlers for the configured targets: the list, the advice published for them, and their signals — every kept
 * snapshot, or one target's declared charts. Also the one lookup that turns a target name from a request into a 404
 * when the agent knows no such target, shared with the stream's per-target view.
 */
import { z } from 'zod';
import type { Handler, HttpApp } from '../context.js';
import { buildTargetDetails } from '../details.js';
import { holdsOf } from '../overview.js';
import { HttpError } from '../errors.js';
import { NameSchema, parseQuery, sendBody, sendJson } from '../respond.js';

const SignalsQuery = z.object({ target: NameSchema.optional() });

/**
 * A target's role: from the configuration (a name under a configured target, `NAME/...`, takes its role), else from
 * the newest kept tick that has it (a target no longer configured). Undefined when the agent knows no such name.
 */
function targetRole({ control, telemetry }: HttpApp, name: string): string | undefined {
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
}

/** The target's role; 404 when the agent knows no such target. */
export function knownTarget(app: HttpApp, name: string): string {
  const role = targetRole(app, name);
  if (role === undefined) throw new HttpError(404, 'NOT_FOUND', `find target ${name}: no such target — list them with GET /api/targets or /api/overview`);
  return role;
}

export const targets: Handler = ({ app, res }) => {
  const holds = holdsOf(app.control);
  sendBody(res, '/api/targets', {
    targets: app.control.targets().map((t) => {
      const mine = holds.filter((h) => h.target === t.name);
      return mine.length > 0 ? { ...t, holds: mine } : t;
    }),
  });
};

export const hints: Handler = ({ app, res }) => sendJson(res, 200, { hints: app.control.hints?.() ?? {} });

export const signals: Handler = ({ app, res, query }) => {
  const { telemetry } = app;
  const { target } = parseQuery(SignalsQuery, query);
  if (target !== undefined) {
    const role = knownTarget(app, target);
    sendBody(res, '/api/signals', buildTargetDetails(telemetry.ticksKept(), target, role));
    return;
  }
  // Snapshots are kept as the JSON text they were serialised to on arrival, so this only concatenates.
  sendJson(
    res,
    200,
    `{"windowMs":${JSON.stringify(telemetry.windowMs ?? null)},"fields":${JSON.stringify(telemetry.fieldList())},` +
      `"last":${telemetry.lastSnapshotJson() ?? 'null'},"history":[${telemetry.historyJson().join(',')}]}`,
    true,
  );
};
