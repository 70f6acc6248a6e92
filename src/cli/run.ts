/**
 * `ebpf-tuner run`: load and validate the config, start the agent, and stop it cleanly — restoring every original —
 * on SIGINT/SIGTERM, at --duration, or on a fatal error.
 */
import { createLogger } from '../core/log.js';
import { loadConfig } from '../config/load.js';
import { Agent } from '../agent/agent.js';

export interface RunOptions {
  config?: string;
  dryRun?: boolean;
  duration?: number;
  stateDir: string;
  listen?: string;
  tokenFile?: string;
  logLevel?: string;
}

export async function runCommand(opts: RunOptions): Promise<void> {
  const log = createLogger({ level: opts.logLevel });
  const config = loadConfig(opts.config);
  const agent = new Agent({ config, log, stateDir: opts.stateDir, dryRun: opts.dryRun });

  let exitCode = 0;
  const shutdown = async (why: string, code = 0): Promise<void> => {
    exitCode = Math.max(exitCode, code);
    log.info({ why }, 'stopping');
    const report = await agent.stop();
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

  await agent.start();
  if (opts.duration !== undefined) setTimeout(() => void shutdown(`--duration ${opts.duration}s elapsed`), opts.duration * 1000);
}
