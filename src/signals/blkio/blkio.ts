/**
 * Block I/O signal: per target and per device, how much it reads and writes, how long its requests take from issue
 * to completion, how sequential they are, how deep the device's queue gets, and whether its I/O rate is bursting
 * against its own usual level. The kernel half (blkio.bpf.c) keeps cumulative per-CPU statistics per {target,
 * device} and a shared in-flight count per device; each tick this reads both in one batch, subtracts the previous
 * tick and starts a new queue-depth epoch.
 */
import { readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { TunerError } from '../../core/errors.js';
import type { CumulativeHistogram, Signal, SignalContext, Target, TargetSignals } from '../../core/types.js';
import { loadFirstWorking } from '../../bpf/probe.js';
import { possibleCpus } from '../../bpf/map.js';
import { histPercentile } from '../../stats/histogram.js';
import { BurstDetector, type BurstOptions } from '../../stats/burst.js';
import { syncMembership, u64 } from '../membership.js';
import { BpfSignal } from '../bpf-signal.js';

// Mirrors blkio.h.
export const BLKIO_BUCKETS = 32;
const STAT_U64S = BLKIO_BUCKETS + 5;
const STAT_SIZE = STAT_U64S * 8; // sizeof(struct blkio_stat)
const KEY_SIZE = 8; // sizeof(struct blkio_key)
const DEV_SIZE = 24; // sizeof(struct blkio_dev)
const CFG_SIZE = 8; // sizeof(struct blkio_cfg)
const MINORBITS = 20;

export type BlkioHook = 'tp_btf' | 'raw_tp';

/** Completion first, then issue, then insert: every request seen issued is also seen completing. */
const VARIANTS: Record<BlkioHook, string[]> = {
  tp_btf: ['blkio_complete_btf', 'blkio_issue_btf', 'blkio_insert_btf'],
  raw_tp: ['blkio_complete_raw', 'blkio_issue_raw', 'blkio_insert_raw'],
};
export const BLKIO_HOOK_ORDER: readonly BlkioHook[] = ['tp_btf', 'raw_tp'];

/**
 * Burst detection on completed I/Os per tick. The floor keeps a mostly idle target (a few I/Os a tick) from
 * "bursting" on every small batch.
 */
export const DEFAULT_BLKIO_BURST: BurstOptions = { window: 2, alpha: 0.1, k: 3, floor: 50, warmup: 5 };

export interface BlkioOptions {
  /** Aggregate every request on the host into an extra slot (host-wide view). */
  host: boolean;
  burst?: BurstOptions;
  /** Hook variants to try, in order; default BLKIO_HOOK_ORDER. For benchmarks and tests. */
  hooks?: readonly BlkioHook[];
}

/** One tick's read/write requests of one target: on one device, or on all it used. Latency fields are µs per request. */
export interface BlkioRequests {
  ios: number;
  readBytes: number;
  writeBytes: number;
  /** Share of requests that started where the target's previous request on the device ended. */
  seqRatio: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  /**
   * Highest number of requests in flight on the device (every task's) during the tick; over all devices, the deepest
   * queue among those the target used.
   */
  maxInflight: number;
}

export interface BlkioDeviceWindow extends BlkioRequests {
  /** "major:minor" of the whole disk, as sysfs and the config's `devices` spell it. */
  dev: string;
  /** The whole disk's device numbers. */
  major: number;
  minor: number;
  /** Kernel name of the disk (sda, nvme0n1, loop3), when it still exists. */
  name?: string;
}

export interface BlkioWindow extends BlkioRequests {
  /** 1 while the target's I/O per tick is well above its own EWMA baseline. */
  burst: 0 | 1;
  /**
   * Request latencies since start (not this window), for the Prometheus histogram. Summed from the windows, so an
   * entry the kernel evicts from its LRU map does not make it go backwards.
   */
  hist: CumulativeHistogram;
  /** Devices the target used during the tick, busiest first. */
  devices: BlkioDeviceWindow[];
}

interface Cumulative {
  buckets: Float64Array;
  ios: number;
  latNs: number;
  readBytes: number;
  writeBytes: number;
  seq: number;
}

interface DeviceDepth {
  inflight: number;
  max: number;
}

export class BlkioSignal extends BpfSignal<BlkioHook> implements Signal {
  readonly name = 'blkio';
  private epoch = 0;
  private readonly epochKey = Buffer.alloc(4);
  private readonly epochValue = Buffer.alloc(8);
  private prev = new Map<number, Cumulative>();
  private cur = new Map<number, Cumulative>();
  private readonly depth = new Map<number, DeviceDepth>();
  private readonly names = new Map<number, string | undefined>();
  private readonly bursts = new Map<number, BurstDetector>();
  private readonly window = new Float64Array(BLKIO_BUCKETS);
  private readonly total = new Float64Array(BLKIO_BUCKETS);
  /** Per slot, every request since start: summed from the windows. */
  private readonly hists = new Map<number, CumulativeHistogram>();
  private lastHost?: BlkioWindow;

  constructor(private readonly opts: BlkioOptions) {
    super();
  }

  start(ctx: SignalContext): void {
    const { cfg, log } = this.begin(ctx, CFG_SIZE, this.opts.host);
    const loaded = loadFirstWorking<BlkioHook>(
      'blkio',
      { tp_btf: { required: VARIANTS.tp_btf }, raw_tp: { required: VARIANTS.raw_tp } },
      (o) => o.setRodata('.rodata.cfg', cfg),
      log,
      { order: this.opts.hooks ?? BLKIO_HOOK_ORDER, nextOnVerifierError: true, needs: 'v5.11 with BTF, or raw tracepoints' },
    );
    const obj = this.attached(loaded);
    const stats = obj.map('stats');
    const devs = obj.map('devs');
    if (stats.valueSize !== STAT_SIZE || stats.keySize !== KEY_SIZE || devs.valueSize !== DEV_SIZE) {
      this.close();
      throw new TunerError(
        'INTERNAL',
        `decode blkio maps: stats key ${stats.keySize}/${KEY_SIZE} value ${stats.valueSize}/${STAT_SIZE} bytes, devs value ${devs.valueSize}/${DEV_SIZE}`,
      );
    }
    this.updateTargets(ctx.targets);
    // Baseline so the first window does not include history from before start.
    this.readStats();
    this.swap();
    this.readDepth();
    log.info({ attach: this.kind, targets: ctx.targets.length, host: this.opts.host }, 'blkio attached');
  }

  /** Rewrites the kernel's membership maps: every cgroup in each target's subtree, every tgid of pid targets. */
  updateTargets(targets: Target[]): void {
    if (!this.obj) return;
    this.targets = targets;
    syncMembership(this.obj, targets);
  }

  private readStats(): void {
    const m = this.obj!.map('stats');
    const { count, keys, values } = m.readAll();
    const cpuStride = m.stride / possibleCpus;
    for (let i = 0; i < count; i++) {
      const id = keys.readUInt32LE(i * KEY_SIZE) * 0x1_0000_0000 + keys.readUInt32LE(i * KEY_SIZE + 4);
      let c = this.cur.get(id);
      if (!c) this.cur.set(id, (c = newCumulative()));
      c.buckets.fill(0);
      c.ios = c.latNs = c.readBytes = c.writeBytes = c.seq = 0;
      for (let cpu = 0; cpu < possibleCpus; cpu++) {
        const base = i * m.stride + cpu * cpuStride;
        for (let b = 0; b < BLKIO_BUCKETS; b++) c.buckets[b] += u64(values, base + b * 8);
        const tail = base + BLKIO_BUCKETS * 8;
        c.ios += u64(values, tail);
        c.latNs += u64(values, tail + 8);
        c.readBytes += u64(values, tail + 16);
        c.writeBytes += u64(values, tail + 24);
        c.seq += u64(values, tail + 32);
      }
    }
  }

  /**
   * Each device's deepest queue since the last read, then a new epoch. A device without an issue in the epoch kept
   * its depth at most where it was at the start, which is the larger of then and now.
   */
  private readDepth(): void {
    const m = this.obj!.map('devs');
    const { count, keys, values } = m.readAll();
    for (let i = 0; i < count; i++) {
      const dev = keys.readUInt32LE(i * 4);
      const off = i * m.stride;
      const inflight = Math.max(0, Number(values.readBigInt64LE(off)));
      const max = u64(values, off + 8);
      const epoch = u64(values, off + 16);
      let d = this.depth.get(dev);
      if (!d) this.depth.set(dev, (d = { inflight: 0, max: 0 }));
      d.max = Math.max(epoch === this.epoch ? max : 0, d.inflight, inflight);
      d.inflight = inflight;
    }
    this.epoch++;
    this.epochValue.writeBigUInt64LE(BigInt(this.epoch));
    this.obj!.map('epoch').update(this.epochKey, this.epochValue);
  }

  private deviceWindow(id: number, dev: number): BlkioDeviceWindow | undefined {
    const c = this.cur.get(id);
    if (!c) return undefined;
    const p = this.prev.get(id);
    // Fewer I/Os than last time: the entry was created anew (the object reloaded), so all of it is new.
    const fresh = !p || c.ios < p.ios;
    const ios = fresh ? c.ios : c.ios - p.ios;
    if (ios === 0) return undefined;
    for (let b = 0; b < BLKIO_BUCKETS; b++) this.window[b] = fresh ? c.buckets[b] : Math.max(0, c.buckets[b] - p.buckets[b]);
    for (let b = 0; b < BLKIO_BUCKETS; b++) this.total[b] += this.window[b];
    const latUs = (fresh ? c.latNs : c.latNs - p.latNs) / 1000;
    const seq = fresh ? c.seq : c.seq - p.seq;
    const major = dev >>> MINORBITS;
    const minor = dev & ((1 << MINORBITS) - 1);
    return {
      dev: `${major}:${minor}`,
      major,
      minor,
      name: this.deviceName(dev),
      ios,
      readBytes: fresh ? c.readBytes : c.readBytes - p.readBytes,
      writeBytes: fresh ? c.writeBytes : c.writeBytes - p.writeBytes,
      seqRatio: seq / ios,
      p50: histPercentile(this.window, 0.5),
      p90: histPercentile(this.window, 0.9),
      p99: histPercentile(this.window, 0.99),
      mean: latUs / ios,
      maxInflight: this.depth.get(dev)?.max ?? 0,
    };
  }

  private deviceName(dev: number): string | undefined {
    if (this.names.has(dev)) return this.names.get(dev);
    let name: string | undefined;
    try {
      name = basename(readlinkSync(`/sys/dev/block/${dev >>> MINORBITS}:${dev & ((1 << MINORBITS) - 1)}`));
    } catch {
      name = undefined; // the device is gone (a loop device detached): the number alone still identifies it
    }
    this.names.set(dev, name);
    return name;
  }

  private histOf(slot: number, ios: number, latUs: number): CumulativeHistogram {
    let h = this.hists.get(slot);
    if (!h) this.hists.set(slot, (h = { counts: new Array<number>(BLKIO_BUCKETS).fill(0), count: 0, sumUs: 0 }));
    for (let b = 0; b < BLKIO_BUCKETS; b++) h.counts[b]! += this.total[b]!;
    h.count += ios;
    h.sumUs += latUs;
    return { counts: [...h.counts], count: h.count, sumUs: h.sumUs };
  }

  private windowOf(slot: number, devIds: Map<number, number[]>): Omit<BlkioWindow, 'burst'> {
    this.total.fill(0);
    const devices: BlkioDeviceWindow[] = [];
    for (const id of devIds.get(slot) ?? []) {
      const d = this.deviceWindow(id, id % 0x1_0000_0000);
      if (d) devices.push(d);
    }
    devices.sort((a, b) => b.ios - a.ios);
    let ios = 0;
    let readBytes = 0;
    let writeBytes = 0;
    let seq = 0;
    let latUs = 0;
    let maxInflight = 0;
    for (const d of devices) {
      ios += d.ios;
      readBytes += d.readBytes;
      writeBytes += d.writeBytes;
      seq += d.seqRatio * d.ios;
      latUs += d.mean * d.ios;
      maxInflight = Math.max(maxInflight, d.maxInflight);
    }
    return {
      hist: this.histOf(slot, ios, latUs),
      ios,
      readBytes,
      writeBytes,
      seqRatio: ios > 0 ? Math.round(seq) / ios : 0,
      p50: ios > 0 ? histPercentile(this.total, 0.5) : 0,
      p90: ios > 0 ? histPercentile(this.total, 0.9) : 0,
      p99: ios > 0 ? histPercentile(this.total, 0.99) : 0,
      mean: ios > 0 ? latUs / ios : 0,
      maxInflight,
      devices,
    };
  }

  private burstOf(slot: number, ios: number): 0 | 1 {
    let b = this.bursts.get(slot);
    if (!b) this.bursts.set(slot, (b = new BurstDetector(this.opts.burst ?? DEFAULT_BLKIO_BURST)));
    return b.update(ios) ? 1 : 0;
  }

  collect(_now: number, out: Record<string, TargetSignals>): void {
    if (!this.obj) return;
    this.readStats();
    this.readDepth();
    const bySlot = new Map<number, number[]>();
    for (const id of this.cur.keys()) {
      const slot = Math.floor(id / 0x1_0000_0000);
      let list = bySlot.get(slot);
      if (!list) bySlot.set(slot, (list = []));
      list.push(id);
    }
    for (const t of this.targets) {
      const w = this.windowOf(t.slot, bySlot);
      const sig = (out[t.name] ??= { name: t.name, role: t.role });
      sig.blkio = { ...w, burst: this.burstOf(t.slot, w.ios) } satisfies BlkioWindow;
    }
    if (this.opts.host) {
      const slot = this.hostSlot;
      const w = this.windowOf(slot, bySlot);
      this.lastHost = { ...w, burst: this.burstOf(slot, w.ios) };
    }
    this.swap();
  }

  /** This tick's cumulative counters become the next tick's baseline. */
  private swap(): void {
    for (const [id, c] of this.cur) {
      const p = this.prev.get(id);
      if (p) copyCumulative(c, p);
      else this.prev.set(id, cloneCumulative(c));
    }
  }

  /** The host-wide window of the last collect, when `host` is on. */
  hostWindow(): BlkioWindow | undefined {
    return this.lastHost;
  }

  close(): void {
    this.obj?.close();
    this.obj = undefined;
  }
}


function newCumulative(): Cumulative {
  return { buckets: new Float64Array(BLKIO_BUCKETS), ios: 0, latNs: 0, readBytes: 0, writeBytes: 0, seq: 0 };
}

function cloneCumulative(c: Cumulative): Cumulative {
  return { ...c, buckets: Float64Array.from(c.buckets) };
}

function copyCumulative(from: Cumulative, to: Cumulative): void {
  to.buckets.set(from.buckets);
  to.ios = from.ios;
  to.latNs = from.latNs;
  to.readBytes = from.readBytes;
  to.writeBytes = from.writeBytes;
  to.seq = from.seq;
}

// This signal's part of each tick snapshot, declared beside the signal so the snapshot's type grows with the list of
// signals and readers need no casts.
declare module '../../core/types.js' {
  interface TargetSignals {
    blkio?: BlkioWindow;
  }
  interface HostSignals {
    blkio?: BlkioWindow;
  }
}
