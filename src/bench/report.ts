/**
 * The human-readable report of a benchmark run (summary.md): the command, the machine, every stated target with
 * what was measured, then one Markdown table per section with its notes and chart. Pure: it formats results that
 * were measured elsewhere.
 */
import type { Machine } from './machine.js';
import { SECTION_IDS, type SectionResult, type Table } from './types.js';

export interface ReportInput {
  command: string;
  quick: boolean;
  startedAt: string;
  seconds: number;
  machine: Machine;
  sections: SectionResult[];
  /** Chart file name per section id, when one was drawn. */
  charts: Record<string, string>;
  warnings: string[];
}

function cell(v: string | number): string {
  return String(v).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function markdownTable(t: Pick<Table, 'columns' | 'rows'>): string {
  const head = `| ${t.columns.map(cell).join(' | ')} |`;
  const sep = `| ${t.columns.map(() => '---').join(' | ')} |`;
  const body = t.rows.map((r) => `| ${r.map(cell).join(' | ')} |`);
  return [head, sep, ...body].join('\n');
}

export function duration(seconds: number): string {
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

export function renderSummary(r: ReportInput): string {
  const m = r.machine;
  const out: string[] = [];
  out.push('# ebpf-tuner benchmarks', '');
  out.push(`Command: \`${r.command}\``, '');
  out.push(`Started ${r.startedAt}; took ${duration(r.seconds)}.${r.quick ? ' **Quick mode**: 1 round and short runs — a smoke test, not a measurement.' : ''}`, '');
  out.push('## Machine', '');
  out.push(
    markdownTable({
      columns: ['kernel', 'CPU model', 'vCPUs', 'memory', 'NUMA nodes', 'Node.js'],
      rows: [[m.kernel, m.cpuModel, m.vcpus, `${m.memoryGiB} GiB`, m.numaNodes, m.node]],
    }),
    '',
  );
  out.push(`Peers and tools: ${Object.entries(m.tools).map(([k, v]) => `${k} ${v}`).join('; ')}.`, '');
  for (const w of r.warnings) out.push(`> Warning: ${w}`, '');

  const goals = r.sections.flatMap((s) => s.goals.map((g) => [s.title, g.goal, g.measured, g.met === null ? 'not measured' : g.met ? 'met' : 'not met']));
  if (goals.length) {
    out.push('## Targets', '');
    out.push(markdownTable({ columns: ['section', 'target', 'measured', 'result'], rows: goals }), '');
  }

  for (const s of r.sections) {
    out.push(`## ${SECTION_IDS.indexOf(s.id) + 1}. ${s.title}`, '');
    if (s.status !== 'ok') {
      out.push(`**${s.status}**: ${s.reason ?? ''}`, '');
      continue;
    }
    for (const t of s.tables) out.push(`${t.title}:`, '', markdownTable(t), '');
    for (const n of s.notes) out.push(`- ${n}`);
    if (s.notes.length) out.push('');
    out.push(`Section time: ${duration(s.seconds)}.`, '');
    const chart = r.charts[s.id];
    if (chart) out.push(`![${s.title}](${chart})`, '');
  }
  return out.join('\n');
}
