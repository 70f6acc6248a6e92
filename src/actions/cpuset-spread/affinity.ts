/**
 * A thread's CPU affinity as a knob, so that it goes through the KnobWriter like any cgroup file: scope-checked
 * against the thread's cgroup, its original journaled before the first change, restored on revert, left alone once
 * someone else (taskset, the application itself) changes it after us.
 *
 * The knob path (and id) is `affinity:<tid>@<starttime>`. Thread ids are reused once a thread exits, so the start
 * time (field 22 of /proc/<tid>/stat) pins the knob to one thread's lifetime: a later thread with the same id is a
 * different knob, and the journaled mask is never put on it. Values are CPU lists in the kernel's spelling.
 */
import fs from 'node:fs';
import { TunerError, isTunerError } from '../../core/errors.js';
import type { KnobIO } from '../../cgroup/cgroup.js';
import { formatCpuList, parseCpuList } from '../../signals/placement/cpulist.js';
import { readTaskStat, type ProcRoots } from '../../signals/placement/procfs.js';
import { registerKnobScheme, type KnobScheme } from '../knob-writer.js';
import { getAffinity, setAffinity } from './sched.js';

export const AFFINITY_SCHEME = 'affinity';

export interface ThreadRef {
  tid: number;
  starttime: number;
}

export function affinityKnobPath(t: ThreadRef): string {
  return `${AFFINITY_SCHEME}:${t.tid}@${t.starttime}`;
}

export function parseAffinityKnobPath(p: string): ThreadRef {
  const m = /^affinity:(\d+)@(\d+)$/.exec(p);
  if (m === null) {
    throw new TunerError('INTERNAL', `parse knob path ${JSON.stringify(p)}: expected affinity:<tid>@<starttime>`);
  }
  return { tid: Number(m[1]), starttime: Number(m[2]) };
}

/**
 * The thread is gone, or its id now names another thread. CGROUP_NOT_FOUND is the code restore reads as "the knob
 * no longer exists" (it then reports the knob vanished instead of retrying it forever).
 */
function gone(p: string, t: ThreadRef, why: string): TunerError {
  return new TunerError('CGROUP_NOT_FOUND', `change ${p}: thread ${t.tid} ${why} — its affinity went with it`);
}

function checkAlive(p: string, t: ThreadRef, roots: ProcRoots): void {
  const st = readTaskStat(t.tid, roots);
  if (st === undefined) throw gone(p, t, 'exited');
  if (st.starttime !== t.starttime) throw gone(p, t, `exited (the id now names a thread started at ${st.starttime})`);
}

function vanishedOnEsrch<T>(p: string, t: ThreadRef, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (isTunerError(e, 'PID_NOT_FOUND')) throw gone(p, t, 'exited');
    throw e;
  }
}

/**
 * Reads and writes masks through sched_{get,set}affinity. The start time is checked before each call: a thread
 * that exits between the check and the call fails with ESRCH, and its id cannot be reused while we hold no
 * reference, except in the window of one syscall — small enough to accept for a mask the kernel still confines to
 * the new thread's cpuset.
 */
export function affinityIO(roots: ProcRoots = {}): KnobIO {
  return {
    read(p: string): string {
      const t = parseAffinityKnobPath(p);
      checkAlive(p, t, roots);
      return formatCpuList(vanishedOnEsrch(p, t, () => getAffinity(t.tid)));
    },
    write(p: string, value: string): void {
      const t = parseAffinityKnobPath(p);
      const cpus = parseCpuList(value, `the mask for ${p}`);
      checkAlive(p, t, roots);
      vanishedOnEsrch(p, t, () => setAffinity(t.tid, cpus));
    },
  };
}

/** The process a thread belongs to, from the Tgid line of /proc/<tid>/status. */
export function threadGroupOf(tid: number, roots: ProcRoots = {}): number {
  let text: string;
  try {
    text = fs.readFileSync(`${roots.procRoot ?? '/proc'}/${tid}/status`, 'utf8');
  } catch (e) {
    throw new TunerError('PID_NOT_FOUND', `find the process of thread ${tid}: no such thread — it exited`, { cause: e });
  }
  const m = /^Tgid:\s*(\d+)/m.exec(text);
  if (m === null) throw new TunerError('PID_NOT_FOUND', `find the process of thread ${tid}: its status has no Tgid line`);
  return Number(m[1]);
}

export const affinityScheme: KnobScheme = {
  scheme: AFFINITY_SCHEME,
  io: affinityIO(),
  task(p: string) {
    const t = parseAffinityKnobPath(p);
    const st = readTaskStat(t.tid);
    if (st === undefined || st.starttime !== t.starttime) {
      throw new TunerError('PID_NOT_FOUND', `check the scope of ${p}: thread ${t.tid} has exited`);
    }
    return { tid: t.tid, tgid: threadGroupOf(t.tid) };
  },
};

registerKnobScheme(affinityScheme);
