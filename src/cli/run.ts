/**
 * `ebpf-tuner run`: check the config and state directory are safe, load and validate the config, start the agent
 * (which restores whatever a crashed run left behind before attaching), serve HTTP when asked, tell systemd when
 * ready, and stop cleanly — restoring every original — on SIGINT/SIGTERM, at --duration, or on a fatal error.
 */
import { unwatchFile, watchFile } from 'node:fs';
import { createLogger } from '../core/log.js';
import { detectLayout } from '../cgroup/layout.js';
import { resolveTargets } from '../agent/resolve.js';
import { TunerError } from '../core/errors.js';
import { loadConfig } from '../config/load.js';
import { assertSafeConfigFile, ensureSafeStateDir } from '../security/perms.js';
import { loadToken } from '../security/token.js';
import { notifyReady, notifyStatus, notifyStopping, startWatchdog } from '../service/sd-notify.js';
import { enableBpfStats } from '../bpf/stats.js';
import { Agent } from '../agent/agent.js';
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
}

export async function runCommand(opts: RunOptions): Promise<void> {
  const log = createLogger({ level: opts.logLevel });
  // Everything that can be wrong with the input is found before anything is created, attached or written.
  if (opts.config) assertSafeConfigFile(opts.config);
  const config = loadConfig(opts.config);
  const token = opts.tokenFile ? loadToken(opts.tokenFile) : undefined;
  if (opts.tokenFile && !opts.listen) {
    throw new TunerError('CLI_USAGE', 'use --token-file: it only applies with --listen HOST:PORT — add --listen or drop --token-file');
  }
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
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
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
  let reloading: Promise<void> = Promise.resolve();
  const reload = (why: string): void => {
    reloading = reloading.then(async () => {
      if (stopping || !opts.config) return;
      let next: typeof config;
      try {
        assertSafeConfigFile(opts.config);
        next = loadConfig(opts.config);
        resolveTargets(next, detectLayout());
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
      } catch (e) {
        log.error({ why, err: e instanceof Error ? e.message : String(e) }, 'starting with the reloaded config failed; back to the previous one');
        agent = makeAgent(old.config);
        await agent.start();
      }
    });
  };

  try {
    await agent.start();
    if (opts.listen) {
      const { startHttpServer } = await import('../http/server.js');
      http = await startHttpServer({ listen: opts.listen, token, control: agentControl(() => agent), log });
      log.info({ url: http.url }, 'http listening');
    }
  } catch (e) {
    await agent.stop();
    releaseStats?.();
    throw e;
  }
  process.on('SIGHUP', () => reload('SIGHUP'));
  if (opts.config) {
    const file = opts.config;
    watchFile(file, { interval: 2000 }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.ino !== prev.ino) reload(`${file} changed`);
    });
  }
  notifyReady(`watching ${agent.targetList.length} target(s)`);
  stopWatchdog = startWatchdog({ healthy: () => agent.ready });
  const status = setInterval(() => notifyStatus(`watching ${agent.targetList.length} target(s)${agent.paused ? ', paused' : ''}`), 30_000);
  status.unref();
  if (opts.duration !== undefined) setTimeout(() => void shutdown(`--duration ${opts.duration}s elapsed`), opts.duration * 1000);
}
