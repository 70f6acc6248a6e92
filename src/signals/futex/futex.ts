/**
 * Futex wait signal: how long each target's threads block in futex waits (contended mutexes, condition variables,
 * joins), and which futex addresses of which processes they wait on longest. The kernel half (futex.bpf.c) keeps
 * cumulative per-CPU log2 histograms per target slot and a per-CPU LRU hash of {slot, tgid, address} totals; each
 * tick this reads both in one batch each, subtracts the previous tick, and reports percentiles and the top 5
 * addresses per target.
 */
import { TunerError } from '../../core/errors.js';
import type { CumulativeHistogram, Signal, SignalContext, Target, TargetSignals } from '../../core/types.js';
import { loadFirstWorking, type ProgramSet } from '../../bpf/probe.js';
import { possibleCpus } from '../../bpf/map.js';
import { histPercentile } from '../../stats/histogram.js';
import { slotCount, syncMembership, u64 } from '../membership.js';
import { BpfSignal } from '../bpf-signal.js';
import { CumulativeSlots } from '../cumulative.js';

// Mirrors futex.h.
export const FUTEX_BUCKETS = 32;
const HIST_SIZE = (FUTEX_BUCKETS + 2) * 8; // sizeof(struct futex_wait_hist)
const ADDR_KEY_SIZE = 16; // sizeof(struct futex_addr_key)
const ADDR_STAT_SIZE = 16; // sizeof(struct futex_addr_stat)
const CFG_SIZE = 8; // sizeof(struct futex_wait_cfg)
/** Addresses reported per target and tick. */
export const FUTEX_TOP_N = 5;

export type FutexHook = 'sched_switch' | 'sched_switch_raw' | 'tracepoint' | 'tp_btf' | 'raw_tp';

/*
 * Per variant: exit programs first (attached before their entry twin, so no wait that starts after attach loses its
 * end); optional: syscalls this kernel may lack (futex_waitv v5.16, futex_wait v6.7), attached when present.
 */

/** Cheapest first, by the measurements in README.md (Overhead). */
const VARIANTS: Record<FutexHook, ProgramSet> = {
  // A wait in progress is kept in task storage where the task pointer is BTF-typed, else in a tid-keyed hash.
  // On sched_switch, which the kernel already runs on every switch: nothing on any syscall (v5.15, bpf_task_pt_regs).
  sched_switch: { attach: 'tp_btf', required: ['futex_switch_btf'], unusedMaps: ['tid_pending'] },
  sched_switch_raw: { attach: 'raw_tp', required: ['futex_switch_raw'], unusedMaps: ['task_pending'] },
  // On the syscalls, for kernels before v5.15: every syscall of every task pays for them.
  tracepoint: {
    required: ['futex_exit_tp', 'futex_enter_tp'],
    optional: ['futex_waitv_exit_tp', 'futex_waitv_enter_tp', 'futex_wait_exit_tp', 'futex_wait_enter_tp'],
    unusedMaps: ['tid_pending'],
  },
  tp_btf: { required: ['futex_exit_btf', 'futex_enter_btf'], optional: [], unusedMaps: ['tid_pending'] },
  raw_tp: { required: ['futex_exit_raw', 'futex_enter_raw'], optional: [], unusedMaps: ['task_pending'] },
};
export const FUTEX_HOOK_ORDER: readonly FutexHook[] = ['sched_switch', 'sched_switch_raw', 'tracepoint', 'tp_btf', 'raw_tp'];

export interface FutexOptions {
  /** Aggregate every task on the host into an extra slot (host-wide view). */
  host: boolean;
  /** Hook variants to try, in order; default FUTEX_HOOK_ORDER. For benchmarks and tests. */
  hooks?: readonly FutexHook[];
}

export interface FutexAddress {
  tgid: number;
  /** The futex word's user-space address in that process, hex ("0x7f…"). */
  uaddr: string;
  waitUs: number;
  count: number;
}

/** One tick's futex waits of one target. Latency fields are µs per wait. */
export interface FutexWindow {
  /** Waits that ended in the window. */
  count: number;
  /** Time blocked in them, summed, µs. */
  waitUs: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  /** Waits since start (not this window), for the Prometheus histogram. */
  hist: CumulativeHistogram;
  /** The addresses waited on longest in the window, at most FUTEX_TOP_N. */
  top: FutexAddress[];
}

interface AddrTotals {
  slot: number;
  tgid: number;
  /** The address's low and high 32 bits; formatted only for the entries a tick reports. */
  lo: number;
  hi: number;
  waitNs: number;
  count: number;
}

export class FutexSignal extends BpfSignal<FutexHook> implements Signal {
  readonly name = 'futex';
  /** struct of the hists map: the buckets, then count and wait_ns. */
  private readonly slots = new CumulativeSlots(FUTEX_BUCKETS, 2);
  private prevAddrs = new Map<string, AddrTotals>();
  private lastHost?: FutexWindow;

  constructor(private readonly opts: FutexOptions) {
    super();
  }

  start(ctx: SignalContext): void {
    const { capacity, cfg, log } = this.begin(ctx, CFG_SIZE, this.opts.host);
    const loaded = loadFirstWorking<FutexHook>(
      'futex',
      VARIANTS,
      (o) => {
        o.setRodata('.rodata.cfg', cfg);
        o.setMaxEntries('hists', slotCount(capacity));
      },
      log,
      // A verifier rejection of a variant is most often a helper this kernel lacks (bpf_task_pt_regs, task storage,
      // the BTF task pointer), so the next variant is tried; the message keeps the reason.
      { order: this.opts.hooks ?? FUTEX_HOOK_ORDER, nextOnVerifierError: true, needs: 'v5.11 with BTF' },
    );
    const obj = this.attached(loaded);
    const hists = obj.map('hists');
    const top = obj.map('top');
    if (hists.valueSize !== HIST_SIZE || top.keySize !== ADDR_KEY_SIZE || top.valueSize !== ADDR_STAT_SIZE) {
      this.close();
      throw new TunerError(
        'INTERNAL',
        `decode futex maps: hists value ${hists.valueSize}/${HIST_SIZE} bytes, top key ${top.keySize}/${ADDR_KEY_SIZE}, value ${top.valueSize}/${ADDR_STAT_SIZE}`,
      );
    }
    this.updateTargets(ctx.targets);
    // Baseline so the first window does not include history from before start.
    this.slots.read(obj.map('hists'));
    this.slots.advance();
    this.prevAddrs = this.readAddrs();
    log.info({ attach: this.kind, programs: this.programNames, targets: ctx.targets.length, host: this.opts.host }, 'futex attached');
  }

  /** Rewrites the kernel's membership maps: every cgroup in each target's subtree, every tgid of pid targets. */
  updateTargets(targets: Target[]): void {
    if (!this.obj) return;
    this.targets = targets;
    syncMembership(this.obj, targets);
  }

  /** Every {slot, tgid, address} entry with its totals summed over CPUs, keyed by the raw key bytes. */
  private readAddrs(): Map<string, AddrTotals> {
    const m = this.obj!.map('top');
    const { count, keys, values } = m.readAll();
    const cpuStride = m.stride / possibleCpus;
    const out = new Map<string, AddrTotals>();
    for (let i = 0; i < count; i++) {
      const k = i * ADDR_KEY_SIZE;
      let waitNs = 0;
      let n = 0;
      for (let cpu = 0; cpu < possibleCpus; cpu++) {
        const base = i * m.stride + cpu * cpuStride;
        waitNs += u64(values, base);
        n += u64(values, base + 8);
      }
      out.set(keys.toString('hex', k, k + ADDR_KEY_SIZE), {
        lo: keys.readUInt32LE(k),
        hi: keys.readUInt32LE(k + 4),
        tgid: keys.readUInt32LE(k + 8),
        slot: keys.readUInt32LE(k + 12),
        waitNs,
        count: n,
      });
    }
    return out;
  }

  /** Per slot, the addresses with the most wait in this window, longest first. */
  private topBySlot(): Map<number, FutexAddress[]> {
    const cur = this.readAddrs();
    const bySlot = new Map<number, FutexAddress[]>();
    for (const [key, c] of cur) {
      const p = this.prevAddrs.get(key);
      // An entry evicted and created again starts from zero: all it holds is new.
      const fresh = !p || c.count < p.count || c.waitNs < p.waitNs;
      const count = fresh ? c.count : c.count - p.count;
      if (count === 0) continue;
      const waitNs = fresh ? c.waitNs : c.waitNs - p.waitNs;
      let list = bySlot.get(c.slot);
      if (!list) bySlot.set(c.slot, (list = []));
      list.push({ tgid: c.tgid, uaddr: hexAddress(c.lo, c.hi), waitUs: waitNs / 1000, count });
    }
    this.prevAddrs = cur;
    for (const list of bySlot.values()) list.sort((a, b) => b.waitUs - a.waitUs || b.count - a.count);
    return bySlot;
  }

  private windowOf(slot: number, top: FutexAddress[]): FutexWindow {
    const { buckets, counters } = this.slots.window(slot);
    const [count, waitNs] = counters;
    const waitUs = waitNs / 1000;
    return {
      hist: this.slots.histogram(slot, 1000),
      count,
      waitUs,
      p50: count > 0 ? histPercentile(buckets, 0.5) : 0,
      p90: count > 0 ? histPercentile(buckets, 0.9) : 0,
      p99: count > 0 ? histPercentile(buckets, 0.99) : 0,
      mean: count > 0 ? waitUs / count : 0,
      top: top.slice(0, FUTEX_TOP_N),
    };
  }

  collect(_now: number, out: Record<string, TargetSignals>): void {
    if (!this.obj) return;
    this.slots.read(this.obj.map('hists'));
    const top = this.topBySlot();
    for (const t of this.targets) {
      const sig = (out[t.name] ??= { name: t.name, role: t.role });
      sig.futex = this.windowOf(t.slot, top.get(t.slot) ?? []);
    }
    if (this.opts.host) {
      const all = [...top.values()].flat().sort((a, b) => b.waitUs - a.waitUs || b.count - a.count);
      this.lastHost = this.windowOf(this.hostSlot, all);
    }
    this.slots.advance();
  }

  /** The host-wide window of the last collect, when `host` is on. */
  hostWindow(): FutexWindow | undefined {
    return this.lastHost;
  }

  close(): void {
    this.obj?.close();
    this.obj = undefined;
  }
}

function hexAddress(lo: number, hi: number): string {
  return hi === 0 ? `0x${lo.toString(16)}` : `0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`;
}

// This signal's part of each tick snapshot, declared beside the signal so the snapshot's type grows with the list of
// signals and readers need no casts.
declare module '../../core/types.js' {
  interface TargetSignals {
    futex?: FutexWindow;
  }
  interface HostSignals {
    futex?: FutexWindow;
  }
}
