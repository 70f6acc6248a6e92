/**
 * The /metrics page: Prometheus text exposition format 0.0.4, every name prefixed `ebpf_tuner_`, base units, and
 * labels limited to bounded sets (target name, decision kind and action, BPF program name; never a pid).
 *
 * Written by hand rather than with prom-client: every value here is read at scrape time from state someone else
 * owns (the last tick snapshot, the kernel's cumulative BPF counters, the control surface), and the signal metric
 * names are only known once a snapshot arrives. prom-client is built around in-process accumulators with names
 * fixed at registration; feeding it would mean re-registering gauges as fields appear and resetting counters to
 * mirror kernel totals on every scrape. The format itself is small; its escaping rules are implemented below and the
 * output is checked against an independent parser in the tests.
 */
import type { FieldSample } from './fields.js';
import type { Telemetry } from './telemetry.js';
import type { AgentControl } from './types.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Families this module always writes; a signal field that normalises to one of these names is not exported. */
export const FIXED_METRICS = [
  'ebpf_tuner_build_info',
  'ebpf_tuner_start_time_seconds',
  'ebpf_tuner_ready',
  'ebpf_tuner_paused',
  'ebpf_tuner_ticks_total',
  'ebpf_tuner_last_tick_timestamp_seconds',
  'ebpf_tuner_tick_window_seconds',
  'ebpf_tuner_decisions_total',
  'ebpf_tuner_changes_active',
  'ebpf_tuner_bpf_run_time_seconds_total',
  'ebpf_tuner_bpf_run_count_total',
  'ebpf_tuner_process_cpu_seconds_total',
  'ebpf_tuner_process_resident_memory_bytes',
  'ebpf_tuner_http_sse_clients',
  'ebpf_tuner_signal_fields_dropped_total',
  'ebpf_tuner_bus_events_dropped_total',
] as const;

type Labels = Record<string, string>;

class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: 'gauge' | 'counter', help: string, samples: [Labels | undefined, number][]): void {
    if (samples.length === 0) return;
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) this.lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
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
}

export function renderMetrics(ctx: MetricsContext): string {
  const { telemetry: t, control } = ctx;
  const e = new Exposition();

  e.family('ebpf_tuner_build_info', 'gauge', 'Always 1; the version label says which agent is running.', [
    [{ version: ctx.version }, 1],
  ]);
  e.family('ebpf_tuner_start_time_seconds', 'gauge', 'When the HTTP server started, seconds since the epoch.', [
    [undefined, t.startedAt / 1000],
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

  writeSignals(e, t.lastSamples);

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
    'ebpf_tuner_bpf_run_time_seconds_total',
    'counter',
    "Kernel time spent in each of the agent's BPF programs (needs kernel.bpf_stats_enabled=1).",
    progs.map((p) => [{ program: p.name }, p.runTimeNs / 1e9]),
  );
  e.family(
    'ebpf_tuner_bpf_run_count_total',
    'counter',
    "Runs of each of the agent's BPF programs (needs kernel.bpf_stats_enabled=1).",
    progs.map((p) => [{ program: p.name }, p.runCnt]),
  );

  const cpu = process.cpuUsage();
  e.family('ebpf_tuner_process_cpu_seconds_total', 'counter', 'User and system CPU time of the agent process.', [
    [undefined, (cpu.user + cpu.system) / 1e6],
  ]);
  e.family('ebpf_tuner_process_resident_memory_bytes', 'gauge', 'Resident set size of the agent process.', [
    [undefined, process.memoryUsage.rss()],
  ]);
  e.family('ebpf_tuner_http_sse_clients', 'gauge', 'Dashboard clients connected to the live stream.', [
    [undefined, ctx.sseClients],
  ]);
  e.family(
    'ebpf_tuner_signal_fields_dropped_total',
    'counter',
    'Signal fields not exported because of the field cap or a name clash.',
    [[undefined, t.fields.dropped]],
  );
  e.family('ebpf_tuner_bus_events_dropped_total', 'counter', 'Bus events the HTTP server could not use (malformed).', [
    [undefined, t.droppedEvents],
  ]);
  return e.text();
}

function writeSignals(e: Exposition, samples: FieldSample[]): void {
  // The text format wants each family's samples contiguous; a snapshot lists them target by target.
  const byMetric = new Map<string, FieldSample[]>();
  for (const s of samples) {
    const list = byMetric.get(s.field.metric);
    if (list) list.push(s);
    else byMetric.set(s.field.metric, [s]);
  }
  for (const [metric, list] of byMetric) {
    const first = list[0];
    if (!first) continue;
    e.family(
      metric,
      'gauge',
      first.field.help,
      list.map((s) => [s.target === undefined ? undefined : { target: s.target }, s.value]),
    );
  }
}

function safe(fn: () => number): number {
  try {
    return fn();
  } catch {
    return NaN;
  }
}
