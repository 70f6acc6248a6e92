/**
 * Every signal metric /metrics exports, declared once: name, type, unit, help and where its value comes from in a
 * tick snapshot. Names are written out here, never derived from TypeScript field names, so renaming a field cannot
 * rename a metric (it breaks the reader below, and the type checker says so).
 *
 * Types follow what the kernel keeps. The kernel's log2 histograms (run-queue wait, futex wait, block I/O latency)
 * are cumulative since start, so they are exported as Prometheus histograms: bucket i of a log2 histogram in µs holds
 * [2^i, 2^(i+1)) µs, which is exactly the bucket `le = 2^(i+1) µs` in seconds, and the last kernel bucket (which
 * holds everything above) is `+Inf`. Counts of events and time are counters: either a cumulative value the kernel
 * reports as such (`total`, e.g. PSI stall totals), or the sum of the per-tick differences the signal already takes
 * of a cumulative kernel counter (`delta`), added up by Telemetry on every tick so no tick is lost between scrapes.
 * Gauges are only things that are a level at one instant (memory, threads, a ratio the kernel averages itself).
 */
import type { CumulativeHistogram, TargetSignals } from '../core/types.js';
import type { BlkioWindow } from '../signals/blkio/blkio.js';
import type { CgstatWindow } from '../signals/cgstat/cgstat.js';
import type { FutexWindow } from '../signals/futex/futex.js';
import type { NetWindow } from '../signals/net/net.js';
import type { NumaStats } from '../signals/numa/numa.js';
import type { PlacementStats } from '../signals/placement/placement.js';
import { PSI_RESOURCES, type PsiResources } from '../signals/psi/psi.js';
import type { RunqlatWindow } from '../signals/runqlat/runqlat.js';

export type Labels = Record<string, string>;
export type Unit = 'seconds' | 'bytes' | 'ratio' | '';

/** The parts of a tick snapshot metrics are read from. */
export interface SnapshotView {
  targets: Record<string, TargetSignals>;
  host?: Record<string, unknown>;
}

interface Declared {
  name: string;
  unit: Unit;
  help: string;
}

export interface GaugeDecl extends Declared {
  type: 'gauge';
  read(s: SnapshotView): [Labels, number][];
}

export interface CounterDecl extends Declared {
  type: 'counter';
  /** `total`: the value read is already cumulative. `delta`: it is one tick's increase, to be summed. */
  source: 'total' | 'delta';
  read(s: SnapshotView): [Labels, number][];
}

export interface HistogramDecl extends Declared {
  type: 'histogram';
  read(s: SnapshotView): [Labels, CumulativeHistogram][];
}

export type MetricDecl = GaugeDecl | CounterDecl | HistogramDecl;

const US = 1e-6;

/** What a signal writes under `key` of each target: the signal's own window type. */
function perTarget<W, V>(key: string, pick: (w: W) => [Labels, V][] | V | undefined): (s: SnapshotView) => [Labels, V][] {
  return (s) => {
    const out: [Labels, V][] = [];
    for (const [target, sig] of Object.entries(s.targets)) {
      const w = sig[key] as W | undefined;
      if (w === undefined || w === null) continue;
      push(out, { target }, pick(w));
    }
    return out;
  };
}

/** What a signal reports for the whole host under `snapshot.host[key]`. */
function host<W, V>(key: string, pick: (w: W) => [Labels, V][] | V | undefined): (s: SnapshotView) => [Labels, V][] {
  return (s) => {
    const w = s.host?.[key] as W | undefined;
    const out: [Labels, V][] = [];
    if (w !== undefined && w !== null) push(out, {}, pick(w));
    return out;
  };
}

function push<V>(out: [Labels, V][], base: Labels, v: [Labels, V][] | V | undefined): void {
  if (v === undefined) return;
  if (Array.isArray(v)) for (const [l, x] of v as [Labels, V][]) out.push([{ ...base, ...l }, x]);
  else out.push([base, v]);
}

/** Keeps numbers only: a field a signal left out (unreadable on this host) is no sample rather than NaN. */
function num(v: number | undefined, scale = 1): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v * scale : undefined;
}

function pressure(p: PsiResources | undefined, what: 'total' | 'avg10'): [Labels, number][] {
  const out: [Labels, number][] = [];
  if (!p) return out;
  for (const resource of PSI_RESOURCES) {
    const r = p[resource];
    if (!r) continue;
    if (what === 'total') {
      out.push([{ resource, kind: 'some' }, r.someTotalUs * US]);
      if (r.fullTotalUs !== undefined) out.push([{ resource, kind: 'full' }, r.fullTotalUs * US]);
    } else {
      out.push([{ resource, kind: 'some' }, r.someAvg10 / 100]);
      if (r.fullAvg10 !== undefined) out.push([{ resource, kind: 'full' }, r.fullAvg10 / 100]);
    }
  }
  return out;
}

function latencyHistograms(key: string, what: string): HistogramDecl[] {
  const pick = (w: { hist?: CumulativeHistogram }): CumulativeHistogram | undefined => w.hist;
  return [
    {
      name: `ebpf_tuner_${what}_seconds`,
      type: 'histogram',
      unit: 'seconds',
      help: `${HIST_HELP[key]} of each target's tasks since the agent started.`,
      read: perTarget(key, pick),
    },
    {
      name: `ebpf_tuner_host_${what}_seconds`,
      type: 'histogram',
      unit: 'seconds',
      help: `${HIST_HELP[key]} of every task on the host since the agent started.`,
      read: host(key, pick),
    },
  ];
}

const HIST_HELP: Record<string, string> = {
  runqlat: 'Time runnable before getting a CPU (run-queue latency)',
  futex: 'Time blocked in one futex wait',
  blkio: 'Block I/O request latency, issue to completion,',
};

/** Every signal metric, in the order /metrics writes them. */
export const SIGNAL_METRICS: readonly MetricDecl[] = [
  ...latencyHistograms('runqlat', 'runqueue_latency'),
  {
    name: 'ebpf_tuner_runqueue_latency_p99_smoothed_seconds',
    type: 'gauge',
    unit: 'seconds',
    help: "EWMA across ticks of each tick's run-queue latency p99: the value the agent's rules compare.",
    read: perTarget<RunqlatWindow, number>('runqlat', (w) => num(w.p99Ewma, US)),
  },
  {
    name: 'ebpf_tuner_oncpu_seconds_total',
    type: 'counter',
    source: 'delta',
    unit: 'seconds',
    help: "Time each target's threads spent running on a CPU, as seen at context switches.",
    read: perTarget<RunqlatWindow, number>('runqlat', (w) => num(w.oncpuUs, US)),
  },
  {
    name: 'ebpf_tuner_context_switches_total',
    type: 'counter',
    source: 'delta',
    unit: '',
    help: "Context switches away from each target's threads: involuntary (preempted while runnable) or voluntary.",
    read: perTarget<RunqlatWindow, number>('runqlat', (w) => [
      [{ kind: 'involuntary' }, w.involuntary],
      [{ kind: 'voluntary' }, w.voluntary],
    ]),
  },
  {
    name: 'ebpf_tuner_wakeups_total',
    type: 'counter',
    source: 'delta',
    unit: '',
    help: "Wakeups of each target's threads (switch-ins from the run queue that did not follow a preemption).",
    read: perTarget<RunqlatWindow, number>('runqlat', (w) => num(w.wakeups)),
  },
  {
    name: 'ebpf_tuner_cpu_migrations_total',
    type: 'counter',
    source: 'delta',
    unit: '',
    help: "CPU migrations of each target's threads.",
    read: perTarget<RunqlatWindow, number>('runqlat', (w) => num(w.migrations)),
  },
  ...latencyHistograms('futex', 'futex_wait'),
  ...latencyHistograms('blkio', 'block_io_latency'),
  {
    name: 'ebpf_tuner_block_io_bytes_total',
    type: 'counter',
    source: 'delta',
    unit: 'bytes',
    help: 'Bytes each target read from and wrote to block devices, counted at request issue.',
    read: perTarget<BlkioWindow, number>('blkio', (w) => [
      [{ direction: 'read' }, w.readBytes],
      [{ direction: 'write' }, w.writeBytes],
    ]),
  },
  {
    name: 'ebpf_tuner_block_io_queue_depth_max',
    type: 'gauge',
    unit: '',
    help: 'Deepest request queue, over the last tick, among the devices each target used.',
    read: perTarget<BlkioWindow, number>('blkio', (w) => num(w.maxInflight)),
  },
  {
    name: 'ebpf_tuner_block_io_burst',
    type: 'gauge',
    unit: '',
    help: "1 while a target's I/O per tick is well above its own baseline.",
    read: perTarget<BlkioWindow, number>('blkio', (w) => num(w.burst)),
  },
  {
    name: 'ebpf_tuner_cgroup_cpu_usage_seconds_total',
    type: 'counter',
    source: 'delta',
    unit: 'seconds',
    help: "CPU time used by each target's cgroup (cpuacct.usage / cpu.stat usage_usec).",
    read: perTarget<CgstatWindow, number>('cgstat', (w) => num(w.cpuUsageUs, US)),
  },
  {
    name: 'ebpf_tuner_cgroup_cpu_periods_total',
    type: 'counter',
    source: 'delta',
    unit: '',
    help: "CFS bandwidth periods that elapsed with runnable tasks in each target's cgroup.",
    read: perTarget<CgstatWindow, number>('cgstat', (w) => num(w.nrPeriods)),
  },
  {
    name: 'ebpf_tuner_cgroup_cpu_throttled_periods_total',
    type: 'counter',
    source: 'delta',
    unit: '',
    help: "CFS bandwidth periods in which each target's cgroup ran out of quota.",
    read: perTarget<CgstatWindow, number>('cgstat', (w) => num(w.nrThrottled)),
  },
  {
    name: 'ebpf_tuner_cgroup_cpu_throttled_seconds_total',
    type: 'counter',
    source: 'delta',
    unit: 'seconds',
    help: "Time the run queues of each target's cgroup spent throttled, summed over CPUs.",
    read: perTarget<CgstatWindow, number>('cgstat', (w) => num(w.throttledUs, US)),
  },
  ...(
    [
      ['usage', 'Memory charged to each target\'s cgroup and its descendants.', (w: CgstatWindow) => w.memoryBytes],
      ['limit', "Hard memory limit of each target's cgroup; absent when unlimited.", (w: CgstatWindow) => w.memoryLimitBytes],
      ['anon', "Anonymous memory of each target's cgroup.", (w: CgstatWindow) => w.anonBytes],
      ['file', "Page cache charged to each target's cgroup.", (w: CgstatWindow) => w.fileBytes],
    ] as const
  ).map(
    ([what, help, pick]): GaugeDecl => ({
      name: `ebpf_tuner_cgroup_memory_${what}_bytes`,
      type: 'gauge',
      unit: 'bytes',
      help,
      read: perTarget<CgstatWindow, number>('cgstat', (w) => num(pick(w))),
    }),
  ),
  {
    name: 'ebpf_tuner_pressure_stalled_seconds_total',
    type: 'counter',
    source: 'total',
    unit: 'seconds',
    help: "Time some (or all) of the tasks in each target's own cgroup were stalled on a resource (PSI total; cgroup v2 only).",
    read: perTarget<{ cgroup?: PsiResources }, number>('psi', (w) => pressure(w.cgroup, 'total')),
  },
  {
    name: 'ebpf_tuner_pressure_avg10_ratio',
    type: 'gauge',
    unit: 'ratio',
    help: "Share of the last 10 s in which tasks of each target's own cgroup were stalled (PSI avg10 / 100).",
    read: perTarget<{ cgroup?: PsiResources }, number>('psi', (w) => pressure(w.cgroup, 'avg10')),
  },
  {
    name: 'ebpf_tuner_host_pressure_stalled_seconds_total',
    type: 'counter',
    source: 'total',
    unit: 'seconds',
    help: 'Time some (or all) tasks on the host were stalled on a resource (/proc/pressure total).',
    read: host<PsiResources, number>('psi', (w) => pressure(w, 'total')),
  },
  {
    name: 'ebpf_tuner_host_pressure_avg10_ratio',
    type: 'gauge',
    unit: 'ratio',
    help: 'Share of the last 10 s in which tasks on the host were stalled (/proc/pressure avg10 / 100).',
    read: host<PsiResources, number>('psi', (w) => pressure(w, 'avg10')),
  },
  ...(['', 'host_'] as const).flatMap((scope): CounterDecl[] => {
    const read = (pick: (w: NetWindow) => number) =>
      scope === '' ? perTarget<NetWindow, number>('net', (w) => num(pick(w))) : host<NetWindow, number>('net', (w) => num(pick(w)));
    const whose = scope === '' ? "each target's sockets" : 'the host';
    return [
      { name: `ebpf_tuner_${scope}tcp_retransmits_total`, type: 'counter', source: 'delta', unit: '', help: `TCP segments retransmitted by ${whose}.`, read: read((w) => w.retransmits) },
      { name: `ebpf_tuner_${scope}tcp_retransmit_failures_total`, type: 'counter', source: 'delta', unit: '', help: `TCP retransmissions that failed for ${whose}.`, read: read((w) => w.retransmitFailures) },
      { name: `ebpf_tuner_${scope}packet_drops_total`, type: 'counter', source: 'delta', unit: '', help: `Packets of ${whose} the kernel dropped.`, read: read((w) => w.drops) },
    ];
  }),
  {
    name: 'ebpf_tuner_numa_remote_memory_ratio',
    type: 'gauge',
    unit: 'ratio',
    help: "Share of each target's memory on NUMA nodes other than the one its threads mostly run on.",
    read: perTarget<NumaStats, number>('numa', (w) => num(w.remoteFraction)),
  },
  {
    name: 'ebpf_tuner_numa_memory_bytes',
    type: 'gauge',
    unit: 'bytes',
    help: "Each target's resident memory by NUMA node.",
    read: perTarget<NumaStats, number>('numa', (w) =>
      Object.entries(w.memKb).map(([node, kb]): [Labels, number] => [{ node }, kb * 1024]),
    ),
  },
  ...(
    [
      ['threads', "Threads of each target.", (w: PlacementStats) => w.threads],
      ['threads_runnable', "Threads of each target that are runnable now.", (w: PlacementStats) => w.runnable],
      ['cpus_used', "Distinct CPUs the runnable threads of each target are on.", (w: PlacementStats) => w.cpusUsed],
      ['cpus_allowed', "CPUs each target may run on (its cpuset).", (w: PlacementStats) => w.allowedCpus],
      ['cpus_idle', "CPUs idle over the last tick that each target may run on.", (w: PlacementStats) => w.idleCpus],
      ['cpu_pileup_threads', "Runnable threads of each target on its most crowded CPU.", (w: PlacementStats) => w.pileup],
    ] as const
  ).map(
    ([what, help, pick]): GaugeDecl => ({
      name: `ebpf_tuner_${what}`,
      type: 'gauge',
      unit: '',
      help,
      read: perTarget<PlacementStats, number>('placement', (w) => num(pick(w))),
    }),
  ),
];

/** Upper bound, in seconds, of log2 µs bucket i (the last bucket is +Inf). */
export function bucketLe(i: number): number {
  return 2 ** (i + 1) / 1e6;
}
