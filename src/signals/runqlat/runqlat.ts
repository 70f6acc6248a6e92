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
import { RingBufferWatcher, type RingRecords } from '../../bpf/ringbuf.js';

// Mirrors runqlat.h.
export const RUNQLAT_BUCKETS = 32;
const HIST_U64S = RUNQLAT_BUCKETS + 6;
const HIST_SIZE = HIST_U64S * 8; // sizeof(struct runqlat_hist)
const THREAD_SIZE = RUNQLAT_BUCKETS * 4 + 3 * 8 + 8; // sizeof(struct runqlat_thread)
const CFG_SIZE = 32; // sizeof(struct runqlat_cfg)
const WAKE_STATE_SIZE = 24; // sizeof(struct runqlat_wake_state)
const WAKE_SIZE = 24; // sizeof(struct runqlat_wake)

export interface RunqlatOptions {
  perThread: boolean;
  /** Aggregate every task on the host into an extra slot (host-wide view). */
  host: boolean;
  ewmaAlpha: number;
  /** Pin an attach variant; `auto` (default) takes tp_btf where the kernel has it, else raw_tp. */
  attach?: 'auto' | RunqlatHook;
  /**
   * Event-driven detection: the kernel counts the waits of protect targets' tasks that reach `aboveUs` and wakes the
   * agent (onWake) when `min` of them fall within `gapMs`, at most once per `gapMs` per target. Absent: no wakes.
   */
  wake?: RunqlatWake;
}

export interface RunqlatWake {
  aboveUs: number;
  min: number;
  gapMs: number;
}

/** Two long waits within 100 ms wake the agent, at most once per 100 ms per target (the agent's own early-tick limit). */
export const RUNQLAT_WAKE_DEFAULTS = { min: 2, gapMs: 100 } as const;

/** A wake as the kernel sent it: a protect target whose long waits crossed the line. */
export interface RunqlatWakeEvent {
  target: string;
  /** Waits at or over the line within the gap that fired it. */
  over: number;
  /** The wait that fired it, µs. */
  waitUs: number;
  /** When the agent's worker woke, ms since the epoch. */
  time: number;
  /** The kernel's clock at the wake (bpf_ktime_get_ns, CLOCK_MONOTONIC), ns. */
  kernelNs: bigint;
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

/** Share of its runnable time a target waited for a CPU over the window: 0 = never waited. */
export function waitShare(w: Pick<RunqlatWindow, 'oncpuRatio'>): number {
  return 1 - w.oncpuRatio;
}

export class RunqlatSignal extends BpfSignal<AttachKind> implements Signal {
  readonly name = 'runqlat';
  /** struct runqlat_hist: the buckets, then count, wait_ns, oncpu_ns, switches_out, preempted, migrations. */
  private readonly slots = new CumulativeSlots(RUNQLAT_BUCKETS, 6);
  private readonly ewma = new Map<number, Ewma>();
  private lastHost?: RunqlatWindow;
  /** Slots whose long waits wake us (protect targets), as written to the kernel's wake_state. */
  private armed = new Set<number>();
  private watcher?: RingBufferWatcher;
  private readonly wakeListeners = new Set<(ev: RunqlatWakeEvent) => void>();

  constructor(private readonly opts: RunqlatOptions) {
    super();
  }

  start(ctx: SignalContext): void {
    const { capacity, cfg, log } = this.begin(ctx, CFG_SIZE, this.opts.host);
    cfg[8] = this.opts.perThread ? 1 : 0;
    const wake = this.opts.wake;
    if (wake) {
      cfg.writeUInt32LE(wake.min, 12);
      cfg.writeBigUInt64LE(BigInt(Math.round(wake.aboveUs * 1000)), 16);
      cfg.writeBigUInt64LE(BigInt(Math.round(wake.gapMs * 1e6)), 24);
    }
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
        o.setMaxEntries('wake_state', slotCount(capacity));
      },
      log,
      { order: attachOrder(this.opts.attach, RUNQLAT_HOOK_ORDER), needs: 'tp_btf (v5.5 with BTF) or raw_tp (v4.17)' },
    );
    const obj = this.attached(loaded);
    const hists = obj.map('hists');
    if (hists.valueSize !== HIST_SIZE) {
      throw new TunerError('INTERNAL', `decode runqlat hists: value is ${hists.valueSize} bytes, expected ${HIST_SIZE}`);
    }
    if (obj.map('wake_state').valueSize !== WAKE_STATE_SIZE) {
      throw new TunerError('INTERNAL', `decode runqlat wake_state: value is ${obj.map('wake_state').valueSize} bytes, expected ${WAKE_STATE_SIZE}`);
    }
    this.armed = new Set();
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
    if (this.opts.wake) this.arm(targets);
  }

  /** Arms the slots of protect targets in the kernel's wake_state and disarms the rest; writes only what changed. */
  private arm(targets: Target[]): void {
    const want = new Set(targets.filter((t) => t.role === 'protect').map((t) => t.slot));
    const m = this.obj!.map('wake_state');
    const key = Buffer.alloc(4);
    for (const slot of new Set([...want, ...this.armed])) {
      if (want.has(slot) === this.armed.has(slot)) continue;
      const value = Buffer.alloc(WAKE_STATE_SIZE);
      value.writeUInt32LE(want.has(slot) ? 1 : 0, 20);
      key.writeUInt32LE(slot);
      m.update(key, value);
    }
    this.armed = want;
  }

  /**
   * Calls `fn` when the kernel reports that a protect target's waits crossed the line (see RunqlatOptions.wake).
   * Without `wake`, never; returns undefined then. The first subscriber starts the ring buffer's worker.
   */
  onWake(fn: (reason: string) => void): (() => void) | undefined {
    return this.onWakeEvent((ev) =>
      fn(`runqlat: ${ev.target} waited ${(ev.waitUs / 1000).toFixed(1)} ms (${ev.over} waits ≥ ${(this.opts.wake!.aboveUs / 1000).toFixed(1)} ms within ${this.opts.wake!.gapMs} ms)`),
    );
  }

  onWakeEvent(fn: (ev: RunqlatWakeEvent) => void): (() => void) | undefined {
    if (!this.opts.wake || !this.obj) return undefined;
    this.wakeListeners.add(fn);
    this.watcher ??= RingBufferWatcher.start(
      this.obj.map('wakes'),
      (batch) => this.deliver(batch),
      (why) => this.log?.warn({ why }, 'runqlat wakes stopped: the agent now sees long waits at its ticks only'),
    );
    return () => {
      this.wakeListeners.delete(fn);
    };
  }

  private deliver(batch: RingRecords): void {
    for (const r of batch.records) {
      if (r.length < WAKE_SIZE) continue;
      const slot = r.readUInt32LE(0);
      const target = this.targets.find((t) => t.slot === slot);
      if (!target) continue;
      const ev: RunqlatWakeEvent = { target: target.name, over: r.readUInt32LE(4), waitUs: Number(r.readBigUInt64LE(8)) / 1000, time: batch.time, kernelNs: r.readBigUInt64LE(16) };
      for (const fn of this.wakeListeners) fn(ev);
    }
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
    return {
      hist: this.slots.histogram(slot, 1000),
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
      const w = out[t.name]?.runqlat;
      if (list && w) w.threads = list.sort((a, b) => b.meanUs * b.count - a.meanUs * a.count).slice(0, 8);
    }
  }

  close(): void {
    // The worker polls its own duplicate of the ring buffer's fd, so the object may close before the worker ends.
    void this.watcher?.close();
    this.watcher = undefined;
    this.wakeListeners.clear();
    this.obj?.close();
    this.obj = undefined;
  }
}

// This signal's part of each tick snapshot, declared beside the signal so the snapshot's type grows with the list of
// signals and readers need no casts.
declare module '../../core/types.js' {
  interface TargetSignals {
    runqlat?: RunqlatWindow;
  }
  interface HostSignals {
    runqlat?: RunqlatWindow;
  }
}
