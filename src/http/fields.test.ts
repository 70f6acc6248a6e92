import { describe, expect, it } from 'vitest';
import { describeField, FieldCatalogue } from './fields.js';
import { syntheticSnapshot } from './fake-control.js';

describe('describeField', () => {
  it('reads LatencyStats keys as microseconds and exports seconds', () => {
    const f = describeField('target', ['runqlat', 'p99']);
    expect(f.metric).toBe('ebpf_tuner_runqlat_p99_seconds');
    expect(f.scale).toBe(1e-6);
    expect(f.group).toBe('target:runqlat:latency');
    expect(describeField('target', ['runqlat', 'p99Ewma']).metric).toBe('ebpf_tuner_runqlat_p99_ewma_seconds');
  });

  it('takes the unit from a trailing word and drops it from the stem', () => {
    expect(describeField('target', ['runqlat', 'waitUs'])).toMatchObject({
      metric: 'ebpf_tuner_runqlat_wait_seconds',
      scale: 1e-6,
      label: 'wait',
      group: 'target:runqlat:time',
    });
    expect(describeField('target', ['futex', 'waitNs']).scale).toBe(1e-9);
    expect(describeField('target', ['io', 'readBytes']).metric).toBe('ebpf_tuner_io_read_bytes');
    expect(describeField('target', ['mem', 'anonKiB'])).toMatchObject({
      metric: 'ebpf_tuner_mem_anon_bytes',
      scale: 1024,
    });
    expect(describeField('target', ['oncpu', 'ratio']).metric).toBe('ebpf_tuner_oncpu_ratio');
    expect(describeField('host', ['psi', 'cpuSomeAvg10Pct'])).toMatchObject({
      metric: 'ebpf_tuner_host_psi_cpu_some_avg10_ratio',
      scale: 0.01,
    });
  });

  it('never ends a gauge in a suffix Prometheus reserves for other types', () => {
    expect(describeField('target', ['runqlat', 'count']).metric).toBe('ebpf_tuner_runqlat_samples');
    expect(describeField('target', ['psi', 'total']).metric).toBe('ebpf_tuner_psi_total_value');
  });
});

describe('FieldCatalogue', () => {
  it('flattens every numeric field of every target, in base units', () => {
    const c = new FieldCatalogue(100, []);
    const samples = c.flatten(syntheticSnapshot(1000, 0));
    const p99 = samples.find((s) => s.target === 'web' && s.field.key === 'runqlat.p99');
    expect(p99?.value).toBeCloseTo(900e-6, 12);
    expect(samples.some((s) => s.field.key === 'name' || s.field.key === 'role')).toBe(false);
    expect(samples.find((s) => s.target === undefined)?.field.metric).toBe('ebpf_tuner_host_psi_cpu_some_avg10_ratio');
  });

  it('caps the number of fields and drops name clashes, counting both', () => {
    const c = new FieldCatalogue(3, ['ebpf_tuner_x_seconds']);
    c.flatten({ targets: { a: { name: 'a', x: { sec: 1 }, p99: 1, p99Us: 2, b: 1, c: 1, d: 1 } } });
    expect(c.list().map((f) => f.key)).toEqual(['p99', 'b', 'c']);
    expect(c.dropped).toBe(3);
  });

  it('skips arrays, strings and anything deeper than four levels', () => {
    const c = new FieldCatalogue(100, []);
    c.flatten({
      targets: { a: { hist: { counts: [1, 2, 3] }, s: 'x', deep: { a: { b: { c: { d: 1 } } }, ok: { v: 1 } } } },
    });
    expect(c.list().map((f) => f.key)).toEqual(['deep.ok.v']);
  });
});
