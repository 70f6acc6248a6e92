/**
 * The text of `ebpf-tuner explain ID`: one decision and what followed it (the closed loop's verdict, a revert), in
 * plain lines. The CLI prints it and the HTTP server returns it with /api/decisions/ID, so the dashboard's decision
 * view and the terminal always say the same thing.
 */
import { describeVerdict } from '../engine/closed-loop.js';
import type { AuditRecord } from './audit.js';

/** UTC, to the second: `2026-12-05 13:04:11Z`. */
export function auditTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** The lines `explain` prints for `rec`, followed by the later decisions that refer to it. */
export function explainLines(rec: AuditRecord, related: readonly AuditRecord[]): string[] {
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

export function explainText(rec: AuditRecord, related: readonly AuditRecord[]): string {
  return explainLines(rec, related).join('\n');
}
