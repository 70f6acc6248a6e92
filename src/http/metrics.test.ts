import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { projectRoot } from '../bpf/paths.js';
import { SIGNAL_METRICS } from '../signals/index.js';

describe('shipped Prometheus rules and Grafana dashboard', () => {
  const read = (p: string): string => readFileSync(join(projectRoot, p), 'utf8');
  const rules = parse(read('deploy/prometheus/rules.yml')) as {
    groups: { rules: { record?: string; alert?: string; expr: string }[] }[];
  };
  const recorded = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))));
  const exported = new Set([
    ...SIGNAL_METRICS.flatMap((m) =>
      m.type === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name],
    ),
    // The agent's own families, written in metrics.ts.
    ...[...read('src/http/metrics.ts').matchAll(/'(ebpf_tuner_[a-z0-9_]+)'/g)].map((m) => m[1]!),
  ]);
  const used = (expr: string): string[] => [...expr.matchAll(/\bebpf_tuner[a-z0-9_:]*/g)].map((m) => m[0]);

  it('rules use only metrics the agent exports', () => {
    for (const g of rules.groups) {
      for (const r of g.rules) for (const n of used(r.expr)) expect(exported.has(n) || recorded.has(n), `${n} in ${r.expr}`).toBe(true);
    }
  });

  it('the dashboard uses only exported metrics and recorded series', () => {
    const dash = JSON.parse(read('deploy/grafana/ebpf-tuner.json')) as {
      panels: { title: string; targets: { expr: string }[] }[];
      templating: { list: { query?: string }[] };
    };
    const exprs = [
      ...dash.panels.flatMap((p) => p.targets.map((t) => t.expr)),
      ...dash.templating.list.flatMap((v) => (v.query ? [v.query] : [])),
    ];
    expect(exprs.length).toBeGreaterThan(10);
    for (const e of exprs) for (const n of used(e)) expect(exported.has(n) || recorded.has(n), `${n} in ${e}`).toBe(true);
  });
});
