/** The Prometheus metrics the NUMA signal feeds: how much of each target's memory is remote, and where it is. */
import { num, perTarget, type Labels, type MetricDecl } from '../metrics.js';
import type { NumaStats } from './numa.js';

export const NUMA_METRICS: readonly MetricDecl[] = [
  {
    name: 'ebpf_tuner_numa_remote_memory_ratio',
    type: 'gauge',
    unit: 'ratio',
    help: "Share of each target's memory on NUMA nodes other than the one its threads mostly run on.",
    read: perTarget<NumaStats, number>('numa', (w) => num(w.remoteFraction)),
  },
  {
    name: 'ebpf_tuner_numa_memory_bytes',
    type: 'gauge',
    unit: 'bytes',
    help: "Each target's resident memory by NUMA node.",
    read: perTarget<NumaStats, number>('numa', (w) =>
      Object.entries(w.memKb).map(([node, kb]): [Labels, number] => [{ node }, kb * 1024]),
    ),
  },
];
