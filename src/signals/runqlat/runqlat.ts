/**
 * Run-queue latency signal: how long each target's threads wait for a CPU once runnable, and how long they run.
 * The kernel half (runqlat.bpf.c) keeps cumulative per-CPU log2 histograms per target slot; each tick this reads
 * them in one batch, subtracts the previous tick, and turns the window into p50/p90/p99 and an EWMA of p99.
 */
import { TunerError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { LatencyStats, Signal, SignalContext, Target, TargetSignals } from '../../core/types.js';
import type { BpfObject } from '../../bpf/object.js';
import { loadFirstWorking, type AttachKind } from '../../bpf/probe.js';
import { possibleCpus } from '../../bpf/map.js';
import { histPercentile } from '../../stats/histogram.js';
import { Ewma } from '../../stats/ewma.js';
import { hostSlot, slotCount, syncMembership, targetFilter, TARGET_MAX_SLOTS, u64 } from '../membership.js';

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
}

/** Cumulative counters of one slot, summed over CPUs. */
interface Cumulative {
  buckets: Float64Array;
  count: number;
  waitNs: number;
  oncpuNs: number;
  switchesOut: number;
  preempted: number;
  migrations: number;
}

function newCumulative(): Cumulative {
  return { buckets: new Float64Array(RUNQLAT_BUCKETS), count: 0, waitNs: 0, oncpuNs: 0, switchesOut: 0, preempted: 0, migrations: 0 };
}

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
  /** Thread-level detail (top threads by wait), when per-thread accounting is on. */
  threads?: { tid: number; tgid: number; count: number; maxUs: number; meanUs: number }[];
}

export class RunqlatSignal implements Signal {
  readonly name = 'runqlat';
  private obj?: BpfObject;
  private log?: Logger;
  private targets: Target[] = [];
  private attachKind?: AttachKind;
  private program?: string;
  private prev = new Map<number, Cumulative>();
  private readonly cur = new Map<number, Cumulative>();
  private readonly ewma = new Map<number, Ewma>();
  private readonly window = new Float64Array(RUNQLAT_BUCKETS);
  private lastHost?: RunqlatWindow;

  constructor(private readonly opts: RunqlatOptions) {}

  get attachedAs(): { kind: AttachKind; program: string } | undefined {
    return this.attachKind && this.program ? { kind: this.attachKind, program: this.program } : undefined;
  }

  get programFd(): number {
    if (!this.obj || !this.program) throw new TunerError('INTERNAL', 'read runqlat program fd: not started');
    return this.obj.programFd(this.program);
  }

  programs(): { name: string; fd: number }[] {
    return this.obj && this.program ? [{ name: this.program, fd: this.obj.programFd(this.program) }] : [];
  }

  start(ctx: SignalContext): void {
    if (ctx.targets.length > TARGET_MAX_SLOTS) {
      throw new TunerError('CONFIG_INVALID', `start runqlat: ${ctx.targets.length} targets, at most ${TARGET_MAX_SLOTS} are supported`);
    }
    this.log = ctx.log.child({ signal: this.name });
    this.targets = ctx.targets;
    const cfg = Buffer.alloc(CFG_SIZE);
    targetFilter(ctx.targets, ctx.cgroupVersion, this.opts.host).copy(cfg, 0);
    cfg[8] = this.opts.perThread ? 1 : 0;
    const { obj, kind, program } = loadFirstWorking(
      'runqlat',
      { tp_btf: 'runqlat_switch_btf', raw_tp: 'runqlat_switch_raw' },
      (o) => {
        o.setRodata('.rodata.cfg', cfg);
        o.setMaxEntries('hists', slotCount(ctx.targets));
      },
      this.log,
    );
    this.obj = obj;
    this.attachKind = kind;
    this.program = program;
    const hists = obj.map('hists');
    if (hists.valueSize !== HIST_SIZE) {
      throw new TunerError('INTERNAL', `decode runqlat hists: value is ${hists.valueSize} bytes, expected ${HIST_SIZE}`);
    }
    this.updateTargets(ctx.targets);
    // Baseline so the first window does not include history from before start.
    this.read();
    for (const [slot, c] of this.cur) this.prev.set(slot, cloneCumulative(c));
    this.log.info({ attach: kind, program, targets: ctx.targets.length, host: this.opts.host }, 'runqlat attached');
  }

  /** Rewrites the kernel's membership maps: every cgroup in each target's subtree, every tgid of pid targets. */
  updateTargets(targets: Target[]): void {
    if (!this.obj) return;
    this.targets = targets;
    syncMembership(this.obj, targets);
  }

  private read(): void {
    const hists = this.obj!.map('hists');
    const { count, keys, values } = hists.readAll();
    const cpuStride = hists.stride / possibleCpus;
    for (let i = 0; i < count; i++) {
      const slot = keys.readUInt32LE(i * 4);
      let c = this.cur.get(slot);
      if (!c) this.cur.set(slot, (c = newCumulative()));
      c.buckets.fill(0);
      c.count = c.waitNs = c.oncpuNs = c.switchesOut = c.preempted = c.migrations = 0;
      for (let cpu = 0; cpu < possibleCpus; cpu++) {
        const base = i * hists.stride + cpu * cpuStride;
        for (let b = 0; b < RUNQLAT_BUCKETS; b++) c.buckets[b] += u64(values, base + b * 8);
        const tail = base + RUNQLAT_BUCKETS * 8;
        c.count += u64(values, tail);
        c.waitNs += u64(values, tail + 8);
        c.oncpuNs += u64(values, tail + 16);
        c.switchesOut += u64(values, tail + 24);
        c.preempted += u64(values, tail + 32);
        c.migrations += u64(values, tail + 40);
      }
    }
  }

  private windowOf(slot: number): RunqlatWindow {
    const c = this.cur.get(slot) ?? newCumulative();
    const p = this.prev.get(slot) ?? newCumulative();
    for (let b = 0; b < RUNQLAT_BUCKETS; b++) this.window[b] = Math.max(0, c.buckets[b] - p.buckets[b]);
    const count = Math.max(0, c.count - p.count);
    const waitUs = Math.max(0, c.waitNs - p.waitNs) / 1000;
    let ewma = this.ewma.get(slot);
    if (!ewma) this.ewma.set(slot, (ewma = new Ewma(this.opts.ewmaAlpha)));
    const p99 = count > 0 ? histPercentile(this.window, 0.99) : 0;
    // A window without samples says nothing about latency: the EWMA keeps its value rather than decaying to 0.
    if (count > 0) ewma.update(p99);
    const oncpuUs = Math.max(0, c.oncpuNs - p.oncpuNs) / 1000;
    const switchesOut = Math.max(0, c.switchesOut - p.switchesOut);
    const involuntary = Math.max(0, c.preempted - p.preempted);
    return {
      count,
      p50: count > 0 ? histPercentile(this.window, 0.5) : 0,
      p90: count > 0 ? histPercentile(this.window, 0.9) : 0,
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
      migrations: Math.max(0, c.migrations - p.migrations),
    };
  }

  collect(_now: number, out: Record<string, TargetSignals>): void {
    if (!this.obj) return;
    this.read();
    for (const t of this.targets) {
      const w = this.windowOf(t.slot);
      const sig = (out[t.name] ??= { name: t.name, role: t.role });
      sig.runqlat = w;
    }
    if (this.opts.host) this.lastHost = this.windowOf(hostSlot(this.targets));
    if (this.opts.perThread) this.attachThreads(out);
    // Swap: this tick's cumulative becomes the next tick's baseline.
    for (const [slot, c] of this.cur) {
      const p = this.prev.get(slot);
      if (p) copyCumulative(c, p);
      else this.prev.set(slot, cloneCumulative(c));
    }
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

function cloneCumulative(c: Cumulative): Cumulative {
  return { ...c, buckets: Float64Array.from(c.buckets) };
}

function copyCumulative(from: Cumulative, to: Cumulative): void {
  to.buckets.set(from.buckets);
  to.count = from.count;
  to.waitNs = from.waitNs;
  to.oncpuNs = from.oncpuNs;
  to.switchesOut = from.switchesOut;
  to.preempted = from.preempted;
  to.migrations = from.migrations;
}
