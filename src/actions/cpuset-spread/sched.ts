/**
 * sched_getaffinity(2) / sched_setaffinity(2) on one thread, bound from libc through koffi as src/bpf/libbpf.ts
 * binds its libc calls. Masks cross the boundary as byte buffers sized for every possible CPU; errors come back as
 * TunerErrors by errno, with ESRCH (the thread exited) kept distinguishable.
 */
import koffi from 'koffi';
import { TunerError } from '../../core/errors.js';
import { formatCpuList, fromMask, toMask } from '../../signals/placement/cpulist.js';
import { possibleCpuCount } from '../../signals/placement/procfs.js';

const libc = koffi.load('libc.so.6');
const getaffinity = libc.func('int sched_getaffinity(int pid, size_t cpusetsize, _Out_ uint8_t *mask)');
const setaffinity = libc.func('int sched_setaffinity(int pid, size_t cpusetsize, const uint8_t *mask)');

/**
 * Mask size in bytes: whole unsigned longs covering every possible CPU, and at least 128 bytes (glibc's
 * cpu_set_t), since sched_getaffinity fails with EINVAL when the buffer is smaller than the kernel's nr_cpu_ids.
 */
export const MASK_BYTES = Math.max(128, Math.ceil(possibleCpuCount() / 64) * 8);

function errnoName(e: number): string {
  for (const [name, n] of Object.entries(koffi.os.errno)) if (n === e) return name;
  return `errno ${e}`;
}

function fail(verb: string, tid: number, cpus?: readonly number[]): TunerError {
  const e = koffi.errno();
  const name = errnoName(e);
  const what = `${verb} of thread ${tid}${cpus !== undefined ? ` to ${formatCpuList(cpus) || '(none)'}` : ''}`;
  switch (name) {
    case 'ESRCH':
      return new TunerError('PID_NOT_FOUND', `${what}: no such thread (ESRCH) — it exited`);
    case 'EPERM':
      return new TunerError('ACTION_EPERM', `${what}: permission denied (EPERM) — run the agent as root or with CAP_SYS_NICE`);
    case 'EINVAL':
      return new TunerError(
        'ACTION_FAILED',
        `${what}: the kernel rejected the mask (EINVAL) — it holds no CPU the thread's cpuset allows, or the thread is a per-CPU kernel thread`,
      );
    default:
      return new TunerError('ACTION_FAILED', `${what}: ${name}`);
  }
}

/** The CPUs a thread may run on, ascending. */
export function getAffinity(tid: number): number[] {
  const mask = Buffer.alloc(MASK_BYTES);
  if ((getaffinity(tid, MASK_BYTES, mask) as number) !== 0) throw fail('read the CPU affinity', tid);
  return fromMask(mask);
}

/**
 * Set a thread's CPUs. The kernel keeps only those its cpuset allows, so read back with getAffinity to learn what
 * took effect.
 */
export function setAffinity(tid: number, cpus: readonly number[]): void {
  if (cpus.length === 0) {
    throw new TunerError('ACTION_FAILED', `set the CPU affinity of thread ${tid}: an empty CPU set would leave it nowhere to run`);
  }
  const mask = toMask(cpus, MASK_BYTES);
  if ((setaffinity(tid, MASK_BYTES, mask) as number) !== 0) throw fail('set the CPU affinity', tid, cpus);
}
