/**
 * One target's signals for the dashboard's details view: a declared list of charts with human titles and units
 * (not field names), column-oriented history over the kept ticks, gaps as null with the reason the snapshot gives
 * (a cgroup the target lacks, pressure that cgroup v1 does not keep, a signal that reported nothing) instead of 0,
 * and the values that are not time series (limits, CPU numbers, device lists, drop reasons) as a table of latest
 * values. Host pressure is not repeated here: it is the host's, shown once on the overview.
 */
import { isRecord } from './fields.js';
import { round3 } from './overview.js';
import type { StoredTick } from './telemetry.js';

export type ChartUnit = 'seconds' | 'ratio' | 'bytes' | 'bytes/s' | '/s' | 'cores' | 'count';

interface SeriesDecl {
  label: string;
  /** Dotted path below the target's signals. */
  path: string;
  /** Multiply the raw value by this (µs → s, percent → ratio). */
  scale?: number;
  /** The raw value is a per-tick count: divide by the tick's window to get a rate. */
  perSecond?: boolean;
}

interface ChartDecl {
  id: string;
  title: string;
  unit: ChartUnit;
  help: string;
  /** The signal (top-level key) the values come from; its absence in a tick is a gap. */
  signal: string;
  series: SeriesDecl[];
  /** A reason the snapshot gives for this chart having no values in this tick. */
  gap?: (sig: Record<string, unknown>) => string | undefined;
}

const US = 1e-6;

function unavailable(sig: Record<string, unknown>, part: string): string | undefined {
  const cg = sig.cgstat;
  if (!isRecord(cg) || !Array.isArray(cg.unavailable)) return undefined;
  return cg.unavailable.find((u): u is string => typeof u === 'string' && u.startsWith(`${part}:`));
}

export const CHARTS: readonly ChartDecl[] = [
  {
    id: 'runq',
    title: 'Run-queue latency',
    unit: 'seconds',
    help: 'How long a runnable thread of the target waited for a CPU, per tick; "p99 smoothed" is what the rules compare.',
    signal: 'runqlat',
    series: [
      { label: 'p50', path: 'runqlat.p50', scale: US },
      { label: 'p90', path: 'runqlat.p90', scale: US },
      { label: 'p99', path: 'runqlat.p99', scale: US },
      { label: 'p99 smoothed', path: 'runqlat.p99Ewma', scale: US },
    ],
  },
  {
    id: 'oncpu',
    title: 'On-CPU share',
    unit: 'ratio',
    help: 'Share of the time the target’s threads were running, of the time they were running or waiting for a CPU.',
    signal: 'runqlat',
    series: [{ label: 'on CPU', path: 'runqlat.oncpuRatio' }],
  },
  {
    id: 'switches',
    title: 'Context switches and wakeups',
    unit: '/s',
    help: 'Per second: switches away from the target’s threads (involuntary = preempted), wakeups and CPU migrations.',
    signal: 'runqlat',
    series: [
      { label: 'involuntary', path: 'runqlat.involuntary', perSecond: true },
      { label: 'voluntary', path: 'runqlat.voluntary', perSecond: true },
      { label: 'wakeups', path: 'runqlat.wakeups', perSecond: true },
      { label: 'migrations', path: 'runqlat.migrations', perSecond: true },
    ],
  },
  {
    id: 'cpu',
    title: 'CPU used by the cgroup',
    unit: 'cores',
    help: 'CPU time charged to the target’s cgroup per second of the tick (cpuacct).',
    signal: 'cgstat',
    series: [{ label: 'cores', path: 'cgstat.cpuCores' }],
    gap: (sig) => unavailable(sig, 'cpuacct'),
  },
  {
    id: 'throttle',
    title: 'CPU throttling',
    unit: 'ratio',
    help: 'Share of CFS bandwidth periods in which the cgroup was throttled by its quota.',
    signal: 'cgstat',
    series: [{ label: 'throttled periods', path: 'cgstat.throttledRatio' }],
  },
  {
    id: 'memory',
    title: 'Memory',
    unit: 'bytes',
    help: 'Memory charged to the target’s cgroup: total, anonymous, and page cache.',
    signal: 'cgstat',
    series: [
      { label: 'used', path: 'cgstat.memoryBytes' },
      { label: 'anonymous', path: 'cgstat.anonBytes' },
      { label: 'page cache', path: 'cgstat.fileBytes' },
    ],
    gap: (sig) => unavailable(sig, 'memory'),
  },
  {
    id: 'pressure',
    title: 'Pressure on the target’s cgroup',
    unit: 'ratio',
    help: 'PSI "some" avg10 of the target’s own cgroup: share of time at least one task stalled on the resource.',
    signal: 'psi',
    series: [
      { label: 'cpu', path: 'psi.cgroup.cpu.someAvg10', scale: 0.01 },
      { label: 'memory', path: 'psi.cgroup.memory.someAvg10', scale: 0.01 },
      { label: 'io', path: 'psi.cgroup.io.someAvg10', scale: 0.01 },
    ],
    gap: (sig) => {
      const psi = sig.psi;
      return isRecord(psi) && typeof psi.cgroupUnavailable === 'string' ? psi.cgroupUnavailable : undefined;
    },
  },
  {
    id: 'futex',
    title: 'Futex wait time',
    unit: 'seconds',
    help: 'How long one wait on a futex (a lock or condition variable) blocked, per tick.',
    signal: 'futex',
    series: [
      { label: 'p50', path: 'futex.p50', scale: US },
      { label: 'p99', path: 'futex.p99', scale: US },
    ],
  },
  {
    id: 'blkio-latency',
    title: 'Block I/O latency',
    unit: 'seconds',
    help: 'Time from issue to completion of the target’s block requests, per tick.',
    signal: 'blkio',
    series: [
      { label: 'p50', path: 'blkio.p50', scale: US },
      { label: 'p99', path: 'blkio.p99', scale: US },
    ],
  },
  {
    id: 'blkio-bytes',
    title: 'Block I/O throughput',
    unit: 'bytes/s',
    help: 'Bytes the target read and wrote per second.',
    signal: 'blkio',
    series: [
      { label: 'read', path: 'blkio.readBytes', perSecond: true },
      { label: 'write', path: 'blkio.writeBytes', perSecond: true },
    ],
  },
  {
    id: 'net',
    title: 'TCP retransmits and packet drops',
    unit: '/s',
    help: 'Per second, for the target’s sockets.',
    signal: 'net',
    series: [
      { label: 'retransmits', path: 'net.retransmits', perSecond: true },
      { label: 'drops', path: 'net.drops', perSecond: true },
    ],
  },
  {
    id: 'threads',
    title: 'Threads and CPUs',
    unit: 'count',
    help: 'Threads of the target, those runnable, the CPUs they ran on, and the most runnable threads on one CPU.',
    signal: 'placement',
    series: [
      { label: 'threads', path: 'placement.threads' },
      { label: 'runnable', path: 'placement.runnable' },
      { label: 'CPUs used', path: 'placement.cpusUsed' },
      { label: 'most on one CPU', path: 'placement.pileup' },
    ],
  },
];

export interface DetailGap {
  from: number;
  to: number;
  reason: string;
}

export interface DetailChart {
  id: string;
  title: string;
  unit: ChartUnit;
  help: string;
  series: { label: string; values: (number | null)[] }[];
  /** Spans of ticks without values, with why; adjacent ticks with the same reason are merged. */
  gaps: DetailGap[];
}

export interface DetailFact {
  label: string;
  value: string;
}

export interface TargetDetails {
  target: string;
  role: string;
  windowMs: number | null;
  times: number[];
  charts: DetailChart[];
  /** Latest values that are not time series. */
  facts: DetailFact[];
  /** What the target's signals say they could not read, latest tick. */
  unavailable: string[];
}

/** One tick's values of every chart for the target stream: chart id → [values...] or the gap's reason. */
export interface TargetTickDelta {
  target: string;
  time: number;
  values: Record<string, (number | null)[]>;
  gaps: Record<string, string>;
}

function at(sig: Record<string, unknown>, path: string): unknown {
  let v: unknown = sig;
  for (const p of path.split('.')) v = isRecord(v) ? v[p] : undefined;
  return v;
}

function chartTick(c: ChartDecl, sig: Record<string, unknown> | undefined, windowMs: number | undefined): { values: (number | null)[]; gap?: string } {
  const nulls = c.series.map(() => null);
  if (!sig) return { values: nulls, gap: 'the target was not in this tick (no processes or cgroup)' };
  const why = c.gap?.(sig);
  if (why !== undefined) return { values: nulls, gap: why };
  if (!isRecord(sig[c.signal])) return { values: nulls, gap: `the ${c.signal} signal reported nothing for this target (off, or not applicable)` };
  const secs = windowMs !== undefined && windowMs > 0 ? windowMs / 1000 : 1;
  return {
    values: c.series.map((s) => {
      const v = at(sig, s.path);
      if (typeof v !== 'number' || !Number.isFinite(v)) return null;
      return round3((v * (s.scale ?? 1)) / (s.perSecond ? secs : 1));
    }),
  };
}

function parseTarget(tick: StoredTick, name: string): Record<string, unknown> | undefined {
  const j = tick.targets.get(name);
  if (j === undefined) return undefined;
  const v = JSON.parse(j) as unknown;
  return isRecord(v) ? v : undefined;
}

const BYTES = (n: number): string =>
  n >= 2 ** 60 ? 'unlimited' : n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${Math.round(n / 1024)} KiB`;

function facts(sig: Record<string, unknown>): DetailFact[] {
  const out: DetailFact[] = [];
  const add = (label: string, v: unknown, f: (x: number) => string = String): void => {
    if (typeof v === 'number' && Number.isFinite(v)) out.push({ label, value: f(v) });
  };
  add('cgroup version', at(sig, 'cgstat.version'), (v) => `v${v}`);
  add('memory limit', at(sig, 'cgstat.memoryLimitBytes'), BYTES);
  add('CPUs allowed', at(sig, 'placement.allowedCpus'));
  add('idle CPUs', at(sig, 'placement.idleCpus'));
  add('busiest CPU', at(sig, 'placement.pileupCpu'), (v) => `CPU ${v}`);
  add('block I/O queue depth, max', at(sig, 'blkio.maxInflight'));
  const devices = at(sig, 'blkio.devices');
  if (Array.isArray(devices) && devices.length > 0) {
    out.push({ label: 'block devices', value: devices.map((d) => (isRecord(d) ? String(d.name ?? d.dev ?? '?') : String(d))).join(', ') });
  }
  const reasons = at(sig, 'net.dropReasons');
  if (isRecord(reasons) && Object.keys(reasons).length > 0) {
    out.push({ label: 'packet drop reasons', value: Object.entries(reasons).map(([k, n]) => `${k} ${String(n)}`).join(', ') });
  }
  return out;
}

function unavailableOf(sig: Record<string, unknown> | undefined): string[] {
  if (!sig) return [];
  const out: string[] = [];
  const cg = sig.cgstat;
  if (isRecord(cg) && Array.isArray(cg.unavailable)) for (const u of cg.unavailable) if (typeof u === 'string') out.push(u);
  const psi = sig.psi;
  if (isRecord(psi) && typeof psi.cgroupUnavailable === 'string') out.push(`pressure: ${psi.cgroupUnavailable}`);
  return out;
}

/** The details of `name` over the kept ticks; undefined when no kept tick and no configured target has that name. */
export function buildTargetDetails(ticks: readonly StoredTick[], name: string, role: string): TargetDetails {
  const charts: DetailChart[] = CHARTS.map((c) => ({
    id: c.id,
    title: c.title,
    unit: c.unit,
    help: c.help,
    series: c.series.map((s) => ({ label: s.label, values: [] as (number | null)[] })),
    gaps: [],
  }));
  const times: number[] = [];
  let latest: Record<string, unknown> | undefined;
  for (const tick of ticks) {
    const sig = parseTarget(tick, name);
    if (sig) latest = sig;
    times.push(tick.time);
    CHARTS.forEach((c, ci) => {
      const chart = charts[ci]!;
      const r = chartTick(c, sig, tick.windowMs);
      r.values.forEach((v, si) => chart.series[si]!.values.push(v));
      if (r.gap !== undefined) {
        const g = chart.gaps[chart.gaps.length - 1];
        if (g && g.reason === r.gap && g.to === times[times.length - 2]) g.to = tick.time;
        else chart.gaps.push({ from: tick.time, to: tick.time, reason: r.gap });
      }
    });
  }
  const lastTick = ticks[ticks.length - 1];
  return {
    target: name,
    role: (typeof latest?.role === 'string' ? latest.role : undefined) ?? role,
    windowMs: lastTick?.windowMs ?? null,
    times,
    charts,
    facts: latest ? facts(latest) : [],
    unavailable: unavailableOf(lastTick ? parseTarget(lastTick, name) : undefined),
  };
}

export function targetTickDelta(tick: StoredTick, name: string): TargetTickDelta {
  const sig = parseTarget(tick, name);
  const out: TargetTickDelta = { target: name, time: tick.time, values: {}, gaps: {} };
  for (const c of CHARTS) {
    const r = chartTick(c, sig, tick.windowMs);
    out.values[c.id] = r.values;
    if (r.gap !== undefined) out.gaps[c.id] = r.gap;
  }
  return out;
}
