import { describe, expect, it } from 'vitest';
import { SIGNAL_METRICS } from './index.js';
import { bucketLe } from './metrics.js';

const UNIT_SUFFIX = { seconds: '_seconds', bytes: '_bytes', ratio: '_ratio', '': '' } as const;

describe('SIGNAL_METRICS', () => {
  it('names each metric once, with its unit and type suffix', () => {
    const names = SIGNAL_METRICS.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    for (const m of SIGNAL_METRICS) {
      expect(m.name).toMatch(/^ebpf_tuner_[a-z0-9_]+$/);
      const stem = m.type === 'counter' ? m.name.replace(/_total$/, '') : m.name;
      if (m.type === 'counter') expect(m.name, m.name).toMatch(/_total$/);
      else expect(m.name, m.name).not.toMatch(/_(total|count|sum|bucket|info)$/);
      if (m.unit !== '') expect(stem.endsWith(UNIT_SUFFIX[m.unit]), m.name).toBe(true);
      expect(m.help.length).toBeGreaterThan(10);
    }
  });

  it('maps log2 µs bucket i onto le = 2^(i+1) µs', () => {
    expect(bucketLe(0)).toBe(2e-6);
    expect(bucketLe(9)).toBeCloseTo(1.024e-3, 15);
  });
});
