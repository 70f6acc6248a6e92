/**
 * Helpers for kernel tests: real cgroups the test creates and removes, real processes it starts and ends by pid.
 *
 * Every cgroup is named `ebpf-tuner-test-<creator pid>-<random>` directly under a controller mount, so a safety net
 * can find leftovers without touching cgroups that another live test process is still using. Removing a cgroup
 * moves whatever is left in it back to the controller root and never kills a process it did not start.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { TunerError, errnoCode } from '../core/errors.js';
import { readIdsIfAny, removeCgroupTree } from '../cgroup/cgroup.js';
import { detectLayout, type CgroupLayout } from '../cgroup/layout.js';
import { pidAlive } from '../core/pid.js';

export const TEST_CGROUP_PREFIX = 'ebpf-tuner-test-';

export interface TestCgroup {
  /** Absolute path of the cgroup directory. */
  readonly path: string;
  readonly controller: string;
  /** The controller's mount point (where leftover processes are moved back to). */
  readonly root: string;
  readonly version: 1 | 2;
  /** Create a child cgroup; it is removed with this one. */
  child(name: string): TestCgroup;
  /** Move a process (all its threads) into this cgroup. */
  moveIn(pid: number): void;
  /** Move leftover processes to the controller root, then remove this cgroup and everything below it. Idempotent. */
  remove(): void;
}

export interface SpawnedProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the process has exited and been reaped. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Top-level cgroups made by this process that are not removed yet. */
const created = new Set<string>();
const spawned = new Map<number, SpawnedProcess>();

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A cgroup directly in the v2 tree, for what only v2 has (socket attribution, per-cgroup pressure), named so
 * cleanupAll() removes it if this process dies first. `needs` names what the test needs the v2 tree for.
 */
export function makeV2TestCgroup(needs: string, layout: CgroupLayout = detectLayout()): { path: string; remove(): void } {
  const root = layout.unified;
  if (!root) throw new Error(`this host mounts no cgroup v2 tree, which ${needs} needs`);
  const dir = path.join(root, `${TEST_CGROUP_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(dir);
  let removed = false;
  return {
    path: dir,
    remove(): void {
      if (removed) return;
      removeCgroupTree(dir, root);
      removed = true;
    },
  };
}

function controllerMount(controller: string, layout: CgroupLayout): { mount: string; version: 1 | 2 } {
  const c = layout.controllers[controller];
  if (c === undefined) {
    throw new TunerError(
      'CGROUP_UNSUPPORTED',
      `create a test cgroup for ${controller}: this host mounts no ${controller} controller (have: ${Object.keys(layout.controllers).join(', ')})`,
    );
  }
  return c;
}

/**
 * v2: let a cgroup's children have every controller it has (what systemd does for the slices it makes), so a child
 * gets cpu.weight, cpu.max, cpuset.cpus, io and memory files. Each is enabled on its own: one the cgroup cannot pass
 * down (a threaded subtree takes only threaded controllers) must not keep the others away.
 */
function enableControllers(dir: string): void {
  let have: string[];
  try {
    have = fs.readFileSync(path.join(dir, 'cgroup.controllers'), 'utf8').split(/\s+/).filter(Boolean);
  } catch {
    return;
  }
  const on = new Set(fs.readFileSync(path.join(dir, 'cgroup.subtree_control'), 'utf8').split(/\s+/).filter(Boolean));
  for (const c of have) {
    if (on.has(c)) continue;
    try {
      fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), `+${c}\n`);
    } catch {
      // not delegable here; a test that needs it fails on the missing file, naming it
    }
  }
}

function makeCgroup(dir: string, controller: string, root: string, version: 1 | 2, top: boolean): TestCgroup {
  fs.mkdirSync(dir);
  if (top) created.add(dir);
  // A new v1 cpuset starts with no cpus and no mems, and refuses tasks until both are set.
  if (version === 1 && controller === 'cpuset') {
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      fs.writeFileSync(path.join(dir, f), fs.readFileSync(path.join(path.dirname(dir), f), 'utf8'));
    }
  }
  let removed = false;
  return {
    path: dir,
    controller,
    root,
    version,
    child(name: string): TestCgroup {
      if (name.includes('/') || name === '' || name === '.' || name === '..') {
        throw new Error(`test cgroup child name ${JSON.stringify(name)} must be a single path component`);
      }
      if (version === 2) enableControllers(dir);
      return makeCgroup(path.join(dir, name), controller, root, version, false);
    },
    moveIn(pid: number): void {
      fs.writeFileSync(path.join(dir, 'cgroup.procs'), `${pid}\n`);
    },
    remove(): void {
      if (removed) return;
      removeCgroupTree(dir, root);
      removed = true;
      created.delete(dir);
    },
  };
}

/**
 * Create `<controller mount>/ebpf-tuner-test-<pid>-<random>`. Needs root. `name` (another test cgroup's name) makes
 * the same cgroup in a second v1 hierarchy, as a target's twin (its cpuset beside its cpu cgroup).
 */
export function makeTestCgroup(controller = 'cpu', opts: { layout?: CgroupLayout; name?: string } = {}): TestCgroup {
  const { mount, version } = controllerMount(controller, opts.layout ?? detectLayout());
  if (opts.name !== undefined && !opts.name.startsWith(`${TEST_CGROUP_PREFIX}${process.pid}-`)) {
    throw new Error(`test cgroup name ${JSON.stringify(opts.name)} must be one this process made (${TEST_CGROUP_PREFIX}${process.pid}-…)`);
  }
  const name = opts.name ?? `${TEST_CGROUP_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`;
  return makeCgroup(path.join(mount, name), controller, mount, version, true);
}

/** Start a process and track it so `killAndWait` and `cleanupAll` can end it. */
export function spawnTracked(cmd: string, args: string[] = [], opts: SpawnOptions = {}): SpawnedProcess {
  const child = spawn(cmd, args, { stdio: 'ignore', ...opts });
  if (child.pid === undefined) {
    throw new TunerError('INTERNAL', `spawn ${cmd}: no pid (the executable may not exist)`);
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: child.exitCode, signal: child.signalCode }));
  });
  const p: SpawnedProcess = { pid: child.pid, child, exited };
  spawned.set(child.pid, p);
  void exited.then(() => spawned.delete(p.pid));
  return p;
}

/**
 * Start `cmd args` inside a cgroup. A shell writes its own pid to cgroup.procs and then execs the command, so the
 * command never runs outside the cgroup (works on v1 and v2). Resolves once the pid is listed in the cgroup.
 */
/** The wrapper shell's exit code when it could not write its pid into cgroup.procs. */
const JOIN_FAILED = 121;

export async function spawnInCgroup(
  cgroupPath: string,
  cmd: string,
  args: string[] = [],
  opts: SpawnOptions = {},
): Promise<SpawnedProcess> {
  const procs = path.join(cgroupPath, 'cgroup.procs');
  // The shell joins the cgroup and execs the command; it exits with JOIN_FAILED only when it could not join. A short
  // command (a single dd) may have run and exited before the first look at cgroup.procs: that is a success too.
  const p = spawnTracked('/bin/sh', ['-c', `echo $$ > "$0" || exit ${JOIN_FAILED}; exec "$@"`, procs, cmd, ...args], opts);
  let exitCode: number | null | undefined;
  void p.exited.then(({ code }) => (exitCode = code));
  for (let i = 0; i < 1000; i++) {
    if (readIdsIfAny(procs).includes(p.pid)) return p;
    if (exitCode !== undefined) {
      if (exitCode !== JOIN_FAILED) return p;
      break;
    }
    await sleep(5);
  }
  await killAndWait(p);
  throw new TunerError('INTERNAL', `start ${cmd} in ${cgroupPath}: the process never appeared in ${procs}`);
}

function isGone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the parenthesised command name, which may itself contain ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/** Signal a process and wait until it has exited. Pass the SpawnedProcess (or the pid of one) to also reap it. */
export async function killAndWait(
  p: number | SpawnedProcess,
  signal: NodeJS.Signals = 'SIGKILL',
  timeoutMs = 10_000,
): Promise<void> {
  const tracked = typeof p === 'number' ? spawned.get(p) : p;
  const pid = typeof p === 'number' ? p : p.pid;
  if (tracked !== undefined) {
    if (tracked.child.exitCode !== null || tracked.child.signalCode !== null) return;
    tracked.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    const r = await Promise.race([tracked.exited, timeout]);
    clearTimeout(timer);
    if (r === 'timeout') throw new TunerError('INTERNAL', `kill pid ${pid} with ${signal}: still running after ${timeoutMs} ms`);
    return;
  }
  try {
    process.kill(pid, signal);
  } catch (e) {
    if (errnoCode(e) === 'ESRCH') return;
    throw e;
  }
  const deadline = Date.now() + timeoutMs;
  while (!isGone(pid)) {
    if (Date.now() > deadline) throw new TunerError('INTERNAL', `kill pid ${pid} with ${signal}: still running after ${timeoutMs} ms`);
    await sleep(5);
  }
}

/**
 * Safety net for afterAll: end every process started here that is still running, and remove every test cgroup this
 * process made plus any left behind by test processes that no longer exist. Returns the cgroups removed.
 */
export async function cleanupAll(opts: { layout?: CgroupLayout } = {}): Promise<string[]> {
  for (const p of [...spawned.values()]) await killAndWait(p);
  const layout = opts.layout ?? detectLayout();
  const removed: string[] = [];
  for (const m of layout.mounts) {
    let names: string[];
    try {
      names = fs.readdirSync(m.mount);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.startsWith(TEST_CGROUP_PREFIX)) continue;
      const owner = Number(name.slice(TEST_CGROUP_PREFIX.length).split('-')[0]);
      const dir = path.join(m.mount, name);
      if (owner !== process.pid && Number.isSafeInteger(owner) && owner > 0 && pidAlive(owner)) continue;
      removeCgroupTree(dir, m.mount);
      created.delete(dir);
      removed.push(dir);
    }
  }
  return removed;
}
