/**
 * Reading and writing cgroup interface files, listing their members, and finding which cgroup a process is in.
 * Every errno is turned into a TunerError here, so callers see one taxonomy whatever file they touched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TunerError, errnoCode } from '../core/errors.js';
import type { CgroupLayout, CgroupMount } from './layout.js';

/** The two file operations every knob goes through; injectable so failure paths can be tested. */
export interface KnobIO {
  read(p: string): string;
  write(p: string, value: string): void;
}

function describe(code: string | undefined, e: unknown): string {
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'ENODEV':
      return 'the cgroup was removed (ENODEV)';
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${code})`;
    case 'EINVAL':
      return 'the kernel rejected the value (EINVAL)';
    case 'ERANGE':
      return 'the value is out of range (ERANGE)';
    case 'EBUSY':
      return 'the kernel refused the change while the cgroup is busy (EBUSY)';
    default:
      return code ?? (e instanceof Error ? e.message : String(e));
  }
}

/** The TunerError for a failed read or write of an interface file, by errno. */
export function knobFileError(verb: 'read' | 'write', p: string, e: unknown, value?: string): TunerError {
  const code = errnoCode(e);
  const object = value === undefined ? p : `${p} = ${JSON.stringify(value)}`;
  const cause = describe(code, e);
  switch (code) {
    case 'ENOENT':
    case 'ENODEV':
    case 'ENOTDIR':
      return new TunerError(
        'CGROUP_NOT_FOUND',
        `${verb} ${object}: ${cause} — the cgroup may have been removed, or this kernel lacks the file; check the target`,
        { cause: e },
      );
    case 'EACCES':
    case 'EPERM':
      return new TunerError(
        'ACTION_EPERM',
        `${verb} ${object}: ${cause} — run the agent as root (or with CAP_SYS_ADMIN and write access to the cgroup)`,
        { cause: e },
      );
    case 'EINVAL':
    case 'ERANGE':
      return new TunerError(
        'ACTION_FAILED',
        `${verb} ${object}: ${cause} — the value ${JSON.stringify(value ?? '')} is not valid for this knob; use one in its documented range`,
        { cause: e },
      );
    default:
      return new TunerError('ACTION_FAILED', `${verb} ${object}: ${cause}`, { cause: e });
  }
}

/** The content of an interface file without its trailing newline (every cgroup file ends with one). */
export function readKnob(p: string): string {
  let text: string;
  try {
    text = fs.readFileSync(p, 'utf8');
  } catch (e) {
    throw knobFileError('read', p, e);
  }
  return text.endsWith('\n') ? text.slice(0, -1) : text;
}

/**
 * Write one value in one write(2), as `echo value > file` does. No O_CREAT: a knob that is gone must fail with
 * ENOENT, not turn into a new regular file. O_TRUNC is a no-op on cgroupfs but keeps plain-file fakes faithful.
 *
 * One value the kernel refuses although it was the file's own: an empty v2 `cpuset.cpus` or `cpuset.mems` ("use the
 * parent's") cannot be written back while the cgroup has tasks — a populated cpuset may not become empty
 * (ENOSPC, validate_change() in kernel/cgroup/cpuset.c). Restoring such an original then writes the parent's
 * effective list instead: the same CPUs or nodes the empty list gave the cgroup, which no longer follows later
 * changes of the parent's, but which is the nearest the kernel allows while the tasks are there.
 */
export function writeKnob(p: string, value: string): void {
  try {
    writeOnce(p, value);
  } catch (e) {
    const file = path.basename(p);
    if (value.trim() !== '' || (file !== 'cpuset.cpus' && file !== 'cpuset.mems') || errnoCode(e instanceof TunerError ? e.cause : e) !== 'ENOSPC') throw e;
    let inherited: string;
    try {
      inherited = readKnob(path.join(path.dirname(path.dirname(p)), `${file}.effective`));
    } catch {
      throw e; // no v2 parent to inherit from: the kernel's refusal stands
    }
    writeOnce(p, inherited);
  }
}

function writeOnce(p: string, value: string): void {
  const data = value.endsWith('\n') ? value : value + '\n';
  let fd: number;
  try {
    fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_TRUNC);
  } catch (e) {
    throw knobFileError('write', p, e, value);
  }
  try {
    const buf = Buffer.from(data, 'utf8');
    const n = fs.writeSync(fd, buf, 0, buf.length);
    if (n !== buf.length) {
      throw new TunerError('ACTION_FAILED', `write ${p} = ${JSON.stringify(value)}: short write (${n} of ${buf.length} bytes)`);
    }
  } catch (e) {
    if (e instanceof TunerError) throw e;
    throw knobFileError('write', p, e, value);
  } finally {
    fs.closeSync(fd);
  }
}

export const kernelKnobIO: KnobIO = { read: readKnob, write: writeKnob };

/**
 * The sibling files the kernel itself rewrites when `p` is written. Writing `cpu.idle` sets the group's weight: 1
 * makes it the idle weight (cpu.shares 3; cpu.weight reads 0 on 6.1, 1 on 6.12), 0 resets it to the default (1024
 * shares, weight 100) — whatever was there before. A journal that does not follow these would take the kernel's
 * value for another writer's and leave the original behind.
 */
export function kernelRewrites(p: string): string[] {
  if (path.basename(p) !== 'cpu.idle') return [];
  const dir = path.dirname(p);
  return ['cpu.weight', 'cpu.weight.nice', 'cpu.shares'].map((f) => path.join(dir, f));
}

/** Trimmed, whitespace-collapsed: the form two knob values are compared in ("max 100000\n" equals "max  100000"). */
export function normalizeKnobValue(v: string): string {
  return v.trim().replace(/\s+/g, ' ');
}

function parseIdList(p: string): number[] {
  const text = readKnob(p);
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const s = line.trim();
    if (s === '') continue;
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n <= 0) {
      throw new TunerError('ACTION_FAILED', `parse ${p}: line ${JSON.stringify(line)} is not a pid`);
    }
    out.push(n);
  }
  return out;
}

/**
 * The ids in a cgroup.procs, tasks or cgroup.threads file, for a walk that tolerates what it races with: a cgroup
 * removed meanwhile (or a file this hierarchy does not have) lists none, a line that is not an id is passed over.
 */
export function readIdsIfAny(file: string): number[] {
  try {
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .map(Number)
      .filter((n) => Number.isSafeInteger(n) && n > 0);
  } catch {
    return [];
  }
}

/** The cgroups of a subtree, every child before its parent (the order they can be removed in); empty when it is gone. */
export function cgroupSubtreeDeepestFirst(dir: string, out: string[] = []): string[] {
  if (!fs.existsSync(dir)) return out;
  for (const child of childCgroups(dir)) cgroupSubtreeDeepestFirst(child, out);
  out.push(dir);
  return out;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Moves one id into `file`; an id whose task exited between listing and moving has nothing left to move. */
function moveId(file: string, id: number): void {
  try {
    fs.writeFileSync(file, `${id}\n`);
  } catch (e) {
    if (errnoCode(e) !== 'ESRCH') throw e;
  }
}

/**
 * Removes a cgroup subtree the agent's tools made (test, bench and demo cgroups): what is left in it goes to `root`,
 * the hierarchy's root, then each cgroup is removed, children first. Exiting tasks can pin a cgroup for a moment after
 * they left cgroup.procs, so EBUSY is retried for up to 3 s.
 */
export function removeCgroupTree(dir: string, root: string): void {
  for (const d of cgroupSubtreeDeepestFirst(dir)) {
    for (let attempt = 0; ; attempt++) {
      for (const pid of readIdsIfAny(path.join(d, 'cgroup.procs'))) moveId(path.join(root, 'cgroup.procs'), pid);
      // v1 can hold single threads of a process whose leader is elsewhere.
      for (const tid of readIdsIfAny(path.join(d, 'tasks'))) moveId(path.join(root, 'tasks'), tid);
      try {
        fs.rmdirSync(d);
        break;
      } catch (e) {
        const code = errnoCode(e);
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || attempt >= 300) throw new TunerError('INTERNAL', `remove cgroup ${d}: ${code ?? String(e)}`, { cause: e });
        sleepSync(10);
      }
    }
  }
}

/** Processes (thread-group ids) in a cgroup, from cgroup.procs (same name on v1 and v2). */
export function listProcs(cgroupDir: string): number[] {
  return parseIdList(path.join(cgroupDir, 'cgroup.procs'));
}

/** Threads in a cgroup: v1 lists them in `tasks`, v2 in `cgroup.threads`; whichever the directory has is used. */
export function listThreads(cgroupDir: string): number[] {
  const v1 = path.join(cgroupDir, 'tasks');
  return parseIdList(fs.existsSync(v1) ? v1 : path.join(cgroupDir, 'cgroup.threads'));
}

/**
 * The child cgroups (subdirectories) of a cgroup directory, as full paths; empty when it is gone. A directory whose
 * link count is 2 has no subdirectories (cgroupfs, like most file systems, counts "." and its parent's entry plus one
 * per child's ".."), so the common leaf cgroup costs one stat instead of an open, a listing and a close. Where the
 * file system counts links otherwise (btrfs always says 1) the directory is listed.
 */
export function childCgroups(dir: string): string[] {
  const st = fs.statSync(dir, { throwIfNoEntry: false });
  if (st === undefined || !st.isDirectory() || st.nlink === 2) return [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.filter((e) => e.isDirectory()).map((e) => path.join(dir, e.name));
}

export interface ProcCgroupLine {
  hierarchy: number;
  /** Empty for the v2 line (`0::/path`). */
  controllers: string[];
  path: string;
}

/** Parse /proc/<pid>/cgroup: `N:ctrl1,ctrl2:/path` per v1 hierarchy, `0::/path` for v2. */
export function parseProcCgroup(text: string): ProcCgroupLine[] {
  const out: ProcCgroupLine[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    // The path may itself contain ':', so split only on the first two.
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    const ctrl = line.slice(a + 1, b);
    out.push({ hierarchy: Number(line.slice(0, a)), controllers: ctrl === '' ? [] : ctrl.split(','), path: line.slice(b + 1) });
  }
  return out;
}

/**
 * The cgroup directory a process is in for one controller, as an absolute file path under the controller's mount.
 * PID_NOT_FOUND when the process is gone; CGROUP_UNSUPPORTED when the layout has no such controller.
 */
export function cgroupOfPid(
  pid: number,
  controller: string,
  layout: CgroupLayout,
  opts: { procRoot?: string } = {},
): string {
  const ctrl = layout.controllers[controller];
  if (ctrl === undefined) {
    throw new TunerError(
      'CGROUP_UNSUPPORTED',
      `find the ${controller} cgroup of pid ${pid}: no ${controller} controller is mounted (have: ${Object.keys(layout.controllers).join(', ') || 'none'})`,
    );
  }
  return cgroupOfPidIn(pid, ctrl.version === 2 ? { ...ctrl, controllers: [] } : { ...ctrl, controllers: [controller] }, opts);
}

/**
 * The cgroup directory a process is in within one mounted hierarchy (v1: identified by any of its controllers;
 * v2: the `0::` line). Works for hierarchies without controllers too: a v2 tree with none enabled, `name=systemd`.
 */
export function cgroupOfPidIn(
  pid: number,
  hierarchy: Pick<CgroupMount, 'version' | 'mount' | 'mountRoot' | 'controllers'>,
  opts: { procRoot?: string } = {},
): string {
  const file = path.join(opts.procRoot ?? '/proc', String(pid), 'cgroup');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT' || code === 'ESRCH') {
      throw new TunerError('PID_NOT_FOUND', `find the cgroup of pid ${pid}: no such process — it may have exited`, { cause: e });
    }
    throw new TunerError('PERMISSION', `read ${file}: ${describe(code, e)}`, { cause: e });
  }
  const lines = parseProcCgroup(text);
  const name = hierarchy.version === 2 ? 'v2 (0::)' : hierarchy.controllers.join(',');
  const line =
    hierarchy.version === 2
      ? lines.find((l) => l.hierarchy === 0 && l.controllers.length === 0)
      : lines.find((l) => hierarchy.controllers.some((c) => l.controllers.includes(c)));
  if (line === undefined) {
    throw new TunerError('CGROUP_UNSUPPORTED', `find the ${name} cgroup of pid ${pid}: ${file} has no such line`);
  }
  // /proc paths are relative to the hierarchy root; the mount may expose only a subtree of it.
  let rel = line.path;
  const mr = hierarchy.mountRoot;
  if (mr !== '/' && (rel === mr || rel.startsWith(mr + '/'))) rel = rel.slice(mr.length);
  // resolve, not join: the root cgroup is '/', and its path must not end in a slash.
  return path.resolve(hierarchy.mount, '.' + rel);
}
