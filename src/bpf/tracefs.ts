/**
 * Classic tracepoints are attached by their numeric id, which only tracefs tells (events/<category>/<name>/id);
 * libbpf reads it from /sys/kernel/tracing at attach time and never again. systemd mounts tracefs on every boot, but a
 * fresh host without it, or a container, has none. So the attach runs with tracefs mounted: when it is missing and we
 * may mount (CAP_SYS_ADMIN), it is mounted for the attach and unmounted right after — the host is left as it was
 * found, and the attached programs do not need the mount any more.
 */
import { existsSync } from 'node:fs';
import { TunerError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { koffi, strerror } from './libbpf.js';

export const TRACEFS = '/sys/kernel/tracing';
const MNT_DETACH = 2;

const libc = koffi.load('libc.so.6');
const sys = {
  mount: libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)'),
  umount2: libc.func('int umount2(const char *target, int flags)'),
};

let depth = 0;
let mountedByUs = false;

/** True when tracefs (or the debugfs copy libbpf also looks at) is mounted. */
export function tracefsMounted(): boolean {
  return existsSync(`${TRACEFS}/events`) || existsSync('/sys/kernel/debug/tracing/events');
}

/** Mounts tracefs at its usual place for as long as the returned release function is not called (reference-counted). */
export function holdTracefs(log?: Logger): () => void {
  if (depth === 0 && !tracefsMounted()) {
    if ((sys.mount('tracefs', TRACEFS, 'tracefs', 0, null) as number) !== 0) {
      throw new TunerError(
        'BPF_NOT_SUPPORTED',
        `mount tracefs on ${TRACEFS}: ${strerror(koffi.errno())} — classic tracepoints are found through it — fix: mount it (mount -t tracefs tracefs ${TRACEFS}) or run with CAP_SYS_ADMIN`,
      );
    }
    mountedByUs = true;
    log?.debug({ path: TRACEFS }, 'tracefs mounted for attaching classic tracepoints');
  }
  depth++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--depth > 0 || !mountedByUs) return;
    mountedByUs = false;
    if ((sys.umount2(TRACEFS, MNT_DETACH) as number) !== 0) log?.warn({ path: TRACEFS, err: strerror(koffi.errno()) }, 'could not unmount the tracefs mounted for attaching');
    else log?.debug({ path: TRACEFS }, 'tracefs unmounted');
  };
}

/** Runs `fn` with tracefs mounted (see holdTracefs). */
export function withTracefs<T>(fn: () => T, log?: Logger): T {
  const release = holdTracefs(log);
  try {
    return fn();
  } finally {
    release();
  }
}
