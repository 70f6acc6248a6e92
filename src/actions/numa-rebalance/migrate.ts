/**
 * migrate_pages(2) through libc's syscall(2), bound with koffi: libc has no wrapper for it (libnuma does, but is
 * not worth a dependency for one call). Moves every page of a process that sits on one of `from` to `to`.
 */
import koffi from 'koffi';
import { TunerError } from '../../core/errors.js';
import { formatCpuList, toMask } from '../../signals/placement/cpulist.js';

const libc = koffi.load('libc.so.6');
const syscall = libc.func('long syscall(long number, ...)');

/** __NR_migrate_pages per architecture (arch/x86/entry/syscalls, include/uapi/asm-generic/unistd.h). */
const NR_MIGRATE_PAGES: Partial<Record<NodeJS.Architecture, number>> = { x64: 256, arm64: 238, riscv64: 238, ia32: 294 };

/** Node masks cover MAX_NUMNODES of the largest configs (1024 nodes). */
const NODE_MASK_BYTES = 128;

function errnoName(e: number): string {
  for (const [name, n] of Object.entries(koffi.os.errno)) if (n === e) return name;
  return `errno ${e}`;
}

/**
 * Move the pages of process `pid` on nodes `from` to nodes `to`. Returns how many pages could not be moved (the
 * kernel's return value; 0 when all moved, or when there was nothing to move, as from node 0 to node 0).
 */
export function migratePages(pid: number, from: readonly number[], to: readonly number[]): number {
  const nr = NR_MIGRATE_PAGES[process.arch];
  const what = `migrate the pages of process ${pid} from nodes ${formatCpuList(from)} to ${formatCpuList(to)}`;
  if (nr === undefined) throw new TunerError('ACTION_FAILED', `${what}: no syscall number known for ${process.arch}`);
  if (to.length === 0) throw new TunerError('ACTION_FAILED', `${what}: no destination node`);
  const oldMask = toMask(from, NODE_MASK_BYTES);
  const newMask = toMask(to, NODE_MASK_BYTES);
  // maxnode counts one more than the bits the kernel reads (it decrements it first, as libnuma passes it).
  const r = Number(
    syscall(nr, 'int', pid, 'unsigned long', NODE_MASK_BYTES * 8 + 1, 'uint8_t *', oldMask, 'uint8_t *', newMask),
  );
  if (r >= 0) return r;
  const e = errnoName(koffi.errno());
  switch (e) {
    case 'ESRCH':
      throw new TunerError('PID_NOT_FOUND', `${what}: no such process (ESRCH) — it exited`);
    case 'EPERM':
      throw new TunerError('ACTION_EPERM', `${what}: permission denied (EPERM) — run the agent as root or with CAP_SYS_NICE`);
    case 'EINVAL':
      throw new TunerError('ACTION_FAILED', `${what}: EINVAL — a destination node is outside the process's cpuset.mems, or has no memory`);
    default:
      throw new TunerError('ACTION_FAILED', `${what}: ${e}`);
  }
}
