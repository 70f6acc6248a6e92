/**
 * Per-program cost as the kernel measures it: run_time_ns and run_cnt, counted while BPF stats are enabled —
 * by an fd from BPF_ENABLE_STATS (5.8+; stats stay on while we hold it) or the kernel.bpf_stats_enabled sysctl.
 */
import { readFileSync } from 'node:fs';
import { bpf, c } from './libbpf.js';

export interface ProgStats {
  runTimeNs: number;
  runCnt: number;
  /**
   * Runs the kernel skipped because the same program was already running on that CPU (an interrupt nested in it),
   * counted whether or not stats are on (5.12+; 0 before).
   */
  recursionMisses: number;
}

/** Reads a program's counters from /proc/self/fdinfo (no struct layout to keep in sync with the kernel). */
export function progStats(progFd: number): ProgStats {
  const text = readFileSync(`/proc/self/fdinfo/${progFd}`, 'utf8');
  const num = (k: string): number => Number(new RegExp(`^${k}:\\s*(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { runTimeNs: num('run_time_ns'), runCnt: num('run_cnt'), recursionMisses: num('recursion_misses') };
}

let statsFd = -1;
let holders = 0;

/** Turns run-time accounting on; returns a function that turns it off again (reference-counted). */
export function enableBpfStats(): () => void {
  if (holders === 0) statsFd = bpf.bpf_enable_stats(0) as number; // BPF_STATS_RUN_TIME
  holders++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--holders === 0 && statsFd >= 0) {
      c.close(statsFd);
      statsFd = -1;
    }
  };
}

export function bpfStatsSysctl(): boolean {
  try {
    return readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim() === '1';
  } catch {
    return false;
  }
}
