/**
 * `ebpf-tuner top`: a live terminal view of every target's signals, refreshed in place each tick, fitted to the
 * terminal's width (the least important columns dropped first), values that are bad against the policies' thresholds
 * highlighted. `top --once --json` prints one snapshot (after one window) as JSON — the stable
 * machine-readable view; its fields are documented in docs/signals.md. Runs the signals only: it acts on nothing.
 */
import { channels } from '../core/events.js';
import { createLogger } from '../core/log.js';
import type { TickSnapshot } from '../core/types.js';
import { renderTop, terminalWidth, type Thresholds } from './top-view.js';
import { loadConfig } from '../config/load.js';
import { assertSafeConfigFile } from '../security/perms.js';
import { asUsage } from './usage.js';
import { Agent } from '../agent/agent.js';

export interface TopOptions {
  config?: string;
  once?: boolean;
  json?: boolean;
  /** Columns to fit; default the terminal's, 80 when not a terminal. */
  width?: number;
  /** auto (default): colour when writing to a terminal and NO_COLOR is unset. */
  color?: 'auto' | 'always' | 'never';
}

export async function topCommand(opts: TopOptions): Promise<void> {
  if (opts.config) asUsage(() => assertSafeConfigFile(opts.config!));
  const config = asUsage(() => loadConfig(opts.config));
  const thresholds: Thresholds = {
    runqP99Us: config.policy.noisyNeighbor.p99ThresholdUs,
    psiSomeAvg10: config.policy.pressureBackoff.psiSomeAvg10Threshold,
  };
  const agent = new Agent({ config, log: createLogger({ level: 'warn', fd: 2 }), stateDir: '/nonexistent', dryRun: true, dryRunAudit: false });
  await agent.start();
  const tty = process.stdout.isTTY === true;
  const color = opts.color === 'always' || (opts.color !== 'never' && tty && !process.env.NO_COLOR);
  // Read the width at every tick: a resized terminal gets a table that fits it.
  const render = (s: TickSnapshot) => renderTop(s, { color, width: terminalWidth(opts.width), thresholds });
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => (done = r));
  const onTick = (m: unknown) => {
    const s = m as TickSnapshot;
    if (opts.once) {
      process.stdout.write((opts.json ? JSON.stringify(s) : render(s)) + '\n');
      done();
      return;
    }
    if (opts.json) process.stdout.write(JSON.stringify(s) + '\n');
    else process.stdout.write((tty ? '\x1b[H\x1b[2J' : '') + render(s) + '\n');
  };
  channels.tick.subscribe(onTick);
  process.once('SIGINT', done);
  process.once('SIGTERM', done);
  await finished;
  channels.tick.unsubscribe(onTick);
  await agent.stop();
  setImmediate(() => process.exit(0));
}
