/**
 * `ebpf-tuner run`: check the config and state directory are safe, load and validate the config, start the agent
 * (which restores whatever a crashed run left behind before attaching), serve HTTP when asked, tell systemd when
 * ready, and stop cleanly — restoring every original — on SIGINT/SIGTERM, at --duration, or on a fatal error.
 */
import { readFileSync, statSync, unwatchFile, watchFile } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createLogger } from '../core/log.js';
import { detectLayout } from '../cgroup/layout.js';
import { resolveTargets } from '../agent/resolve.js';
import { resolveDevices } from '../block/devices.js';
import { errnoCode, TunerError } from '../core/errors.js';
import { asUsage } from './usage.js';
import { loadConfig } from '../config/load.js';
import { assertSafeConfigFile, assertSafePath, assertSafeStateDir, ensureSafeStateDir } from '../security/perms.js';
import { MIN_TOKEN_LENGTH, tokenSource, type TokenSource } from '../security/token.js';
import { isLoopbackHost, parseListen } from '../http/address.js';
import { notifyReady, notifyStatus, notifyStopping, startWatchdog } from '../service/sd-notify.js';
import { enableBpfStats } from '../bpf/stats.js';
import { Agent } from '../agent/agent.js';
import { capMallocArenas, trimMalloc } from '../core/malloc.js';
import { agentControl } from '../agent/control.js';

export interface RunOptions {
  config?: string;
  dryRun?: boolean;
  duration?: number;
  stateDir: string;
  listen?: string;
  tokenFile?: string;
  logLevel?: string;
  bpfStats?: boolean;
  publicMetrics?: boolean;
}

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

/** Loading BPF programs needs CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON; without them libbpf only says EPERM. */
function assertCanLoadBpf(): void {
  let caps = 0n;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
    caps = m ? BigInt('0x' + m[1]) : 0n;
  } catch {
    return; // no procfs: let the load itself report
  }
  const has = (bit: bigint) => (caps & (1n << bit)) !== 0n;
  if (has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) return;
  throw new TunerError(
    'PERMISSION',
    `load BPF programs: uid ${process.getuid?.() ?? '?'} lacks CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) — fix: run it as root ` +
      '(`sudo ebpf-tuner run ...`), or see `ebpf-tuner check` for the capabilities a service needs',
  );
}

/**
 * The state directory as given, before anything is created: an existing one must be a safe directory; a missing
 * one must be creatable, i.e. its nearest existing ancestor a safe directory.
 */
function checkStateDirOption(dir: string): void {
  const abs = resolve(dir);
  let cur = abs;
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(cur).isDirectory();
    } catch (e) {
      const code = errnoCode(e);
      if ((code === 'ENOENT' || code === 'ENOTDIR') && dirname(cur) !== cur) {
        cur = dirname(cur);
        continue;
      }
      throw new TunerError('CLI_USAGE', `check state directory ${dir}: cannot stat ${cur} (${code ?? String(e)}) — fix: pass a directory root can use with --state-dir`);
    }
    if (!isDir) {
      throw new TunerError('CLI_USAGE', `check state directory ${dir}: ${cur} is not a directory — fix: pass a directory path with --state-dir`);
    }
    if (cur === abs) assertSafeStateDir(abs);
    else {
      // The directory will be created here: like every directory above the state directory, this one may be
      // writable by others only if it is sticky (like /tmp), and then only above a directory that is ours.
      const st = statSync(cur);
      if ((st.mode & 0o1000) !== 0 && dirname(cur) !== cur) {
        assertSafePath(dirname(cur), `state directory ${dir}: ancestor`);
        if (st.uid !== 0 && st.uid !== process.getuid?.()) assertSafePath(cur, `state directory ${dir}: ancestor`);
      } else assertSafePath(cur, `state directory ${dir}: ancestor`);
    }
    return;
  }
}

export async function runCommand(opts: RunOptions): Promise<void> {
  // Everything that can be wrong with the input is found before anything is created, attached or written: options
  // and the files they name first (exit 2), then whether this process can load BPF at all, then the HTTP address is
  // bound — so that a port in use is found before the state directory or a program exists.
  if (opts.tokenFile && !opts.listen) {
    throw new TunerError('CLI_USAGE', 'use --token-file: it only applies with --listen HOST:PORT — fix: add --listen or drop --token-file');
  }
  if (opts.publicMetrics && !opts.listen) {
    throw new TunerError('CLI_USAGE', 'use --public-metrics: it only applies with --listen HOST:PORT — fix: add --listen or drop --public-metrics');
  }
  const listen = opts.listen !== undefined ? asUsage(() => parseListen(opts.listen!)) : undefined;
  if (opts.config) asUsage(() => assertSafeConfigFile(opts.config!));
  const config = asUsage(() => loadConfig(opts.config));
  // The devices are about this host, like the targets, but a wrong one is a config error: exit 2 before BPF or state.
  asUsage(() => resolveDevices(config.devices, {}, config.source));
  const token: TokenSource | undefined = opts.tokenFile ? asUsage(() => tokenSource(opts.tokenFile!)) : undefined;
  if (listen !== undefined) {
    const t = token?.current();
    if (t !== undefined && t.length < MIN_TOKEN_LENGTH) {
      throw new TunerError('CONFIG_INVALID', `check http token: fewer than ${MIN_TOKEN_LENGTH} characters — fix: write a longer one to ${opts.tokenFile}`);
    }
    if (!isLoopbackHost(listen.host) && t === undefined) {
      throw new TunerError(
        'CLI_USAGE',
        `bind http server to ${opts.listen}: refusing to serve beyond loopback without a token — fix: pass --token-file FILE, or listen on 127.0.0.1`,
      );
    }
  }
  assertCanLoadBpf();
  // A dry run writes its audit there too (never the journal), so the directory must be as safe.
  asUsage(() => checkStateDirOption(opts.stateDir));
  const log = createLogger({ level: opts.logLevel });
  capMallocArenas();
  // The state directory is created (0700, with safe parents) only once the targets have resolved: a bad config
  // leaves no trace on the host.
  const makeAgent = (c: typeof config) =>
    new Agent({ config: c, log, stateDir: opts.stateDir, dryRun: opts.dryRun, prepareStateDir: ensureSafeStateDir });
  let agent = makeAgent(config);
  const releaseStats = opts.bpfStats ? enableBpfStats() : undefined;
  let http: { url: string; close(): Promise<void> } | undefined;
  let stopWatchdog: (() => void) | undefined;

  let exitCode = 0;
  let stopping = false;
  const shutdown = async (why: string, code = 0): Promise<void> => {
    exitCode = Math.max(exitCode, code);
    if (stopping) return;
    stopping = true;
    log.info({ why }, 'stopping');
    notifyStopping(why);
    stopWatchdog?.();
    if (opts.config) unwatchFile(opts.config);
    await reloading;
    const report = await agent.stop();
    await http?.close();
    releaseStats?.();
    process.exitCode = exitCode || (report && report.failed.length > 0 ? 1 : 0);
    // Nothing else keeps the loop alive once the agent has stopped; exit explicitly in case a handle lingers.
    setImmediate(() => process.exit(process.exitCode));
  };
  // A repeated signal is the same request: it never cuts short the restore the first one started.
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    void shutdown('fatal error', 1);
  });

  /**
   * Config reload (SIGHUP, or the file changing — a ConfigMap update swaps a symlink, so the file is polled by stat):
   * the new config is validated in full and its targets resolved before anything changes; a bad one is logged and
   * the running config stays. A good one replaces the agent: the old one restores every original, the new one starts
   * fresh — the HTTP server, metrics and watchdog carry on.
   */
  // Reloads wait for the first start: a SIGHUP during it (`systemctl reload` right after start) is queued, not fatal.
  let startDone!: () => void;
  let reloading: Promise<void> = new Promise((resolve) => (startDone = resolve));
  const reload = (why: string): void => {
    reloading = reloading.then(async () => {
      if (stopping || !opts.config) return;
      let next: typeof config;
      try {
        assertSafeConfigFile(opts.config);
        next = loadConfig(opts.config);
        resolveTargets(next, detectLayout());
        resolveDevices(next.devices, {}, next.source);
      } catch (e) {
        log.error({ why, err: e instanceof Error ? e.message : String(e) }, 'config reload refused; the running config stays');
        return;
      }
      if (JSON.stringify({ ...next, source: '' }) === JSON.stringify({ ...agent.config, source: '' })) {
        log.info({ why }, 'config unchanged');
        return;
      }
      const old = agent;
      await old.stop();
      agent = makeAgent(next);
      try {
        await agent.start();
        log.info({ why, targets: agent.targetList.map((t) => t.name) }, 'config reloaded');
        // The old agent's BPF objects, maps and statements were freed in a burst: give that memory back.
        trimMalloc();
      } catch (e) {
        log.error({ why, err: e instanceof Error ? e.message : String(e) }, 'starting with the reloaded config failed; back to the previous one');
        agent = makeAgent(old.config);
        await agent.start();
      }
    });
  };

  // Before anything starts: SIGHUP's default action ends the process without a word.
  process.on('SIGHUP', () => reload('SIGHUP'));
  try {
    if (opts.listen) {
      // Bound before the agent starts: /readyz answers 503 until it is running.
      const { startHttpServer } = await import('../http/server.js');
      http = await startHttpServer({
        listen: opts.listen,
        ...(token !== undefined ? { token } : {}),
        publicMetrics: opts.publicMetrics === true,
        control: agentControl(() => agent),
        log,
      });
      log.info({ url: http.url }, 'http listening');
    }
    await agent.start();
  } catch (e) {
    stopping = true;
    startDone();
    await agent.stop();
    await http?.close();
    releaseStats?.();
    throw e;
  }
  startDone();
  if (opts.config) {
    const file = opts.config;
    watchFile(file, { interval: 2000 }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.ino !== prev.ino) reload(`${file} changed`);
    });
  }
  notifyReady(`watching ${agent.targetList.length} target(s)`);
  stopWatchdog = startWatchdog({ healthy: () => agent.ready });
  const status = setInterval(() => {
    notifyStatus(`watching ${agent.targetList.length} target(s)${agent.paused ? ', paused' : ''}`);
    // Targets come and go (their maps, fds and records with them); what that freed goes back to the kernel.
    trimMalloc();
  }, 30_000);
  status.unref();
  if (opts.duration !== undefined) setTimeout(() => void shutdown(`--duration ${opts.duration}s elapsed`), opts.duration * 1000);
}
