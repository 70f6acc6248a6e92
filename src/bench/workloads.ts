/**
 * The workloads the overhead benchmarks time: `perf bench sched pipe` (two tasks ping-ponging through a pipe —
 * nothing but context switches, so every scheduler hook is on its hot path) and `perf bench sched messaging`
 * (hundreds of tasks passing messages). Each runs to completion as a child process and its result is parsed.
 */
import { TunerError } from '../core/errors.js';
import type { Resources } from './resources.js';

/** µs per operation from `perf bench sched pipe` output. */
export function parsePipeUsPerOp(out: string): number {
  const m = /([\d.]+)\s+usecs\/op/.exec(out);
  if (!m) throw new TunerError('INTERNAL', `parse perf bench sched pipe output: no "usecs/op" line in ${JSON.stringify(out.slice(0, 300))}`);
  return Number(m[1]);
}

/** Total seconds from `perf bench sched messaging` (or any perf bench) output. */
export function parseTotalSeconds(out: string): number {
  const m = /Total time:\s*([\d.]+)\s*\[sec\]/.exec(out);
  if (!m) throw new TunerError('INTERNAL', `parse perf bench output: no "Total time" line in ${JSON.stringify(out.slice(0, 300))}`);
  return Number(m[1]);
}

export interface Workload {
  id: string;
  label: string;
  unit: 'us/op' | 's';
  run(res: Resources): Promise<number>;
}

export function pipeWorkload(loops: number, cpu?: number): Workload {
  return {
    id: cpu === undefined ? 'pipe' : 'pipe-pinned',
    label: cpu === undefined ? 'sched pipe' : `sched pipe (taskset -c ${cpu})`,
    unit: 'us/op',
    async run(res) {
      const { stdout } = await res.run('perf', ['bench', 'sched', 'pipe', '-l', String(loops)], { cpu, name: 'perf bench sched pipe' });
      return parsePipeUsPerOp(stdout);
    },
  };
}

export function messagingWorkload(loops: number, groups: number): Workload {
  return {
    id: 'messaging',
    label: `sched messaging (${groups} groups)`,
    unit: 's',
    async run(res) {
      const { stdout } = await res.run('perf', ['bench', 'sched', 'messaging', '-g', String(groups), '-l', String(loops)], {
        name: 'perf bench sched messaging',
      });
      return parseTotalSeconds(stdout);
    },
  };
}
