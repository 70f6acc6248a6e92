/**
 * The workloads the overhead benchmarks time: `perf bench sched pipe` (two tasks ping-ponging through a pipe —
 * nothing but context switches, so every scheduler hook is on its hot path) and `perf bench sched messaging`
 * (hundreds of tasks passing messages), and `perf bench syscall basic` (getppid() in a loop: what every syscall hook
 * adds to every syscall). Each runs to completion as a child process and its result is parsed.
 */
import { TunerError } from '../core/errors.js';
import type { Resources } from './resources.js';

/** µs per operation from `perf bench sched pipe` (or `syscall basic`) output. */
export function parsePipeUsPerOp(out: string, what = 'perf bench sched pipe'): number {
  const m = /([\d.]+)\s+usecs\/op/.exec(out);
  if (!m) throw new TunerError('INTERNAL', `parse ${what} output: no "usecs/op" line in ${JSON.stringify(out.slice(0, 300))}`);
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

/** `perf bench syscall basic`: µs per getppid() call, pinned to `cpu`. */
export function syscallWorkload(loops: number, cpu: number): Workload {
  return {
    id: 'syscall-pinned',
    label: `syscall basic (taskset -c ${cpu})`,
    unit: 'us/op',
    async run(res) {
      const { stdout } = await res.run('perf', ['bench', 'syscall', 'basic', '-l', String(loops)], { cpu, name: 'perf bench syscall basic' });
      return parsePipeUsPerOp(stdout, 'perf bench syscall basic');
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
