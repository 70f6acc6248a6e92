/** What each attached BPF program cost per event, for kernel tests and benchmarks to print. */
import { progStats } from '../bpf/stats.js';

/** `name N ns × runs` for every program that ran since it was loaded (kernel BPF statistics must be on). */
export function programCosts(programs: readonly { name: string; fd: number }[]): string {
  return programs
    .map(({ name: p, fd }) => ({ p, ...progStats(fd) }))
    .filter((s) => s.runCnt > 0)
    .map((s) => `${s.p} ${(s.runTimeNs / s.runCnt).toFixed(0)} ns × ${s.runCnt}`)
    .join(', ');
}
