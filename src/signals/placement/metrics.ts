/** The Prometheus metrics the placement signal feeds: where each target's threads are, and the CPUs it may use. */
import { targetGauges, type MetricDecl } from '../metrics.js';
import type { PlacementStats } from './placement.js';

export const PLACEMENT_METRICS: readonly MetricDecl[] = targetGauges<PlacementStats>('placement', '', [
  ['ebpf_tuner_threads', 'Threads of each target.', (w) => w.threads],
  ['ebpf_tuner_threads_runnable', 'Threads of each target that are runnable now.', (w) => w.runnable],
  ['ebpf_tuner_cpus_used', 'Distinct CPUs the runnable threads of each target are on.', (w) => w.cpusUsed],
  ['ebpf_tuner_cpus_allowed', 'CPUs each target may run on (its cpuset).', (w) => w.allowedCpus],
  ['ebpf_tuner_cpus_idle', 'CPUs idle over the last tick that each target may run on.', (w) => w.idleCpus],
  ['ebpf_tuner_cpu_pileup_threads', 'Runnable threads of each target on its most crowded CPU.', (w) => w.pileup],
]);
