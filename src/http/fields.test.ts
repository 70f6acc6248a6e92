import { describe, expect, it } from 'vitest';
import { describeField, FieldCatalogue } from './fields.js';
import { syntheticSnapshot } from './fake-control.js';

describe('describeField', () => {
  it('reads LatencyStats keys as microseconds and charts seconds', () => {
    const f = describeField('target', ['runqlat', 'p99']);
    expect(f.unit).toBe('seconds');
    expect(f.scale).toBe(1e-6);
    expect(f.group).toBe('target:runqlat:latency');
    expect(describeField('target', ['runqlat', 'p99Ewma']).group).toBe('target:runqlat:latency');
  });

  it('takes the unit from a trailing word and drops it from the stem', () => {
    expect(describeField('target', ['runqlat', 'waitUs'])).toMatchObject({
      scale: 1e-6,
      label: 'wait',
      group: 'target:runqlat:time',
    });
    expect(describeField('target', ['futex', 'waitNs']).scale).toBe(1e-9);
    expect(describeField('target', ['io', 'readBytes']).unit).toBe('bytes');
    expect(describeField('target', ['mem', 'anonKiB'])).toMatchObject({ unit: 'bytes', label: 'anon', scale: 1024 });
    expect(describeField('target', ['oncpu', 'ratio']).unit).toBe('ratio');
    expect(describeField('host', ['psi', 'cpuSomeAvg10Pct'])).toMatchObject({ unit: 'ratio', scale: 0.01 });
  });
});

describe('FieldCatalogue', () => {
  it('registers the same fields without sampling as flattening does, each once', () => {
    const snap = syntheticSnapshot(1000, 0);
    const flat = new FieldCatalogue(100);
    flat.flatten(snap);
    const reg = new FieldCatalogue(100);
    reg.register(Object.values(snap.targets), snap.host);
    expect(reg.list()).toEqual(flat.list());
    const v = reg.version;
    reg.register(Object.values(snap.targets), snap.host);
    expect(reg.version).toBe(v);
    reg.register([{ name: 'a', role: 'protect', extra: { newUs: 1, 'dotted.key': 2 } }], undefined);
    expect(reg.list().slice(-2).map((f) => f.path)).toEqual([['extra', 'newUs'], ['extra', 'dotted.key']]);
  });

  it('flattens every numeric field of every target, in base units', () => {
    const c = new FieldCatalogue(100);
    const samples = c.flatten(syntheticSnapshot(1000, 0));
    const p99 = samples.find((s) => s.target === 'web' && s.field.key === 'runqlat.p99');
    expect(p99?.value).toBeCloseTo(900e-6, 12);
    expect(samples.some((s) => s.field.key === 'name' || s.field.key === 'role')).toBe(false);
    expect(samples.find((s) => s.target === undefined)?.field.key).toBe('psi.cpu.someAvg10');
    // Totals since start (the Prometheus histograms) are not per-tick chart material.
    expect(samples.some((s) => s.field.key.includes('hist'))).toBe(false);
  });

  it('caps the number of fields, counting what it drops', () => {
    const c = new FieldCatalogue(3);
    c.flatten({ targets: { a: { name: 'a', x: { sec: 1 }, p99: 1, p99Us: 2, b: 1, c: 1, d: 1 } } });
    expect(c.list().map((f) => f.key)).toEqual(['x.sec', 'p99', 'p99Us']);
    expect(c.dropped).toBe(3);
  });

  it('skips arrays, strings and anything deeper than four levels', () => {
    const c = new FieldCatalogue(100);
    c.flatten({
      targets: { a: { hist: { counts: [1, 2, 3] }, s: 'x', deep: { a: { b: { c: { d: 1 } } }, ok: { v: 1 } } } },
    });
    expect(c.list().map((f) => f.key)).toEqual(['deep.ok.v']);
  });
});
