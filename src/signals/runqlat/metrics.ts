/** The Prometheus metrics the run-queue signal feeds: its latency histograms and its per-target scheduler counts. */
import { latencyHistograms, num, perTarget, US, type MetricDecl } from '../metrics.js';
import type { RunqlatWindow } from './runqlat.js';

export const RUNQLAT_METRICS: readonly MetricDecl[] = [
  ...latencyHistograms('runqlat', 'runqueue_latency', 'Time runnable before getting a CPU (run-queue latency)'),
  {
    name: 'ebpf_tuner_runqueue_latency_p99_smoothed_seconds',
    type: 'gauge',
    unit: 'seconds',
    help: "EWMA across ticks of each tick's run-queue latency p99: the value the agent's rules compare.",
    read: perTarget<RunqlatWindow, number>('runqlat', (w) => num(w.p99Ewma, US)),
  },
  {
    name: 'ebpf_tuner_oncpu_seconds_total',
    type: 'counter',
    source: 'delta',
    unit: 'seconds',
    help: "Time each target's threads spent running on a CPU, as seen at context switches.",
    read: perTarget<RunqlatWindow, number>('runqlat', (w) => num(w.oncpuUs, US)),
  },
  {
    name: 'ebpf_tuner_context_switches_total',
    type: 'counter',
    source: 'delta',
    unit: '',
    help: "Context switches away from each target's threads: involuntary (preempted while runnable) or voluntary.",
    read: perTarget<RunqlatWindow, number>('runqlat', (w) => [
      [{ kind: 'involuntary' }, w.involuntary],
      [{ kind: 'voluntary' }, w.voluntary],
    ]),
  },
  {
    name: 'ebpf_tuner_wakeups_total',
    type: 'counter',
    source: 'delta',
    unit: '',
    help: "Wakeups of each target's threads (switch-ins from the run queue that did not follow a preemption).",
    read: perTarget<RunqlatWindow, number>('runqlat', (w) => num(w.wakeups)),
  },
  {
    name: 'ebpf_tuner_cpu_migrations_total',
    type: 'counter',
    source: 'delta',
    unit: '',
    help: "CPU migrations of each target's threads.",
    read: perTarget<RunqlatWindow, number>('runqlat', (w) => num(w.migrations)),
  },
];
