/**
 * The /metrics page: Prometheus text exposition format 0.0.4. Agent metrics are prefixed `ebpf_tuner_`, in base units
 * (seconds, bytes, 0–1 ratios), with labels from bounded sets (target name, decision kind and action, BPF program
 * name, PSI resource; never a pid). Signal metrics are declared by each signal in its folder's metrics.ts and
 * gathered in src/signals/index.ts; the agent's own are below.
 *
 * The agent's families are written by hand: every value is read at scrape time from state someone else owns (the last
 * tick snapshot, the counters Telemetry sums, the kernel's BPF program totals, the control surface), which prom-client's
 * in-process accumulators would only mirror. The process itself is described by prom-client's default collectors,
 * under the standard `process_*` and `nodejs_*` names every Node dashboard already knows. The output is checked
 * against an independent parser and `promtool check metrics` in the tests.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { CumulativeHistogram } from '../core/types.js';
import { SIGNAL_METRICS } from '../signals/index.js';
import { bucketLe, type Labels } from '../signals/metrics.js';
import type { Telemetry } from './telemetry.js';
import type { AgentControl } from './types.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';



class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: 'gauge' | 'counter', help: string, samples: [Labels | undefined, number][]): void {
    if (samples.length === 0) return;
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) this.lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
  }

  /** A histogram of log2 µs buckets: `le` in seconds, counts cumulative over buckets, the last kernel bucket +Inf. */
  histogram(name: string, help: string, samples: [Labels, CumulativeHistogram][]): void {
    if (samples.length === 0) return;
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} histogram`);
    for (const [labels, h] of samples) {
      let acc = 0;
      const last = h.counts.length - 1;
      for (let i = 0; i < last; i++) {
        acc += h.counts[i] ?? 0;
        this.lines.push(`${name}_bucket${formatLabels({ ...labels, le: formatValue(bucketLe(i)) })} ${acc}`);
      }
      acc += h.counts[last] ?? 0;
      // +Inf and _count from the buckets, so they agree even when a per-CPU read raced the counter beside them.
      this.lines.push(`${name}_bucket${formatLabels({ ...labels, le: '+Inf' })} ${acc}`);
      this.lines.push(`${name}_sum${formatLabels(labels)} ${formatValue(h.sumUs * 1e-6)}`);
      this.lines.push(`${name}_count${formatLabels(labels)} ${acc}`);
    }
  }

  raw(text: string): void {
    if (text.length > 0) this.lines.push(text.replace(/\n$/, ''));
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function escapeLabelValue(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatLabels(labels: Labels | undefined): string {
  if (!labels) return '';
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export interface MetricsContext {
  telemetry: Telemetry;
  control: AgentControl;
  version: string;
  sseClients: number;
  /** prom-client's default process and Node.js collectors. */
  process: Registry;
}

let processes: Registry | undefined;

/**
 * prom-client's default collectors: `process_*` (CPU, RSS, fds, start time) and `nodejs_*`. One per process: they
 * describe the process, and their event-loop and GC observers cannot be switched off again.
 */
export function processRegistry(): Registry {
  if (!processes) {
    processes = new Registry();
    // The event-loop delay monitor samples every 100 ms, not prom-client's 10: its timer waking the agent 100 times a
    // second cost more than everything else the server did at rest (1.15% of a core with the default config against
    // 0.15% without --listen; 0.4–0.5% at 100 ms, measured over 20 s).
    collectDefaultMetrics({ register: processes, eventLoopMonitoringPrecision: 100 });
    // Gauges prom-client names with a counter's suffix; `promtool check metrics` rejects them, and the plain
    // nodejs_active_{handles,requests,resources} gauges beside them carry the same numbers.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      processes.removeSingleMetric(name);
    }
  }
  return processes;
}

export async function renderMetrics(ctx: MetricsContext): Promise<string> {
  const { telemetry: t, control } = ctx;
  const e = new Exposition();

  e.family('ebpf_tuner_build_info', 'gauge', 'Always 1; the version label says which agent is running.', [
    [{ version: ctx.version }, 1],
  ]);
  e.family('ebpf_tuner_ready', 'gauge', '1 once signals are attached and the first tick was taken.', [
    [undefined, safe(() => (control.ready() ? 1 : 0))],
  ]);
  e.family('ebpf_tuner_paused', 'gauge', '1 while the agent is paused and makes no changes.', [
    [undefined, safe(() => (control.paused() ? 1 : 0))],
  ]);
  e.family('ebpf_tuner_ticks_total', 'counter', 'Tick snapshots received since start.', [[undefined, t.ticks]]);
  if (t.lastTickTime !== undefined) {
    e.family(
      'ebpf_tuner_last_tick_timestamp_seconds',
      'gauge',
      'Time of the last tick snapshot, seconds since the epoch.',
      [[undefined, t.lastTickTime / 1000]],
    );
  }
  if (t.windowMs !== undefined) {
    e.family('ebpf_tuner_tick_window_seconds', 'gauge', 'Window length the last tick snapshot covers.', [
      [undefined, t.windowMs / 1000],
    ]);
  }

  const view = t.lastView;
  for (const m of SIGNAL_METRICS) {
    if (m.type === 'histogram') e.histogram(m.name, m.help, view ? m.read(view) : []);
    else if (m.type === 'counter' && m.source === 'delta') e.family(m.name, 'counter', m.help, t.counterSamples(m.name));
    else e.family(m.name, m.type, m.help, view ? m.read(view) : []);
  }

  const decisions: [Labels, number][] = [...t.decisionCounts.values()].map((d) => [
    { kind: d.kind, action: d.action },
    d.n,
  ]);
  e.family('ebpf_tuner_decisions_total', 'counter', 'Decisions made since start, by kind and action.', decisions);

  let active = 0;
  try {
    for (const c of control.changes()) if (c.state === 'active') active++;
  } catch {
    active = NaN;
  }
  e.family('ebpf_tuner_changes_active', 'gauge', 'Knob changes the agent made that are in effect now.', [
    [undefined, active],
  ]);

  let progs: { name: string; runTimeNs: number; runCnt: number }[] = [];
  try {
    progs = control.programStats();
  } catch {
    progs = [];
  }
  e.family(
    'ebpf_tuner_bpf_program_run_seconds_total',
    'counter',
    "Kernel time spent in each of the agent's BPF programs (needs kernel.bpf_stats_enabled=1).",
    progs.map((p) => [{ program: p.name }, p.runTimeNs / 1e9]),
  );
  e.family(
    'ebpf_tuner_bpf_program_runs_total',
    'counter',
    "Runs of each of the agent's BPF programs (needs kernel.bpf_stats_enabled=1).",
    progs.map((p) => [{ program: p.name }, p.runCnt]),
  );
  e.family('ebpf_tuner_http_sse_clients', 'gauge', 'Dashboard clients connected to the live stream.', [
    [undefined, ctx.sseClients],
  ]);
  e.family('ebpf_tuner_http_history_ticks', 'gauge', 'Tick snapshots the HTTP server keeps for /api/signals and the dashboard.', [
    [undefined, t.historySize],
  ]);
  e.family('ebpf_tuner_http_history_bytes', 'gauge', 'What the kept tick snapshots count against their byte budget.', [
    [undefined, t.historyBytesKept],
  ]);
  e.family(
    'ebpf_tuner_signal_fields_dropped_total',
    'counter',
    'Signal fields not shown on the dashboard because of the field cap.',
    [[undefined, t.fields.dropped]],
  );
  e.family('ebpf_tuner_bus_events_dropped_total', 'counter', 'Bus events the HTTP server could not use (malformed).', [
    [undefined, t.droppedEvents],
  ]);
  // Before the event-loop monitor's first sample (its first 100 ms) prom-client writes its lag gauges as "Nan" and the
  // minimum as 2^63 ns: they are left out until there is a sample.
  let text = await ctx.process.metrics();
  if (/^nodejs_eventloop_lag_mean_seconds nan$/im.test(text)) text = text.replace(/^nodejs_eventloop_lag_\w* [^\n]*\n/gm, '');
  e.raw(text);
  return e.text();
}

function safe(fn: () => number): number {
  try {
    return fn();
  } catch {
    return NaN;
  }
}
