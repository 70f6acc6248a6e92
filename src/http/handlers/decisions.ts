/** Handlers for the agent's decisions: the recent ones, and one explained as `ebpf-tuner explain ID` explains it. */
import { z } from 'zod';
import { explainText, type Explainable } from '../../audit/explain.js';
import type { Handler } from '../context.js';
import { HttpError } from '../errors.js';
import { parseName, parseQuery, sendBody, sendJson } from '../respond.js';

/** A page can ask for more decisions than are kept; it gets what there is. The cap only bounds the request. */
const DecisionsQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) });

export const list: Handler = ({ app, res, query }) => {
  const { limit } = parseQuery(DecisionsQuery, query);
  sendJson(res, 200, `{"decisions":[${app.telemetry.decisionsJson(limit).join(',')}]}`, true);
};

export const explain: Handler = ({ app, res, params }) => {
  const { control, telemetry } = app;
  const id = parseName(params.id, 'decision id');
  // The audit trail first: it has the closed loop's later outcome and verdicts; the decisions heard on the bus are
  // the fallback (an agent without an audit trail, or a decision older than it keeps).
  let found: { decision: Explainable; related: Explainable[] } | undefined = control.decision?.(id);
  let source: 'audit' | 'recent' = 'audit';
  if (!found) {
    const rec = telemetry.findDecision(id);
    if (rec) {
      found = { decision: rec, related: telemetry.relatedDecisions(id) };
      source = 'recent';
    }
  }
  if (!found) throw new HttpError(404, 'NOT_FOUND', `explain ${id}: no such decision — list them with GET /api/decisions`);
  sendBody(res, '/api/decisions/ID', { ...found, source, explain: explainText(found.decision, found.related) });
};
