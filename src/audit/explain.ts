/**
 * The text of `ebpf-tuner explain ID`: one decision and what followed it (the closed loop's verdict, a revert), in
 * plain lines. The CLI prints it and the HTTP server returns it with /api/decisions/ID, so the dashboard's decision
 * view and the terminal always say the same thing. Also how a hold reads (`status`, and `explain` of a held change).
 */
import { describeVerdict } from '../engine/closed-loop.js';
import type { Hold } from '../engine/holds.js';
import type { BusDecision } from '../core/events.js';
import type { AuditRecord } from './audit.js';

/** UTC, to the second: `2026-12-05 13:04:11Z`. */
export function auditTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** What `explain` can explain: an audited decision, or one heard on the bus (a shadow choice among them). */
export type Explainable = BusDecision & Pick<AuditRecord, 'dryRun'>;

/** The lines `explain` prints for `rec`, followed by the later decisions that refer to it. */
export function explainLines(rec: Explainable, related: readonly Explainable[]): string[] {
  const lines = [
    `${rec.id} at ${auditTime(rec.time)}: ${rec.dryRun ? 'dry run, nothing was changed — ' : ''}${rec.kind} — ${rec.action} on ${rec.target}, by ${rec.rule}`,
    `why: ${rec.reason}`,
  ];
  if (rec.from || rec.to) lines.push(`change: ${rec.from ?? '?'} → ${rec.to ?? '?'}`);
  if (rec.expected) lines.push(`expected: ${rec.expected}`);
  if (rec.evidence && Object.keys(rec.evidence).length) {
    lines.push('evidence:');
    for (const [k, v] of Object.entries(rec.evidence)) lines.push(`  ${k} = ${Number.isInteger(v) ? v : v.toFixed(3)}`);
  }
  if (rec.outcome) lines.push(`outcome: ${rec.outcome}`);
  if (rec.verdict) lines.push(`verdict: ${rec.verdict.verdict} on ${rec.verdict.decisionId} — ${describeVerdict(rec.verdict)}`);
  for (const r of related) {
    lines.push(`then ${r.id} at ${auditTime(r.time)}: ${r.kind} — ${r.reason}${r.outcome ? ` [${r.outcome}]` : ''}`);
    if (r.verdict) lines.push(`  verdict: ${r.verdict.verdict} — ${describeVerdict(r.verdict)}`);
  }
  if (rec.dryRun && (rec.kind === 'dry-run' || rec.kind === 'refused')) lines.push('no verdict: a dry run changes nothing, so there is no effect to judge');
  return lines;
}

/**
 * `target action held by rule since TIME (for 1m 5s): reason`, counted to `now`. The reason's numbers are those of
 * the hold's last report; when that is more than a tick or two old (the agent saves holds every few ticks), it says so.
 */
export function holdLine(h: Hold, now = h.time): string {
  const asOf = now - h.time > 2_000 ? ` [as of ${auditTime(h.time)}]` : '';
  return `${h.target} ${h.action} held by ${h.rule} since ${auditTime(h.since)} (for ${span(now - h.since)}): ${h.reason}${asOf}`;
}

function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m ${s % 60}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
}

/**
 * `held`: the hold the running agent keeps now on this change, so the text says why it is still in effect (counted to
 * `now`).
 */
export function explainText(rec: Explainable, related: readonly Explainable[], held?: Hold, now?: number): string {
  const lines = explainLines(rec, related);
  if (held) lines.push(`now: ${holdLine(held, now)}`);
  return lines.join('\n');
}
