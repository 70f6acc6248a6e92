/**
 * The table `ebpf-tuner top` draws: fitted to the terminal's width (the least important columns dropped first, no
 * line ever longer), values that are bad against the policies' thresholds highlighted.
 */
import type { TickSnapshot } from '../core/types.js';

/** What makes a value bad: the policies' own thresholds, so that top highlights what the agent would act on. */
export interface Thresholds {
  /** policy.noisy_neighbor.p99_threshold_us: a run-queue p99 above it is a hot tick. */
  runqP99Us: number;
  /** policy.pressure_backoff.psi_some_avg10_threshold: PSI some avg10 (percent) above it is a pressured tick. */
  psiSomeAvg10: number;
}

/** A row of the table: a target's signals, or the host's under the name `(host)`. */
interface Row {
  name: string;
  role: string;
  [signal: string]: unknown;
}

interface Column {
  header: string;
  /** 1 is the most important; a narrow terminal drops the highest numbers first. */
  priority: number;
  get(t: Row): number | undefined;
  fmt(v: number): string;
  /** When a value is bad (highlighted); a column without it is never highlighted. */
  bad?(v: number, th: Thresholds): boolean;
}

const num = (o: unknown, ...path: string[]): number | undefined => {
  let v: unknown = o;
  for (const k of path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
};
const us = (v: number) => (Math.round(v) < 1000 ? `${v.toFixed(0)}µs` : v < 999_950 ? `${(v / 1000).toFixed(1)}ms` : `${(v / 1e6).toFixed(1)}s`);
const pct = (v: number) => `${(v * 100).toFixed(0)}%`;
const rate = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(0));
const bytes = (v: number) => (v >= 1 << 20 ? `${(v / (1 << 20)).toFixed(1)}M` : v >= 1024 ? `${(v / 1024).toFixed(0)}K` : v.toFixed(0));
/** A target's own cgroup pressure when it has one, else the host's; the host row's is at psi.<resource>. */
const psi = (r: string) => (t: Row) =>
  num(t, 'psi', 'cgroup', r, 'someAvg10') ?? num(t, 'psi', 'host', r, 'someAvg10') ?? num(t, 'psi', r, 'someAvg10');
const psiFmt = (v: number) => `${v.toFixed(1)}%`;
const runqHot = (v: number, th: Thresholds) => v > th.runqP99Us;
const pressured = (v: number, th: Thresholds) => v > th.psiSomeAvg10;

/** Columns appear only when some target has the signal, so the view adapts to what is enabled; listed in display order. */
export const COLUMNS: Column[] = [
  { header: 'rq p50', priority: 8, get: (t) => num(t, 'runqlat', 'p50'), fmt: us },
  { header: 'rq p99', priority: 1, get: (t) => num(t, 'runqlat', 'p99'), fmt: us, bad: runqHot },
  { header: 'p99 ewma', priority: 11, get: (t) => num(t, 'runqlat', 'p99Ewma'), fmt: us, bad: runqHot },
  { header: 'oncpu', priority: 4, get: (t) => num(t, 'runqlat', 'oncpuRatio'), fmt: pct },
  { header: 'invol/s', priority: 9, get: (t) => num(t, 'runqlat', 'involuntary'), fmt: rate },
  { header: 'futex p99', priority: 10, get: (t) => num(t, 'futex', 'p99'), fmt: us },
  { header: 'futex/s', priority: 16, get: (t) => num(t, 'futex', 'count'), fmt: rate },
  { header: 'io p99', priority: 7, get: (t) => num(t, 'blkio', 'p99'), fmt: us },
  { header: 'io rd', priority: 12, get: (t) => num(t, 'blkio', 'readBytes'), fmt: bytes },
  { header: 'io seq', priority: 13, get: (t) => num(t, 'blkio', 'seqRatio'), fmt: pct },
  { header: 'retrans', priority: 14, get: (t) => num(t, 'net', 'retransmits'), fmt: rate },
  { header: 'drops', priority: 15, get: (t) => num(t, 'net', 'drops'), fmt: rate },
  { header: 'psi cpu', priority: 2, get: psi('cpu'), fmt: psiFmt, bad: pressured },
  { header: 'psi mem', priority: 5, get: psi('memory'), fmt: psiFmt, bad: pressured },
  { header: 'psi io', priority: 6, get: psi('io'), fmt: psiFmt, bad: pressured },
  { header: 'throttle', priority: 3, get: (t) => num(t, 'cgstat', 'throttledRatio'), fmt: pct, bad: (v) => v > 0 },
];

/** Columns a terminal shows: each code point one column (µ, —, … included), escape sequences none. */
export function displayWidth(s: string): number {
  return Array.from(s.replace(/\x1b\[[0-9;]*m/g, '')).length;
}

/** Cut plain text to `width` columns, marking a cut with "…". */
export function fit(s: string, width: number): string {
  const chars = Array.from(s);
  if (chars.length <= width) return s;
  return width <= 0 ? '' : chars.slice(0, width - 1).join('') + '…';
}

/**
 * Which columns fit in `available` terminal columns, each taking its width plus `sep`: the least important (highest
 * priority number) are dropped first until the rest fit. Returns the kept ones in their original order.
 */
export function chooseColumns<C extends { width: number; priority: number }>(cols: readonly C[], available: number, sep = 1): C[] {
  const kept = [...cols].sort((a, b) => a.priority - b.priority);
  let used = kept.reduce((n, c) => n + c.width + sep, 0);
  while (kept.length > 0 && used > available) used -= kept.pop()!.width + sep;
  return cols.filter((c) => kept.includes(c));
}

/** The terminal's width: --width when given, else the terminal's columns, else (not a terminal) 80. */
export function terminalWidth(option: number | undefined, stdout: { isTTY?: boolean; columns?: number } = process.stdout): number {
  if (option !== undefined) return option;
  return stdout.isTTY === true && typeof stdout.columns === 'number' && stdout.columns > 0 ? stdout.columns : 80;
}

export interface RenderOptions {
  color: boolean;
  width: number;
  thresholds: Thresholds;
}

const BOLD = '\x1b[1m';
const RED = '\x1b[1;31m';
const RESET = '\x1b[0m';

/**
 * The table: one row per target (and the host), as many signal columns as fit in `width`, no line longer than it.
 * A value is highlighted only when it is bad against its threshold (run-queue p99 above noisy_neighbor's, PSI above
 * pressure_backoff's, any throttling), never for merely being the largest of its column.
 */
export function renderTop(s: TickSnapshot, opts: RenderOptions): string {
  const { color, width, thresholds } = opts;
  const rows: Row[] = Object.values(s.targets);
  if (s.host) rows.push({ ...s.host, name: '(host)', role: '-' });
  const present = COLUMNS.filter((c) => rows.some((r) => c.get(r) !== undefined)).map((c) => {
    const cells = rows.map((r) => {
      const v = c.get(r);
      return { text: v === undefined ? '-' : c.fmt(v), bad: v !== undefined && c.bad !== undefined && c.bad(v, thresholds) };
    });
    return { ...c, cells, width: Math.max(displayWidth(c.header), 6, ...cells.map((x) => displayWidth(x.text))) };
  });
  const nameW = Math.min(16, Math.max(6, ...rows.map((r) => displayWidth(r.name))));
  const roleW = Math.max(4, ...rows.map((r) => displayWidth(String(r.role))));
  const cols = chooseColumns(present, width - nameW - 1 - roleW);
  const pad = (t: string, w: number, left: boolean) => {
    const gap = ' '.repeat(Math.max(0, w - displayWidth(t)));
    return left ? t + gap : gap + t;
  };
  const head = [pad('target', nameW, true), pad('role', roleW, true), ...cols.map((c) => pad(c.header, c.width, false))].join(' ');
  const title = fit(`ebpf-tuner top — ${new Date(s.time).toISOString()} — window ${s.windowMs} ms`, width);
  const lines = [title, '', color ? `${BOLD}${fit(head, width)}${RESET}` : fit(head, width)];
  rows.forEach((r, i) => {
    const cells = cols.map((c) => {
      const cell = c.cells[i];
      const text = pad(cell.text, c.width, false);
      return color && cell.bad ? `${RED}${text}${RESET}` : text;
    });
    const line = [pad(fit(r.name, nameW), nameW, true), pad(fit(String(r.role), roleW), roleW, true), ...cells].join(' ');
    // Only a width too narrow for the name and role alone can overflow (and then no column was kept to colour).
    lines.push(cols.length > 0 ? line : fit(line, width));
  });
  const hidden = present.filter((c) => !cols.includes(c));
  if (hidden.length > 0) lines.push('', fit(`${hidden.length} more column${hidden.length === 1 ? '' : 's'} with --width or a wider terminal: ${hidden.map((c) => c.header).join(', ')}`, width));
  return lines.join('\n');
}
