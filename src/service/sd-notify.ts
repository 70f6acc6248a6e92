/**
 * systemd readiness, status and watchdog notifications (sd_notify(3)) without a native addon build: libsystemd's
 * own sd_notify is called through koffi, so abstract sockets, credentials and any future protocol detail are
 * libsystemd's business. Outside systemd (NOTIFY_SOCKET unset) or on a host without libsystemd.so.0 every call is
 * a no-op, so the agent calls these unconditionally.
 */
import koffi from 'koffi';

/** The soname, not the dev symlink: only the runtime package (libsystemd0) is on a typical host. */
export const LIBSYSTEMD = 'libsystemd.so.0';

export interface NotifierOptions {
  /** Library to load; tests point this at a missing file to exercise the fallback. */
  library?: string;
}

export interface WatchdogOptions {
  /**
   * Asked before every ping; a ping is skipped while it returns false, so systemd restarts an agent that is alive
   * but stuck (for example a tick loop that stopped advancing), not only one whose event loop is blocked.
   */
  healthy?: () => boolean;
}

/** Why notifications are or are not being sent; for `ebpf-tuner check` and the start-up log line. */
export interface NotifyInfo {
  socket: string | undefined;
  library: 'loaded' | 'missing';
  /** Set when the library could not be loaded. */
  error?: string;
  /** Watchdog interval systemd asked for, µs; undefined when no watchdog applies to this process. */
  watchdogUsec: number | undefined;
}

export interface Notifier {
  /** Sends a raw state string; returns true only if libsystemd reports it delivered. */
  notify(state: string): boolean;
  /** READY=1: start-up is complete (programs attached, leftover journal restored). */
  ready(status?: string): boolean;
  /** STOPPING=1: shutdown (and restore) has begun, so systemd stops expecting watchdog pings to mean health. */
  stopping(status?: string): boolean;
  status(text: string): boolean;
  /**
   * Pings WATCHDOG=1 at half the interval systemd set in WATCHDOG_USEC. The timer is unref'd so it never keeps the
   * process alive on its own. Returns a stop function (idempotent); a no-op when no watchdog applies.
   */
  startWatchdog(opts?: WatchdogOptions): () => void;
  info(): NotifyInfo;
}

type SdNotifyFn = (unsetEnvironment: number, state: string) => number;

/**
 * A STATUS= value is one line of the datagram; a newline in it would start another assignment (a status text
 * containing "\nREADY=1" must not be able to declare readiness).
 */
function statusLine(text: string): string {
  return `STATUS=${text.replace(/[\r\n]+/g, ' ')}`;
}

/** The interval systemd asked this very process to keep, per sd_watchdog_enabled(3); undefined if none. */
function watchdogUsecFrom(env: NodeJS.ProcessEnv): number | undefined {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || !/^\d+$/.test(usec)) return undefined;
  const value = Number(usec);
  if (!Number.isSafeInteger(value) || value <= 0) return undefined;
  // WATCHDOG_PID names the process the watchdog is meant for; a child that inherited the variable must not ping.
  const pid = env.WATCHDOG_PID;
  if (pid !== undefined && pid !== String(process.pid)) return undefined;
  return value;
}

/**
 * NOTIFY_SOCKET and WATCHDOG_* are read from process.env on every call, the same environment libsystemd reads, so a
 * variable set or removed at run time is seen by both alike.
 */
export function createNotifier(opts: NotifierOptions = {}): Notifier {
  const env = process.env;
  const library = opts.library ?? LIBSYSTEMD;
  let fn: SdNotifyFn | null | undefined;
  let loadError: string | undefined;

  // Loaded on first use so a process that never runs under systemd never maps the library.
  function sdNotify(): SdNotifyFn | null {
    if (fn !== undefined) return fn;
    try {
      const lib = koffi.load(library);
      fn = lib.func('int sd_notify(int unset_environment, const char *state)') as SdNotifyFn;
    } catch (e) {
      // koffi's message does not say which library it tried.
      loadError = `load ${library}: ${e instanceof Error ? e.message : String(e)}`;
      fn = null;
    }
    return fn;
  }

  function notify(state: string): boolean {
    // libsystemd reads NOTIFY_SOCKET from the C environment; this check only avoids loading it for nothing.
    if (!env.NOTIFY_SOCKET) return false;
    const send = sdNotify();
    if (send === null) return false;
    // unset_environment=0: the watchdog pings and STOPPING=1 later need NOTIFY_SOCKET to still be there.
    return send(0, state) > 0;
  }

  function withStatus(assignment: string, status?: string): string {
    return status === undefined ? assignment : `${assignment}\n${statusLine(status)}`;
  }

  return {
    notify,
    ready: (status) => notify(withStatus('READY=1', status)),
    stopping: (status) => notify(withStatus('STOPPING=1', status)),
    status: (text) => notify(statusLine(text)),
    startWatchdog(wopts = {}) {
      const usec = watchdogUsecFrom(env);
      if (usec === undefined || !env.NOTIFY_SOCKET) return () => {};
      const periodMs = Math.max(1, Math.floor(usec / 2000));
      const ping = (): void => {
        let ok = true;
        try {
          ok = wopts.healthy === undefined || wopts.healthy();
        } catch {
          // A health check that throws is a failed health check, not a reason to crash from a timer callback.
          ok = false;
        }
        if (ok) notify('WATCHDOG=1');
      };
      // One ping now: the first interval starts when systemd forks us, not when this function runs.
      ping();
      let timer: NodeJS.Timeout | undefined = setInterval(ping, periodMs);
      timer.unref();
      return () => {
        if (timer !== undefined) clearInterval(timer);
        timer = undefined;
      };
    },
    info() {
      const socket = env.NOTIFY_SOCKET || undefined;
      const loaded = sdNotify() !== null;
      const info: NotifyInfo = { socket, library: loaded ? 'loaded' : 'missing', watchdogUsec: watchdogUsecFrom(env) };
      if (!loaded && loadError !== undefined) info.error = loadError;
      return info;
    },
  };
}

let defaultNotifier: Notifier | undefined;
function notifier(): Notifier {
  defaultNotifier ??= createNotifier();
  return defaultNotifier;
}

export function notifyReady(status?: string): boolean {
  return notifier().ready(status);
}

export function notifyStopping(status?: string): boolean {
  return notifier().stopping(status);
}

export function notifyStatus(text: string): boolean {
  return notifier().status(text);
}

export function startWatchdog(opts?: WatchdogOptions): () => void {
  return notifier().startWatchdog(opts);
}

export function notifyInfo(): NotifyInfo {
  return notifier().info();
}
