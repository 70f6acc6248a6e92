/**
 * The Prometheus metrics the pressure signal feeds: stall totals and avg10 ratios by resource and kind, for each
 * target's own cgroup (cgroup v2 only) and once for the host.
 */
import { host, perTarget, US, type Labels, type MetricDecl } from '../metrics.js';
import { PSI_RESOURCES, type PsiResources } from './psi.js';

function pressure(p: PsiResources | undefined, what: 'total' | 'avg10'): [Labels, number][] {
  const out: [Labels, number][] = [];
  if (!p) return out;
  for (const resource of PSI_RESOURCES) {
    const r = p[resource];
    if (!r) continue;
    if (what === 'total') {
      out.push([{ resource, kind: 'some' }, r.someTotalUs * US]);
      if (r.fullTotalUs !== undefined) out.push([{ resource, kind: 'full' }, r.fullTotalUs * US]);
    } else {
      out.push([{ resource, kind: 'some' }, r.someAvg10 / 100]);
      if (r.fullAvg10 !== undefined) out.push([{ resource, kind: 'full' }, r.fullAvg10 / 100]);
    }
  }
  return out;
}

export const PSI_METRICS: readonly MetricDecl[] = [
  {
    name: 'ebpf_tuner_pressure_stalled_seconds_total',
    type: 'counter',
    source: 'total',
    unit: 'seconds',
    help:
      "Time some (or all) of the tasks in each target's own cgroup were stalled on a resource " +
      '(PSI total; cgroup v2 only).',
    read: perTarget<{ cgroup?: PsiResources }, number>('psi', (w) => pressure(w.cgroup, 'total')),
  },
  {
    name: 'ebpf_tuner_pressure_avg10_ratio',
    type: 'gauge',
    unit: 'ratio',
    help: "Share of the last 10 s in which tasks of each target's own cgroup were stalled (PSI avg10 / 100).",
    read: perTarget<{ cgroup?: PsiResources }, number>('psi', (w) => pressure(w.cgroup, 'avg10')),
  },
  {
    name: 'ebpf_tuner_host_pressure_stalled_seconds_total',
    type: 'counter',
    source: 'total',
    unit: 'seconds',
    help: 'Time some (or all) tasks on the host were stalled on a resource (/proc/pressure total).',
    read: host<PsiResources, number>('psi', (w) => pressure(w, 'total')),
  },
  {
    name: 'ebpf_tuner_host_pressure_avg10_ratio',
    type: 'gauge',
    unit: 'ratio',
    help: 'Share of the last 10 s in which tasks on the host were stalled (/proc/pressure avg10 / 100).',
    read: host<PsiResources, number>('psi', (w) => pressure(w, 'avg10')),
  },
];
