/** The Prometheus metrics the cgroup statistics signal feeds: CPU time and CFS bandwidth counters, memory levels. */
import { num, perTarget, targetGauges, US, type MetricDecl } from '../metrics.js';
import type { CgstatWindow } from './cgstat.js';

export const CGSTAT_METRICS: readonly MetricDecl[] = [
  {
    name: 'ebpf_tuner_cgroup_cpu_usage_seconds_total',
    type: 'counter',
    source: 'delta',
    unit: 'seconds',
    help: "CPU time used by each target's cgroup (cpuacct.usage / cpu.stat usage_usec).",
    read: perTarget<CgstatWindow, number>('cgstat', (w) => num(w.cpuUsageUs, US)),
  },
  {
    name: 'ebpf_tuner_cgroup_cpu_periods_total',
    type: 'counter',
    source: 'delta',
    unit: '',
    help: "CFS bandwidth periods that elapsed with runnable tasks in each target's cgroup.",
    read: perTarget<CgstatWindow, number>('cgstat', (w) => num(w.nrPeriods)),
  },
  {
    name: 'ebpf_tuner_cgroup_cpu_throttled_periods_total',
    type: 'counter',
    source: 'delta',
    unit: '',
    help: "CFS bandwidth periods in which each target's cgroup ran out of quota.",
    read: perTarget<CgstatWindow, number>('cgstat', (w) => num(w.nrThrottled)),
  },
  {
    name: 'ebpf_tuner_cgroup_cpu_throttled_seconds_total',
    type: 'counter',
    source: 'delta',
    unit: 'seconds',
    help: "Time the run queues of each target's cgroup spent throttled, summed over CPUs.",
    read: perTarget<CgstatWindow, number>('cgstat', (w) => num(w.throttledUs, US)),
  },
  ...targetGauges<CgstatWindow>('cgstat', 'bytes', [
    [
      'ebpf_tuner_cgroup_memory_usage_bytes',
      "Memory charged to each target's cgroup and its descendants.",
      (w) => w.memoryBytes,
    ],
    [
      'ebpf_tuner_cgroup_memory_limit_bytes',
      "Hard memory limit of each target's cgroup; absent when unlimited.",
      (w) => w.memoryLimitBytes,
    ],
    ['ebpf_tuner_cgroup_memory_anon_bytes', "Anonymous memory of each target's cgroup.", (w) => w.anonBytes],
    ['ebpf_tuner_cgroup_memory_file_bytes', "Page cache charged to each target's cgroup.", (w) => w.fileBytes],
  ]),
];
