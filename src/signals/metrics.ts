/**
 * What a signal declares about the Prometheus metrics it feeds: name, type, unit, help and where each value comes from
 * in a tick snapshot. Each signal lists its own in `<signal>/metrics.ts`; `index.ts` gathers them in /metrics order,
 * and the HTTP server writes whatever that list holds. Names are written out, never derived from TypeScript field
 * names, so renaming a field cannot rename a metric (it breaks the reader, and the type checker says so).
 *
 * It lives here, not under src/http/: the signals import it, and they sit below the HTTP server, which reads the list.
 * It needs nothing from any one signal, so src/core/ could hold it too, but only signals declare metrics: it sits
 * beside them and the registry that gathers their lists, and core keeps to what every layer shares.
 *
 * Types follow what the kernel keeps. The kernel's log2 histograms (run-queue wait, futex wait, block I/O latency)
 * are cumulative since start, so they are exported as Prometheus histograms: bucket i of a log2 histogram in µs holds
 * [2^i, 2^(i+1)) µs, which is exactly the bucket `le = 2^(i+1) µs` in seconds, and the last kernel bucket (which
 * holds everything above) is `+Inf`. Counts of events and time are counters: either a cumulative value the kernel
 * reports as such (`total`, e.g. PSI stall totals), or the sum of the per-tick differences the signal already takes
 * of a cumulative kernel counter (`delta`), added up by the HTTP server on every tick so no tick is lost between
 * scrapes. Gauges are only things that are a level at one instant (memory, threads, a ratio the kernel averages).
 */
import type { CumulativeHistogram, TargetSignals } from '../core/types.js';

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

/** Seconds in a µs: the signals count time in µs, metrics are in seconds. */
export const US = 1e-6;

/** What a signal writes under `key` of each target: the signal's own window type. */
export function perTarget<W, V>(
  key: string,
  pick: (w: W) => [Labels, V][] | V | undefined,
): (s: SnapshotView) => [Labels, V][] {
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
export function host<W, V>(
  key: string,
  pick: (w: W) => [Labels, V][] | V | undefined,
): (s: SnapshotView) => [Labels, V][] {
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
export function num(v: number | undefined, scale = 1): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v * scale : undefined;
}

/**
 * One gauge per row, each read from a number field of the signal's window under `key` of every target: for a signal
 * with several plain levels side by side, where a declaration each would repeat all but the name, help and field.
 */
export function targetGauges<W>(
  key: string,
  unit: Unit,
  rows: readonly (readonly [name: string, help: string, pick: (w: W) => number | undefined])[],
): GaugeDecl[] {
  return rows.map(([name, help, pick]) => ({
    name,
    type: 'gauge',
    unit,
    help,
    read: perTarget<W, number>(key, (w) => num(pick(w))),
  }));
}

/**
 * The two histograms of a signal that keeps a kernel log2 µs latency histogram (`hist`) per target and for the host:
 * `ebpf_tuner_<what>_seconds` and `ebpf_tuner_host_<what>_seconds`. `help` says what one sample is; the scope is
 * appended.
 */
export function latencyHistograms(key: string, what: string, help: string): HistogramDecl[] {
  const pick = (w: { hist?: CumulativeHistogram }): CumulativeHistogram | undefined => w.hist;
  return [
    {
      name: `ebpf_tuner_${what}_seconds`,
      type: 'histogram',
      unit: 'seconds',
      help: `${help} of each target's tasks since the agent started.`,
      read: perTarget(key, pick),
    },
    {
      name: `ebpf_tuner_host_${what}_seconds`,
      type: 'histogram',
      unit: 'seconds',
      help: `${help} of every task on the host since the agent started.`,
      read: host(key, pick),
    },
  ];
}

/** Upper bound, in seconds, of log2 µs bucket i (the last bucket is +Inf). */
export function bucketLe(i: number): number {
  return 2 ** (i + 1) / 1e6;
}
