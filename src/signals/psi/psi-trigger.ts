/**
 * PSI triggers: the kernel wakes us when a pressure threshold is crossed ("some 150000 1000000": 150 ms of stall
 * within any 1 s window), instead of the agent noticing at its next tick.
 *
 * A trigger is armed by writing it to a pressure file (/proc/pressure/<resource> or a cgroup v2
 * <resource>.pressure) and signalled as POLLPRI on that open file. Node's event loop cannot wait for POLLPRI, so
 * a worker thread blocks in poll(2) (through koffi) on every trigger fd plus an eventfd that wakes it for shutdown,
 * and posts each event to the main thread.
 *
 * With CAP_SYS_RESOURCE a trigger is checked by the kernel's real-time poller (window/10 granularity, window from
 * 500 ms); without it, only windows that are a multiple of 2 s are accepted and they are checked by the 2 s
 * averaging work, so an event can come up to ~2 s after the threshold is crossed. The fds are opened, armed and closed on the main thread; the worker only
 * sees their numbers, and they are closed after it has left poll(), so a number is never reused under it.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { TunerError, errnoCode } from '../../core/errors.js';
import { closeFds, eventfd, stopPollingWorker } from '../../core/fd.js';
import { parsePressure, type Pressure, type PsiResourceName } from './psi.js';

export type PsiKind = 'some' | 'full';

export interface PsiTriggerSpec {
  resource: PsiResourceName;
  kind: PsiKind;
  /** Stall time within the window that fires the trigger, µs (> 0, ≤ windowUs). */
  stallUs: number;
  /** Tracking window, µs: from 500 ms to 10 s, as the kernel accepts. */
  windowUs: number;
  /** The pressure file; default /proc/pressure/<resource> (host-wide). A cgroup v2 <resource>.pressure scopes it. */
  path?: string;
}

export interface PsiTriggerEvent extends Required<PsiTriggerSpec> {
  /** Index of the spec in the list given to start(). */
  index: number;
  /** When the worker saw POLLPRI, ms since the epoch. */
  time: number;
  /** The pressure file read right after the event, when it could be read. */
  pressure?: Pressure;
}

export interface PsiTriggerLost extends Required<PsiTriggerSpec> {
  index: number;
  /** Why the trigger will not fire again: its cgroup was removed (POLLERR), or poll failed. */
  reason: string;
}

export type PsiTriggerEvents = {
  trigger: [PsiTriggerEvent];
  lost: [PsiTriggerLost];
};

/** The kernel's limits on a trigger's window (kernel/sched/psi.c: WINDOW_MIN_US, WINDOW_MAX_US). */
export const PSI_WINDOW_MIN_US = 500_000;
export const PSI_WINDOW_MAX_US = 10_000_000;


/**
 * Runs in the worker. Plain JavaScript (eval'd), so it works the same from the TypeScript sources and the build.
 * pollfd is { int fd; short events; short revents; }: 8 bytes.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const koffi = require(workerData.koffiPath);
const poll = koffi.load('libc.so.6').func('int poll(void *fds, unsigned long nfds, int timeout)');
const POLLIN = 0x1, POLLPRI = 0x2, POLLERR = 0x8, POLLNVAL = 0x20, EINTR = 4;
const fds = workerData.fds;
const n = fds.length + 1;
const buf = Buffer.alloc(n * 8);
fds.forEach((fd, i) => { buf.writeInt32LE(fd, i * 8); buf.writeInt16LE(POLLPRI, i * 8 + 4); });
buf.writeInt32LE(workerData.wake, fds.length * 8);
buf.writeInt16LE(POLLIN, fds.length * 8 + 4);
for (;;) {
  const r = poll(buf, n, -1);
  if (r < 0) {
    const errno = koffi.errno();
    if (errno === EINTR) continue;
    parentPort.postMessage({ type: 'failed', errno });
    break;
  }
  if (buf.readInt16LE(fds.length * 8 + 6) & POLLIN) break;
  const time = Date.now();
  for (let i = 0; i < fds.length; i++) {
    const rev = buf.readInt16LE(i * 8 + 6);
    if (rev === 0) continue;
    buf.writeInt16LE(0, i * 8 + 6);
    if (rev & (POLLERR | POLLNVAL)) {
      // A removed cgroup reports POLLERR forever: stop watching it (poll skips negative fds).
      buf.writeInt32LE(-1, i * 8);
      parentPort.postMessage({ type: 'lost', index: i, revents: rev });
    } else if (rev & POLLPRI) {
      parentPort.postMessage({ type: 'trigger', index: i, time });
    }
  }
}
`;

type WorkerMessage =
  | { type: 'trigger'; index: number; time: number }
  | { type: 'lost'; index: number; revents: number }
  | { type: 'failed'; errno: number };

function describe(s: PsiTriggerSpec): string {
  return `"${s.kind} ${s.stallUs} ${s.windowUs}" on ${s.path ?? `/proc/pressure/${s.resource}`}`;
}

/** Windows of triggers set without CAP_SYS_RESOURCE must be a multiple of this (they are served by the 2 s averaging work). */
export const PSI_UNPRIVILEGED_WINDOW_STEP_US = 2_000_000;

/** Whether this process has CAP_SYS_RESOURCE, which the kernel requires for triggers with any other window. */
export function hasSysResource(statusText?: string): boolean {
  let text = statusText;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/self/status', 'utf8');
    } catch {
      return false;
    }
  }
  const eff = /^CapEff:\s*([0-9a-f]+)/m.exec(text)?.[1];
  return eff !== undefined && ((BigInt(`0x${eff}`) >> 24n) & 1n) === 1n; // CAP_SYS_RESOURCE = 24
}

/**
 * Checks a spec against the kernel's rules, so a bad one is refused with a fix rather than an EINVAL. `privileged`
 * is whether we hold CAP_SYS_RESOURCE; by default it is read from /proc/self/status.
 */
export function validateTrigger(s: PsiTriggerSpec, privileged = hasSysResource()): void {
  const fail = (why: string, fix: string): never => {
    throw new TunerError('CONFIG_INVALID', `set PSI trigger ${describe(s)}: ${why} — fix: ${fix}`);
  };
  if (!['cpu', 'memory', 'io'].includes(s.resource)) fail(`unknown resource ${JSON.stringify(s.resource)}`, 'use cpu, memory or io');
  if (s.kind !== 'some' && s.kind !== 'full') fail(`unknown kind ${JSON.stringify(s.kind)}`, 'use some or full');
  if (!Number.isInteger(s.windowUs) || s.windowUs < PSI_WINDOW_MIN_US || s.windowUs > PSI_WINDOW_MAX_US) {
    fail(`window ${s.windowUs} µs is outside the kernel's range`, 'use a window from 500ms to 10s');
  }
  if (!privileged && s.windowUs % PSI_UNPRIVILEGED_WINDOW_STEP_US !== 0) {
    fail(
      `without CAP_SYS_RESOURCE the kernel accepts only windows that are a multiple of 2 s (and checks them only every 2 s)`,
      'use a window of 2s, 4s, 6s, 8s or 10s, or run the agent with CAP_SYS_RESOURCE',
    );
  }
  if (!Number.isInteger(s.stallUs) || s.stallUs <= 0 || s.stallUs > s.windowUs) {
    fail(`stall ${s.stallUs} µs must be more than 0 and at most the window`, 'use a stall threshold shorter than the window, e.g. 10% of it');
  }
}

function arm(s: PsiTriggerSpec, path: string): number {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = errnoCode(e);
    throw new TunerError(
      code === 'EACCES' || code === 'EPERM' ? 'PERMISSION' : 'CGROUP_NOT_FOUND',
      `open ${path} for a PSI trigger: ${code ?? String(e)}${code === 'ENOENT' ? ' — PSI is off (boot with psi=1) or the cgroup is gone' : ''}`,
      { cause: e },
    );
  }
  try {
    // The kernel overwrites the last byte written with NUL; writing the terminator ourselves keeps every digit.
    fs.writeSync(fd, `${s.kind} ${s.stallUs} ${s.windowUs}\0`);
  } catch (e) {
    fs.closeSync(fd);
    const code = errnoCode(e);
    const why =
      code === 'EOPNOTSUPP'
        ? 'PSI is off on this kernel — fix: boot with psi=1'
        : code === 'EPERM' || code === 'EACCES'
          ? 'permission denied — fix: run as root'
          : code === 'EINVAL'
            ? 'the kernel rejected it (EINVAL) — fix: check the kind, the stall and the window'
            : (code ?? String(e));
    throw new TunerError(code === 'EPERM' || code === 'EACCES' ? 'PERMISSION' : 'CONFIG_INVALID', `set PSI trigger ${describe(s)}: ${why}`, {
      cause: e,
    });
  }
  return fd;
}

export class PsiTriggers extends EventEmitter<PsiTriggerEvents> {
  readonly specs: readonly Required<PsiTriggerSpec>[];
  private readonly fds: number[];
  private readonly wake: number;
  private readonly worker: Worker;
  private closing?: Promise<void>;
  private exited = false;

  private constructor(specs: Required<PsiTriggerSpec>[], fds: number[], wake: number) {
    super();
    this.specs = specs;
    this.fds = fds;
    this.wake = wake;
    const koffiPath = createRequire(import.meta.url).resolve('koffi');
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { koffiPath, fds, wake } });
    // A forgotten close() must not keep the process alive; the kernel drops the triggers when the fds close at exit.
    this.worker.unref();
    this.worker.on('message', (m: WorkerMessage) => this.onMessage(m));
    this.worker.on('error', (e) => {
      for (const [index, s] of this.specs.entries()) this.emit('lost', { ...s, index, reason: `the poll worker failed: ${e.message}` });
    });
    this.worker.once('exit', () => {
      this.exited = true;
      this.release();
    });
  }

  /** Arms every trigger (all or none) and starts waiting for them. */
  static start(specs: readonly PsiTriggerSpec[]): PsiTriggers {
    const full = specs.map((s) => ({ ...s, path: s.path ?? `/proc/pressure/${s.resource}` }));
    const privileged = hasSysResource();
    for (const s of full) validateTrigger(s, privileged);
    const fds: number[] = [];
    try {
      for (const s of full) fds.push(arm(s, s.path));
      return new PsiTriggers(full, fds, eventfd('PSI triggers'));
    } catch (e) {
      for (const fd of fds) fs.closeSync(fd);
      throw e;
    }
  }

  private onMessage(m: WorkerMessage): void {
    if (m.type === 'trigger') {
      const s = this.specs[m.index];
      let pressure: Pressure | undefined;
      try {
        pressure = parsePressure(fs.readFileSync(s.path, 'utf8'), s.path);
      } catch {
        // the event stands without the reading
      }
      this.emit('trigger', { ...s, index: m.index, time: m.time, ...(pressure ? { pressure } : {}) });
    } else if (m.type === 'lost') {
      this.emit('lost', { ...this.specs[m.index], index: m.index, reason: `the pressure file reported an error (revents 0x${m.revents.toString(16)}): its cgroup was removed` });
    } else {
      for (const [index, s] of this.specs.entries()) this.emit('lost', { ...s, index, reason: `poll failed with errno ${m.errno}` });
    }
  }

  private release(): void {
    closeFds([...this.fds.splice(0), this.wake]);
  }

  /** Wakes the worker out of poll(), waits for it to end, then closes every fd (which disarms the triggers). Idempotent. */
  close(): Promise<void> {
    this.closing ??= stopPollingWorker(this.worker, this.wake, this.exited);
    return this.closing;
  }
}
