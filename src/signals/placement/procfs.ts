/**
 * What procfs and sysfs say about where threads run: a target's threads, each thread's state, last CPU and start
 * time (/proc/<tid>/stat), per-CPU busy time (/proc/stat), online CPUs, and the CPUs a thread's cpuset allows.
 * Shared by the placement and NUMA signals and the actions that move threads; every root is injectable so tests
 * can point them at a faithful fake tree.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TunerError, errnoCode } from '../../core/errors.js';
import type { Target } from '../../core/types.js';
import { childCgroups, listThreads, readIdsIfAny } from '../../cgroup/cgroup.js';
import { controllerRootOf, type CgroupLayout } from '../../cgroup/layout.js';
import { parseCpuList } from './cpulist.js';

export interface ProcRoots {
  /** Default /proc. */
  procRoot?: string;
  /** Default /sys. */
  sysRoot?: string;
}

export interface TaskStat {
  tid: number;
  /** One letter: R running or runnable, S, D, T, Z, ... */
  state: string;
  /** The CPU the thread last ran on (or waits on, when runnable): field 39. */
  processor: number;
  /** Clock ticks after boot the thread started (field 22): with the tid, names one thread for its whole life. */
  starttime: number;
  /** User + system CPU time so far, clock ticks (fields 14 + 15). */
  cpuTicks: number;
}

/**
 * Parse /proc/<tid>/stat. The command name in parentheses may hold spaces and ')', so fields are counted from the
 * last ')'. Undefined for text that is not a stat line.
 */
export function parseTaskStat(tid: number, text: string): TaskStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = text.slice(close + 2).trim().split(' ');
  // f[0] is field 3 (state); field n is f[n - 3].
  if (f.length < 37) return undefined;
  const processor = Number(f[36]);
  const starttime = Number(f[19]);
  const cpuTicks = Number(f[11]) + Number(f[12]);
  if (!Number.isFinite(processor) || !Number.isFinite(starttime)) return undefined;
  return { tid, state: f[0]!, processor, starttime, cpuTicks };
}

/**
 * A thread's stat, or undefined when it has exited (or never existed). Read from /proc/<tid>/task/<tid>/stat, which
 * works for any thread id: /proc/<tid>/stat of a thread reports the whole thread group's CPU time (utime, stime),
 * which would give every thread of a process the same weight. A tree without the task/ entry (a fake) falls back to
 * /proc/<tid>/stat.
 */
export function readTaskStat(tid: number, roots: ProcRoots = {}): TaskStat | undefined {
  const dir = path.join(roots.procRoot ?? '/proc', String(tid));
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, 'task', String(tid), 'stat'), 'utf8');
  } catch {
    try {
      text = fs.readFileSync(path.join(dir, 'stat'), 'utf8');
    } catch {
      return undefined;
    }
  }
  return parseTaskStat(tid, text);
}

/** Every thread id in a cgroup and its descendants; a directory removed while walking simply adds none. */
export function cgroupSubtreeThreads(dir: string, out: number[] = []): number[] {
  try {
    out.push(...listThreads(dir));
  } catch {
    // the cgroup is gone, or this is not a cgroup directory: no members
  }
  for (const child of childCgroups(dir)) cgroupSubtreeThreads(child, out);
  return out;
}

/** Thread ids of one process, from /proc/<pid>/task; empty when it has exited. */
export function processThreads(pid: number, roots: ProcRoots = {}): number[] {
  try {
    return fs
      .readdirSync(path.join(roots.procRoot ?? '/proc', String(pid), 'task'))
      .map(Number)
      .filter((n) => Number.isSafeInteger(n) && n > 0);
  } catch {
    return [];
  }
}

/** Every thread of a target, ascending and unique: its cgroup subtree's, or its processes'. */
export function targetThreads(target: Target, roots: ProcRoots = {}): number[] {
  const tids =
    target.scope.kind === 'cgroup'
      ? cgroupSubtreeThreads(target.scope.path)
      : target.scope.pids.flatMap((p) => processThreads(p, roots));
  return [...new Set(tids)].sort((a, b) => a - b);
}

/** Process ids (thread-group leaders) of a target: its cgroup subtree's cgroup.procs, or its pid list. */
export function targetProcesses(target: Target): number[] {
  if (target.scope.kind === 'pids') return [...target.scope.pids];
  const out = new Set<number>();
  const walk = (dir: string): void => {
    for (const p of readIdsIfAny(path.join(dir, 'cgroup.procs'))) out.add(p);
    for (const child of childCgroups(dir)) walk(child);
  };
  walk(target.scope.path);
  return [...out].sort((a, b) => a - b);
}

export interface CpuTimes {
  /** user + nice + system + irq + softirq + steal, in USER_HZ ticks. */
  busy: number;
  /** busy + idle + iowait. */
  total: number;
}

/** The per-CPU lines of /proc/stat ("cpu0 …"), keyed by CPU number; the aggregate "cpu" line is skipped. */
export function parseProcStat(text: string): Map<number, CpuTimes> {
  const out = new Map<number, CpuTimes>();
  for (const line of text.split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const v = m[2]!.trim().split(/\s+/).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
    // guest and guest_nice are already counted in user and nice.
    const busy = user + nice + system + irq + softirq + steal;
    out.set(Number(m[1]), { busy, total: busy + idle + iowait });
  }
  return out;
}

export function readProcStat(roots: ProcRoots = {}): Map<number, CpuTimes> {
  const file = path.join(roots.procRoot ?? '/proc', 'stat');
  try {
    return parseProcStat(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new TunerError('PERMISSION', `read ${file}: ${errnoCode(e) ?? String(e)} — mount procfs at /proc`, { cause: e });
  }
}

/** Busy fraction of each CPU between two /proc/stat readings; a CPU with no elapsed ticks (offline) reads 0. */
export function busyFractions(prev: Map<number, CpuTimes>, cur: Map<number, CpuTimes>): Map<number, number> {
  const out = new Map<number, number>();
  for (const [cpu, c] of cur) {
    const p = prev.get(cpu);
    if (p === undefined) continue;
    const total = c.total - p.total;
    out.set(cpu, total > 0 ? Math.min(1, Math.max(0, (c.busy - p.busy) / total)) : 0);
  }
  return out;
}

/** CPUs online now (/sys/devices/system/cpu/online). */
export function onlineCpus(roots: ProcRoots = {}): number[] {
  const file = path.join(roots.sysRoot ?? '/sys', 'devices/system/cpu/online');
  try {
    return parseCpuList(fs.readFileSync(file, 'utf8'), file);
  } catch (e) {
    if (e instanceof TunerError) throw e;
    throw new TunerError('PERMISSION', `read ${file}: ${errnoCode(e) ?? String(e)} — mount sysfs at /sys`, { cause: e });
  }
}

/** CPUs possible on this host (/sys/devices/system/cpu/possible): the size every affinity mask must cover. */
export function possibleCpuCount(roots: ProcRoots = {}): number {
  const file = path.join(roots.sysRoot ?? '/sys', 'devices/system/cpu/possible');
  try {
    const ids = parseCpuList(fs.readFileSync(file, 'utf8'), file);
    return ids.length === 0 ? 1 : ids[ids.length - 1]! + 1;
  } catch {
    return 1024;
  }
}

/** The file holding a cpuset cgroup's effective CPUs: the names differ between v1 and v2. */
export function effectiveCpusFile(version: 1 | 2): string {
  return version === 2 ? 'cpuset.cpus.effective' : 'cpuset.effective_cpus';
}

/** The file holding a cpuset cgroup's effective memory nodes. */
export function effectiveMemsFile(version: 1 | 2): string {
  return version === 2 ? 'cpuset.mems.effective' : 'cpuset.effective_mems';
}

/**
 * The directory of the cpuset cgroup a thread is in (from /proc/<tid>/cpuset), or undefined when the host has no
 * cpuset controller or the thread is gone.
 */
export function threadCpusetDir(tid: number, layout: CgroupLayout, roots: ProcRoots = {}): string | undefined {
  const ctrl = layout.controllers.cpuset;
  if (ctrl === undefined) return undefined;
  let rel: string;
  try {
    rel = fs.readFileSync(path.join(roots.procRoot ?? '/proc', String(tid), 'cpuset'), 'utf8').trim();
  } catch {
    return undefined;
  }
  const mr = ctrl.mountRoot;
  if (mr !== '/' && (rel === mr || rel.startsWith(mr + '/'))) rel = rel.slice(mr.length);
  return path.resolve(ctrl.mount, '.' + rel);
}

/**
 * The CPUs a thread's cpuset lets it run on — the most an affinity change can give it. Without a cpuset controller
 * that is every online CPU. Undefined when the thread is gone.
 */
export function threadAllowedCpus(
  tid: number,
  layout: CgroupLayout,
  roots: ProcRoots = {},
  cache?: Map<string, number[]>,
): number[] | undefined {
  const ctrl = layout.controllers.cpuset;
  if (ctrl === undefined) return onlineCpus(roots);
  const dir = threadCpusetDir(tid, layout, roots);
  if (dir === undefined) return undefined;
  const hit = cache?.get(dir);
  if (hit !== undefined) return hit;
  const file = path.join(dir, effectiveCpusFile(ctrl.version));
  let cpus: number[];
  try {
    cpus = parseCpuList(fs.readFileSync(file, 'utf8'), file);
  } catch {
    return undefined;
  }
  cache?.set(dir, cpus);
  return cpus;
}

/** Which cpuset interface a directory speaks: v1 (cpuset.effective_cpus) or v2 (cpuset.cpus.effective). */
export function cpusetVersionOf(dir: string, layout: CgroupLayout): 1 | 2 {
  const ctrl = layout.controllers.cpuset;
  if (ctrl?.version === 1 && (dir === ctrl.mount || dir.startsWith(ctrl.mount + '/'))) return 1;
  return fs.existsSync(path.join(dir, 'cpuset.effective_cpus')) ? 1 : 2;
}

/**
 * The cpuset cgroup of a cgroup target: its own directory when that has cpuset files (v2 with +cpuset, or a target
 * named in the v1 cpuset hierarchy), else the same relative path under the v1 cpuset hierarchy, where systemd and
 * container runtimes mirror a unit's cgroup. Undefined for pid targets and when neither exists.
 */
export function cpusetDirOf(target: Target, layout: () => CgroupLayout): string | undefined {
  if (target.scope.kind !== 'cgroup') return undefined;
  const dir = target.scope.path;
  if (fs.existsSync(path.join(dir, 'cpuset.cpus'))) return dir;
  if (target.scope.version !== 1) return undefined;
  const ctrl = layout().controllers.cpuset;
  if (ctrl === undefined || ctrl.version !== 1) return undefined;
  let root: string;
  try {
    root = controllerRootOf(dir, layout());
  } catch {
    return undefined;
  }
  const mirror = path.join(ctrl.mount, path.relative(root, dir));
  return fs.existsSync(path.join(mirror, 'cpuset.cpus')) ? mirror : undefined;
}
