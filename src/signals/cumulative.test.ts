/** CumulativeSlots: windows are differences of cumulative totals, per slot, from the first read on. */
import { describe, expect, it } from 'vitest';
import type { BpfMap } from '../bpf/map.js';
import { possibleCpus } from '../bpf/map.js';
import { CumulativeSlots } from './cumulative.js';

/** A per-CPU map as readAll() returns it: u32 keys, then per key one value of (buckets + counters) u64s per CPU. */
function fakeMap(entries: Map<number, number[][]>, valueU64s: number): BpfMap {
  const stride = valueU64s * 8 * possibleCpus;
  return {
    stride,
    readAll() {
      const keys = Buffer.alloc(entries.size * 4);
      const values = Buffer.alloc(entries.size * stride);
      [...entries].forEach(([k, perCpu], i) => {
        keys.writeUInt32LE(k, i * 4);
        perCpu.forEach((vals, cpu) => vals.forEach((v, j) => values.writeBigUInt64LE(BigInt(v), i * stride + cpu * valueU64s * 8 + j * 8)));
      });
      return { count: entries.size, keys, values };
    },
  } as unknown as BpfMap;
}

describe('CumulativeSlots', () => {
  it('sums CPUs and reports what changed since the last advance', () => {
    const cpus = (v: number[]) => [v, ...Array.from({ length: possibleCpus - 1 }, () => v.map(() => 1))];
    const slots = new CumulativeSlots(2, 1);
    const m = new Map([[0, cpus([5, 0, 10])]]);
    slots.read(fakeMap(m, 3));
    slots.advance();
    m.set(0, cpus([7, 3, 12]));
    slots.read(fakeMap(m, 3));
    const w = slots.window(0);
    expect([...w.buckets]).toEqual([2, 3]);
    expect([...w.counters]).toEqual([2]);
    expect([...slots.window(9).counters]).toEqual([0]);
  });

  it('hands out the same exporter histogram while a slot counts nothing new, and a new one when it does', () => {
    const one = (v: number[]) => [v, ...Array.from({ length: possibleCpus - 1 }, () => v.map(() => 0))];
    const slots = new CumulativeSlots(2, 2);
    const m = new Map([[0, one([1, 2, 3, 5000])]]);
    slots.read(fakeMap(m, 4));
    const first = slots.histogram(0, 1000);
    expect(first).toEqual({ counts: [1, 2], count: 3, sumUs: 5 });
    slots.advance();
    slots.read(fakeMap(m, 4));
    expect(slots.histogram(0, 1000)).toBe(first);
    m.set(0, one([1, 3, 4, 6000]));
    slots.read(fakeMap(m, 4));
    const second = slots.histogram(0, 1000);
    expect(second).toEqual({ counts: [1, 3], count: 4, sumUs: 6 });
    expect(first).toEqual({ counts: [1, 2], count: 3, sumUs: 5 });
  });
});
