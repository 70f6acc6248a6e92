/**
 * `ebpf-tuner top`: a live terminal view of every target's signals, refreshed in place each tick, the worst value of
 * each column highlighted. `top --once --json` prints one snapshot (after one window) as JSON — the stable
 * machine-readable view; its fields are documented in docs/signals.md. Runs the signals only: it acts on nothing.
 */
import { channels } from '../core/events.js';
import { createLogger } from '../core/log.js';
import type { TargetSignals, TickSnapshot } from '../core/types.js';
import { loadConfig } from '../config/load.js';
import { assertSafeConfigFile } from '../security/perms.js';
import { asUsage } from './usage.js';
import { Agent } from '../agent/agent.js';

interface Column {
  header: string;
  get(t: TargetSignals): number | undefined;
  fmt(v: number): string;
  /** Which direction is bad: the worst value in the column is highlighted. */
  worse: 'high' | 'low';
}

const num = (o: unknown, ...path: string[]): number | undefined => {
  let v: unknown = o;
  for (const k of path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
};
const us = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(1)}ms` : `${v.toFixed(0)}us`);
const pct = (v: number) => `${(v * 100).toFixed(0)}%`;
const rate = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(0));
const bytes = (v: number) => (v >= 1 << 20 ? `${(v / (1 << 20)).toFixed(1)}M` : v >= 1024 ? `${(v / 1024).toFixed(0)}K` : v.toFixed(0));

/** Columns appear only when some target has the signal, so the view adapts to what is enabled. */
export const COLUMNS: Column[] = [
  { header: 'rq p50', get: (t) => num(t, 'runqlat', 'p50'), fmt: us, worse: 'high' },
  { header: 'rq p99', get: (t) => num(t, 'runqlat', 'p99'), fmt: us, worse: 'high' },
  { header: 'p99 ewma', get: (t) => num(t, 'runqlat', 'p99Ewma'), fmt: us, worse: 'high' },
  { header: 'oncpu', get: (t) => num(t, 'runqlat', 'oncpuRatio'), fmt: pct, worse: 'low' },
  { header: 'invol/s', get: (t) => num(t, 'runqlat', 'involuntary'), fmt: rate, worse: 'high' },
  { header: 'futex p99', get: (t) => num(t, 'futex', 'p99'), fmt: us, worse: 'high' },
  { header: 'futex/s', get: (t) => num(t, 'futex', 'count'), fmt: rate, worse: 'high' },
  { header: 'io p99', get: (t) => num(t, 'blkio', 'p99'), fmt: us, worse: 'high' },
  { header: 'io rd', get: (t) => num(t, 'blkio', 'readBytes'), fmt: bytes, worse: 'high' },
  { header: 'io seq', get: (t) => num(t, 'blkio', 'seqRatio'), fmt: pct, worse: 'low' },
  { header: 'retrans', get: (t) => num(t, 'net', 'retransmits'), fmt: rate, worse: 'high' },
  { header: 'drops', get: (t) => num(t, 'net', 'drops'), fmt: rate, worse: 'high' },
  { header: 'psi cpu', get: (t) => num(t, 'psi', 'cgroup', 'cpu', 'someAvg10') ?? num(t, 'psi', 'host', 'cpu', 'someAvg10'), fmt: (v) => `${v.toFixed(1)}%`, worse: 'high' },
  { header: 'throttle', get: (t) => num(t, 'cgstat', 'throttledRatio'), fmt: pct, worse: 'high' },
];

export function renderTop(s: TickSnapshot, color: boolean): string {
  const rows: TargetSignals[] = Object.values(s.targets);
  if (s.host) rows.push({ name: '(host)', role: '-', ...(s.host as Record<string, unknown>) } as unknown as TargetSignals);
  const cols = COLUMNS.filter((c) => rows.some((r) => c.get(r) !== undefined));
  const worst = cols.map((c) => {
    const vs = rows.map((r) => c.get(r)).filter((v): v is number => v !== undefined);
    return vs.length > 1 ? (c.worse === 'high' ? Math.max(...vs) : Math.min(...vs)) : undefined;
  });
  const w = 10;
  const head = ['target'.padEnd(16), 'role'.padEnd(8), ...cols.map((c) => c.header.padStart(w))].join(' ');
  const lines = [`ebpf-tuner top — ${new Date(s.time).toISOString()} — window ${s.windowMs} ms`, '', color ? `\x1b[1m${head}\x1b[0m` : head];
  for (const r of rows) {
    const cells = cols.map((c, i) => {
      const v = c.get(r);
      const text = (v === undefined ? '-' : c.fmt(v)).padStart(w);
      return color && v !== undefined && v === worst[i] ? `\x1b[1;31m${text}\x1b[0m` : text;
    });
    lines.push([r.name.slice(0, 16).padEnd(16), String(r.role).padEnd(8), ...cells].join(' '));
  }
  return lines.join('\n');
}

export async function topCommand(opts: { config?: string; once?: boolean; json?: boolean }): Promise<void> {
  if (opts.config) asUsage(() => assertSafeConfigFile(opts.config!));
  const config = asUsage(() => loadConfig(opts.config));
  const agent = new Agent({ config, log: createLogger({ level: 'warn', fd: 2 }), stateDir: '/nonexistent', dryRun: true, dryRunAudit: false });
  await agent.start();
  const tty = process.stdout.isTTY === true;
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => (done = r));
  const onTick = (m: unknown) => {
    const s = m as TickSnapshot;
    if (opts.once) {
      process.stdout.write((opts.json ? JSON.stringify(s) : renderTop(s, false)) + '\n');
      done();
      return;
    }
    if (opts.json) process.stdout.write(JSON.stringify(s) + '\n');
    else process.stdout.write((tty ? '\x1b[H\x1b[2J' : '') + renderTop(s, tty) + '\n');
  };
  channels.tick.subscribe(onTick);
  process.once('SIGINT', done);
  process.once('SIGTERM', done);
  await finished;
  channels.tick.unsubscribe(onTick);
  await agent.stop();
  setImmediate(() => process.exit(0));
}
