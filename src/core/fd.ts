/**
 * Two file-descriptor primitives Node does not offer, through koffi: an eventfd (a worker blocked in poll(2) is woken
 * through it for shutdown) and a close-on-exec duplicate of a descriptor (a worker polls its own copy, so the owner
 * may close the original at any time without the number being reused under the worker).
 */
import fs from 'node:fs';
import type { Worker } from 'node:worker_threads';
import koffi from 'koffi';
import { TunerError } from './errors.js';

const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
const F_DUPFD_CLOEXEC = 1030;

let libc: { eventfd: (initval: number, flags: number) => number; fcntl: (fd: number, cmd: number, arg: number) => number } | undefined;
function c() {
  if (libc === undefined) {
    const lib = koffi.load('libc.so.6');
    libc = {
      eventfd: lib.func('int eventfd(unsigned int initval, int flags)') as (a: number, b: number) => number,
      fcntl: lib.func('int fcntl(int fd, int cmd, int arg)') as (fd: number, cmd: number, arg: number) => number,
    };
  }
  return libc;
}

/** A non-blocking, close-on-exec eventfd; `what` names its use in the error. */
export function eventfd(what: string): number {
  const fd = c().eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw new TunerError('INTERNAL', `create an eventfd for ${what}: errno ${koffi.errno()}`);
  return fd;
}

/** Adds 1 to an eventfd, which wakes whoever polls it for POLLIN. False when it could not be written (closed). */
export function wakeEventfd(fd: number): boolean {
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(1n);
  try {
    return fs.writeSync(fd, one) === 8;
  } catch {
    return false;
  }
}

/** A close-on-exec duplicate of `fd`; `what` names it in the error. */
export function dupFd(fd: number, what: string): number {
  const out = c().fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (out < 0) throw new TunerError('INTERNAL', `duplicate the descriptor of ${what}: errno ${koffi.errno()}`);
  return out;
}

/** Closes every descriptor given; one already closed is skipped. */
export function closeFds(fds: Iterable<number>): void {
  for (const fd of fds) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
  }
}

/**
 * Ends a worker that blocks in poll(2) on `wake` among its descriptors: wakes it through the eventfd (or terminates
 * it when that cannot be written) and resolves once it has exited; at once when it already has.
 */
export function stopPollingWorker(worker: Worker, wake: number, exited: boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    if (exited) {
      resolve();
      return;
    }
    worker.once('exit', () => resolve());
    if (!wakeEventfd(wake)) void worker.terminate();
  });
}
