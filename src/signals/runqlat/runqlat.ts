/**
 * Run-queue latency signal: how long each target's threads wait for a CPU once runnable, and how long they run.
 * The kernel half (runqlat.bpf.c) keeps cumulative per-CPU log2 histograms per target slot; each tick this reads
 * them in one batch, subtracts the previous tick, and turns the window into p50/p90/p99 and an EWMA of p99.
 */
import { TunerError } from '../../core/errors.js';
import type { CumulativeHistogram, LatencyStats, Signal, SignalContext, Target, TargetSignals } from '../../core/types.js';
import { attachOrder, loadFirstWorking, type AttachKind } from '../../bpf/probe.js';
import { possibleCpus } from '../../bpf/map.js';
import { histPercentile } from '../../stats/histogram.js';
import { Ewma } from '../../stats/ewma.js';
import { slotCount, syncMembership, u64 } from '../membership.js';
import { BpfSignal } from '../bpf-signal.js';
import { CumulativeSlots } from '../cumulative.js';

// Mirrors runqlat.h.
export const RUNQLAT_BUCKETS = 32;
const HIST_U64S = RUNQLAT_BUCKETS + 6;
const HIST_SIZE = HIST_U64S * 8; // sizeof(struct runqlat_hist)
const THREAD_SIZE = RUNQLAT_BUCKETS * 4 + 3 * 8 + 8; // sizeof(struct runqlat_thread)
const CFG_SIZE = 12; // sizeof(struct runqlat_cfg)

export interface RunqlatOptions {
  perThread: boolean;
  /** Aggregate every task on the host into an extra slot (host-wide view). */
  host: boolean;
  ewmaAlpha: number;
  /** Pin an attach variant; `auto` (default) takes tp_btf where the kernel has it, else raw_tp. */
  attach?: 'auto' | RunqlatHook;
}

export type RunqlatHook = 'tp_btf' | 'raw_tp';
export const RUNQLAT_HOOK_ORDER: readonly RunqlatHook[] = ['tp_btf', 'raw_tp'];

export interface RunqlatWindow extends LatencyStats {
  waitUs: number;
  oncpuUs: number;
  /** on-CPU / (on-CPU + run-queue wait) over the window: 1 = never waited for a CPU. */
  oncpuRatio: number;
  switchesOut: number;
  /** Context switches away while still runnable (preempted), and the rest (blocked, slept, yielded). */
  involuntary: number;
  voluntary: number;
  /**
   * Times a target thread was woken (derived: switch-ins from the run queue that did not follow a preemption). The
   * kernel's own wakeup counts need schedstats; this needs no extra hook.
   */
  wakeups: number;
  /** CPU migrations of target threads in the window (se.nr_migrations deltas, seen when a thread next runs). */
  migrations: number;
  /** Run-queue waits since start (not this window), for the Prometheus histogram. */
  hist: CumulativeHistogram;
  /** Thread-level detail (top threads by wait), when per-thread accounting is on. */
  threads?: { tid: number; tgid: number; count: number; maxUs: number; meanUs: number }[];
}

export class RunqlatSignal extends BpfSignal<AttachKind> implements Signal {
  readonly name = 'runqlat';
  /** struct runqlat_hist: the buckets, then count, wait_ns, oncpu_ns, switches_out, preempted, migrations. */
  private readonly slots = new CumulativeSlots(RUNQLAT_BUCKETS, 6);
  private readonly ewma = new Map<number, Ewma>();
  private lastHost?: RunqlatWindow;

  constructor(private readonly opts: RunqlatOptions) {
    super();
  }

  start(ctx: SignalContext): void {
    const { capacity, cfg, log } = this.begin(ctx, CFG_SIZE, this.opts.host);
    cfg[8] = this.opts.perThread ? 1 : 0;
    const loaded = loadFirstWorking(
      'runqlat',
      // Where arguments are BTF-typed a wait is remembered in task storage, else in a tid-keyed hash.
      {
        tp_btf: { required: ['runqlat_switch_btf'], unusedMaps: ['tid_waits'] },
        raw_tp: { required: ['runqlat_switch_raw'], unusedMaps: ['task_waits'] },
      },
      (o) => {
        o.setRodata('.rodata.cfg', cfg);
        o.setMaxEntries('hists', slotCount(capacity));
      },
      log,
      { order: attachOrder(this.opts.attach, RUNQLAT_HOOK_ORDER), needs: 'tp_btf (v5.5 with BTF) or raw_tp (v4.17)' },
    );
    const obj = this.attached(loaded);
    const hists = obj.map('hists');
    if (hists.valueSize !== HIST_SIZE) {
      throw new TunerError('INTERNAL', `decode runqlat hists: value is ${hists.valueSize} bytes, expected ${HIST_SIZE}`);
    }
    this.updateTargets(ctx.targets);
    // Baseline so the first window does not include history from before start.
    this.slots.read(hists);
    this.slots.advance();
    log.info({ attach: loaded.kind, program: loaded.program, targets: ctx.targets.length, host: this.opts.host }, 'runqlat attached');
  }

  /** Rewrites the kernel's membership maps: every cgroup in each target's subtree, every tgid of pid targets. */
  updateTargets(targets: Target[]): void {
    if (!this.obj) return;
    this.targets = targets;
    syncMembership(this.obj, targets);
  }

  private windowOf(slot: number): RunqlatWindow {
    const { buckets, counters } = this.slots.window(slot);
    const [count, waitNs, oncpuNs, switchesOut, involuntary, migrations] = counters;
    const waitUs = waitNs / 1000;
    let ewma = this.ewma.get(slot);
    if (!ewma) this.ewma.set(slot, (ewma = new Ewma(this.opts.ewmaAlpha)));
    const p99 = count > 0 ? histPercentile(buckets, 0.99) : 0;
    // A window without samples says nothing about latency: the EWMA keeps its value rather than decaying to 0.
    if (count > 0) ewma.update(p99);
    const oncpuUs = oncpuNs / 1000;
    const all = this.slots.totals(slot);
    return {
      hist: { counts: Array.from(all.buckets), count: all.counters[0] ?? 0, sumUs: (all.counters[1] ?? 0) / 1000 },
      count,
      p50: count > 0 ? histPercentile(buckets, 0.5) : 0,
      p90: count > 0 ? histPercentile(buckets, 0.9) : 0,
      p99,
      mean: count > 0 ? waitUs / count : 0,
      p99Ewma: ewma.value ?? 0,
      waitUs,
      oncpuUs,
      oncpuRatio: oncpuUs + waitUs > 0 ? oncpuUs / (oncpuUs + waitUs) : 1,
      switchesOut,
      involuntary,
      voluntary: switchesOut - involuntary,
      wakeups: Math.max(0, count - involuntary),
      migrations,
    };
  }

  collect(_now: number, out: Record<string, TargetSignals>): void {
    if (!this.obj) return;
    this.slots.read(this.obj.map('hists'));
    for (const t of this.targets) {
      const w = this.windowOf(t.slot);
      const sig = (out[t.name] ??= { name: t.name, role: t.role });
      sig.runqlat = w;
    }
    if (this.opts.host) this.lastHost = this.windowOf(this.hostSlot);
    if (this.opts.perThread) this.attachThreads(out);
    this.slots.advance();
  }

  /** The host-wide window of the last collect, when `host` is on. */
  hostWindow(): RunqlatWindow | undefined {
    return this.lastHost;
  }

  private attachThreads(out: Record<string, TargetSignals>): void {
    const m = this.obj!.map('threads');
    if (m.valueSize !== THREAD_SIZE) return;
    const { count, keys, values } = m.readAll();
    const bySlot = new Map<number, NonNullable<RunqlatWindow['threads']>>();
    for (let i = 0; i < count; i++) {
      const off = i * m.stride;
      const tail = off + RUNQLAT_BUCKETS * 4;
      const n = u64(values, tail);
      const slot = values.readUInt32LE(tail + 24);
      const list = bySlot.get(slot) ?? [];
      list.push({
        tid: keys.readUInt32LE(i * 4),
        tgid: values.readUInt32LE(tail + 28),
        count: n,
        maxUs: u64(values, tail + 16) / 1000,
        meanUs: n > 0 ? u64(values, tail + 8) / 1000 / n : 0,
      });
      bySlot.set(slot, list);
    }
    for (const t of this.targets) {
      const list = bySlot.get(t.slot);
      const w = out[t.name]?.runqlat as RunqlatWindow | undefined;
      if (list && w) w.threads = list.sort((a, b) => b.meanUs * b.count - a.meanUs * a.count).slice(0, 8);
    }
  }

  close(): void {
    this.obj?.close();
    this.obj = undefined;
  }
}
