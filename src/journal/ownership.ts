/**
 * Who may change what: one agent per state directory, and one agent per knob on the whole host.
 *
 * Both are `flock(2)` locks on small files, so the kernel drops them the moment their holder dies — a crashed agent
 * never blocks the next one. Each file also records its holder as (pid, start time): that names the live holder in
 * a refusal, and tells a lock kept alive only by a leaked descriptor in some unrelated process (the recorded agent
 * is gone, or its pid now belongs to another process) from a live agent, so such a stale claim is broken rather
 * than obeyed.
 *
 * - The state directory lock (`<state>/agent.lock`) is held by a running agent and by `rollback`; a second agent or a
 *   rollback under a live agent is refused (BUSY), naming the live pid.
 * - Knob claims live in a host-wide directory (`/run/ebpf-tuner/knobs/`, one file per knob keyed by a digest of its
 *   canonical path; tmpfs, so a reboot forgets them with the processes). An agent claims a knob before it reads the
 *   value it would journal as the original, and keeps it until it exits, so two agents never manage the same knob
 *   whatever their state directories, and a value written by one is never taken for an original by another.
 *   Claiming, breaking and releasing are serialised by a registry lock, so a stale claim cannot be broken twice.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import koffi from 'koffi';
import { errnoCode, TunerError } from '../core/errors.js';

const libc = koffi.load('libc.so.6');
const flockFn = libc.func('int flock(int fd, int operation)') as (fd: number, op: number) => number;
const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = koffi.os.errno.EWOULDBLOCK ?? 11;

/** Where host-wide claims live unless EBPF_TUNER_RUN_DIR says otherwise (tests use a private one). */
export const DEFAULT_RUN_DIR = '/run/ebpf-tuner';

export function defaultRunDir(): string {
  return process.env.EBPF_TUNER_RUN_DIR || DEFAULT_RUN_DIR;
}

/** The holder a lock file records. */
export interface LockOwner {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot): with the pid, names one process for good. */
  start: string;
  stateDir?: string;
  /** The knob, for claims. */
  path?: string;
  /** ms since the epoch. */
  since: number;
}

/** The start time of a process, or undefined when there is no such process. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses; the fields after its last ')' are fixed.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** True while the process the record names is alive: same pid, same start time. */
export function isAlive(owner: Pick<LockOwner, 'pid' | 'start'>): boolean {
  return Number.isInteger(owner.pid) && owner.pid > 0 && processStartTime(owner.pid) === owner.start;
}

function self(extra: Partial<LockOwner> = {}): LockOwner {
  return { pid: process.pid, start: processStartTime(process.pid) ?? '?', since: Date.now(), ...extra };
}

/** The owner recorded in a lock file; undefined when the file is missing, unreadable or garbled. */
export function readOwner(file: string): LockOwner | undefined {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
    return typeof o.pid === 'number' && typeof o.start === 'string' ? o : undefined;
  } catch {
    return undefined;
  }
}

function tryFlock(fd: number): boolean {
  if (flockFn(fd, LOCK_EX | LOCK_NB) === 0) return true;
  const e = koffi.errno();
  if (e === EWOULDBLOCK) return false;
  throw new TunerError('INTERNAL', `flock: errno ${e}`);
}

interface Held {
  fd: number;
  file: string;
}

/**
 * Takes the lock on `file` for this process, writing `owner` into it. Returns undefined when a live process (by
 * pid and start time) holds it; a lock whose recorded holder is gone is broken (the file unlinked, a fresh one
 * taken). A lock file unlinked between our open and our flock is detected by its inode and retried.
 */
function acquire(file: string, owner: LockOwner): { held?: Held; holder?: LockOwner } {
  for (let attempt = 0; attempt < 5; attempt++) {
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    let keep = false;
    try {
      if (!tryFlock(fd)) {
        // The holder writes its record right after taking the lock; give a half-written one a moment.
        let holder = readOwner(file);
        for (let i = 0; holder === undefined && i < 10; i++) {
          sleepSync(10);
          holder = readOwner(file);
        }
        if (holder !== undefined && isAlive(holder)) return { holder };
        // Locked, but not by the agent it names: a descriptor leaked into another process keeps a dead agent's
        // lock. That inode is abandoned; a new file takes its place.
        fs.rmSync(file, { force: true });
        continue;
      }
      let same = false;
      try {
        const a = fs.fstatSync(fd);
        const b = fs.statSync(file);
        same = a.ino === b.ino && a.dev === b.dev;
      } catch {
        same = false;
      }
      if (!same) continue;
      fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, JSON.stringify(owner) + '\n', 0);
      keep = true;
      return { held: { fd, file } };
    } finally {
      if (!keep) fs.closeSync(fd);
    }
  }
  throw new TunerError('INTERNAL', `lock ${file}: it kept changing under us; try again`);
}

function release(h: Held): void {
  // Unlink while still holding it: whoever opened the old file meanwhile sees its inode is gone and retries.
  fs.rmSync(h.file, { force: true });
  fs.closeSync(h.fd);
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function describeOwner(o: LockOwner): string {
  return `pid ${o.pid}${o.stateDir !== undefined ? ` (state directory ${o.stateDir})` : ''}, since ${new Date(o.since).toISOString()}`;
}

/** The state directory's lock. */
export class StateDirLock {
  static readonly FILE = 'agent.lock';
  private held?: Held;

  private constructor(held: Held) {
    this.held = held;
  }

  /**
   * Locks `stateDir` for this process (`what` says for what, in the refusal: "run the agent", "roll back"). Throws
   * BUSY naming the live holder.
   */
  static acquire(stateDir: string, cmd: string): StateDirLock {
    const dir = path.resolve(stateDir);
    const file = path.join(dir, StateDirLock.FILE);
    let r: ReturnType<typeof acquire>;
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      r = acquire(file, self({ stateDir: dir }));
    } catch (e) {
      if (e instanceof TunerError) throw e;
      throw new TunerError('JOURNAL', `lock state directory ${dir}: ${errnoCode(e) ?? String(e)} — fix: check --state-dir is a writable directory`, {
        cause: e,
      });
    }
    if (r.held !== undefined) return new StateDirLock(r.held);
    const h = r.holder!;
    throw new TunerError(
      'BUSY',
      `${cmd}: state directory ${dir} is in use by a running agent, ${describeOwner(h)} — fix: stop that agent first ` +
        `(\`kill ${h.pid}\` or \`systemctl stop ebpf-tuner\`; it restores its knobs on exit), or use another --state-dir`,
    );
  }

  /** Who holds `stateDir`'s lock right now, if anyone (for `status`). */
  static holder(stateDir: string): LockOwner | undefined {
    const o = readOwner(path.join(path.resolve(stateDir), StateDirLock.FILE));
    return o !== undefined && isAlive(o) ? o : undefined;
  }

  /** Idempotent. */
  release(): void {
    if (this.held === undefined) return;
    release(this.held);
    this.held = undefined;
  }
}

/** What the knob writer and the restorer need: claim before touching, and say who holds what. */
export interface KnobClaimer {
  /** Claims `knobPath` for this agent; throws BUSY naming the live agent that holds it. Idempotent. */
  claim(knobPath: string): void;
}

/**
 * The name a knob is claimed under: a cgroup file by its real path (two spellings of one file are one knob), a knob
 * of a registered scheme (`affinity:<tid>`) as written.
 */
export function knobKey(knobPath: string): string {
  if (!path.isAbsolute(knobPath)) return knobPath;
  try {
    return fs.realpathSync(knobPath);
  } catch {
    return path.resolve(knobPath);
  }
}

/** The host-wide registry of knob claims. One per agent; released when the agent stops. */
export class KnobClaims implements KnobClaimer {
  readonly runDir: string;
  private readonly stateDir: string;
  private readonly held = new Map<string, Held>();
  private ready = false;

  constructor(opts: { stateDir: string; runDir?: string }) {
    this.runDir = path.resolve(opts.runDir ?? defaultRunDir());
    this.stateDir = path.resolve(opts.stateDir);
  }

  claim(knob: string): void {
    const knobPath = knobKey(knob);
    if (this.held.has(knobPath)) return;
    const file = this.fileOf(knobPath);
    const r = this.withRegistry(`claim ${knobPath}`, () => acquire(file, self({ stateDir: this.stateDir, path: knobPath })));
    if (r.held !== undefined) {
      this.held.set(knobPath, r.held);
      return;
    }
    const h = r.holder!;
    throw new TunerError(
      'BUSY',
      `claim ${knobPath}: another live agent manages it, ${describeOwner(h)} — fix: give each agent its own targets, ` +
        `or stop agent ${h.pid} first`,
    );
  }

  /** Knob paths this agent holds. */
  list(): string[] {
    return [...this.held.keys()];
  }

  /** Gives up every claim. Idempotent. */
  releaseAll(): void {
    if (this.held.size === 0) return;
    this.withRegistry('release knob claims', () => {
      for (const h of this.held.values()) release(h);
    });
    this.held.clear();
  }

  private fileOf(knobPath: string): string {
    return path.join(this.runDir, 'knobs', `${createHash('sha256').update(knobPath).digest('hex').slice(0, 40)}.claim`);
  }

  private prepare(): void {
    if (this.ready) return;
    fs.mkdirSync(path.join(this.runDir, 'knobs'), { recursive: true, mode: 0o700 });
    // Whoever could write here could forge or delete claims: the directory must be ours and closed to others.
    for (const d of [this.runDir, path.join(this.runDir, 'knobs')]) {
      const st = fs.statSync(d);
      const uid = process.getuid?.() ?? 0;
      if ((st.uid !== 0 && st.uid !== uid) || (st.mode & 0o022) !== 0) {
        throw new TunerError(
          'PERMISSION',
          `check claim directory ${d}: owned by uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)}; ` +
            `others could forge or remove claims — fix: \`chown root ${d} && chmod 700 ${d}\``,
        );
      }
    }
    this.ready = true;
  }

  /** Runs fn under the registry lock (held for microseconds by every agent, so a short wait is enough). */
  private withRegistry<T>(what: string, fn: () => T): T {
    let fd: number;
    try {
      this.prepare();
      fd = fs.openSync(path.join(this.runDir, 'registry.lock'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    } catch (e) {
      if (e instanceof TunerError) throw e;
      throw new TunerError('PERMISSION', `${what}: cannot use the claim directory ${this.runDir} (${errnoCode(e) ?? String(e)}) — fix: run the agent as root`, {
        cause: e,
      });
    }
    try {
      for (let waited = 0; !tryFlock(fd); waited += 5) {
        if (waited >= 5000) throw new TunerError('BUSY', `${what}: the claim registry ${this.runDir} stayed locked for 5 s — fix: try again`);
        sleepSync(5);
      }
      return fn();
    } finally {
      fs.closeSync(fd);
    }
  }
}
