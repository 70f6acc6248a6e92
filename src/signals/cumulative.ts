/**
 * Per-slot cumulative kernel aggregates, read in bulk and turned into per-tick windows. Several signals keep, per
 * target slot and per CPU, a log2 histogram of u64 buckets followed by u64 counters (struct layout: buckets[B] then
 * C counters); this sums a whole per-CPU map over CPUs in one pass and hands out the difference since the last tick.
 * Arrays are allocated once per slot and reused: nothing is allocated per tick once every slot has been seen.
 */
import type { BpfMap } from '../bpf/map.js';
import { possibleCpus } from '../bpf/map.js';
import type { CumulativeHistogram } from '../core/types.js';
import { u64 } from './membership.js';

interface Totals {
  buckets: Float64Array;
  counters: Float64Array;
}

export interface Window {
  /** Histogram counts in the window (bucket i: [2^i, 2^(i+1)) in the signal's unit). */
  readonly buckets: Float64Array;
  /** Counter deltas in the window, in struct order. */
  readonly counters: Float64Array;
}

export class CumulativeSlots {
  private cur = new Map<number, Totals>();
  private prev = new Map<number, Totals>();
  private readonly hists = new Map<number, Readonly<CumulativeHistogram>>();
  private readonly win: Window;

  constructor(
    readonly bucketCount: number,
    readonly counterCount: number,
  ) {
    this.win = { buckets: new Float64Array(bucketCount), counters: new Float64Array(counterCount) };
  }

  private fresh(): Totals {
    return { buckets: new Float64Array(this.bucketCount), counters: new Float64Array(this.counterCount) };
  }

  /** Reads every entry of a per-CPU map (u32 slot keys), summing each slot over CPUs. */
  read(map: BpfMap): void {
    const { count, keys, values } = map.readAll();
    const cpuStride = map.stride / possibleCpus;
    const tail = this.bucketCount * 8;
    for (let i = 0; i < count; i++) {
      const slot = keys.readUInt32LE(i * 4);
      let t = this.cur.get(slot);
      if (!t) this.cur.set(slot, (t = this.fresh()));
      t.buckets.fill(0);
      t.counters.fill(0);
      for (let cpu = 0; cpu < possibleCpus; cpu++) {
        const base = i * map.stride + cpu * cpuStride;
        for (let b = 0; b < this.bucketCount; b++) t.buckets[b] += u64(values, base + b * 8);
        for (let k = 0; k < this.counterCount; k++) t.counters[k] += u64(values, base + tail + k * 8);
      }
    }
  }

  /**
   * What happened in `slot` since the last advance(). The returned arrays are reused by the next call. Counters
   * never go backwards in the kernel; a negative difference (a map recreated) counts as 0.
   */
  window(slot: number): Window {
    const c = this.cur.get(slot);
    const p = this.prev.get(slot);
    for (let b = 0; b < this.bucketCount; b++) this.win.buckets[b] = Math.max(0, (c?.buckets[b] ?? 0) - (p?.buckets[b] ?? 0));
    for (let k = 0; k < this.counterCount; k++) this.win.counters[k] = Math.max(0, (c?.counters[k] ?? 0) - (p?.counters[k] ?? 0));
    return this.win;
  }

  /**
   * Everything `slot` has counted since its map was created (the signal's start), as read by the last read(): the
   * kernel's own cumulative buckets and counters, for exporters that want totals rather than windows.
   */
  totals(slot: number): Window {
    return this.cur.get(slot) ?? this.fresh();
  }

  /**
   * `slot`'s totals as an exporter's histogram, with counter 0 as the count and counter 1 (divided by `perUs`) as the
   * sum in µs. While nothing new was counted in the slot this is the object handed out before: an idle target costs
   * no allocation per tick. A handed-out object is never changed afterwards.
   */
  histogram(slot: number, perUs: number): Readonly<CumulativeHistogram> {
    const t = this.totals(slot);
    const count = t.counters[0] ?? 0;
    const sumUs = (t.counters[1] ?? 0) / perUs;
    const last = this.hists.get(slot);
    if (last && last.count === count && last.sumUs === sumUs) return last;
    const h = { counts: Array.from(t.buckets), count, sumUs };
    this.hists.set(slot, h);
    return h;
  }

  /** This tick's totals become the baseline of the next window. */
  advance(): void {
    for (const [slot, c] of this.cur) {
      let p = this.prev.get(slot);
      if (!p) this.prev.set(slot, (p = this.fresh()));
      p.buckets.set(c.buckets);
      p.counters.set(c.counters);
    }
  }
}
