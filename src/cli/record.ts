/**
 * `ebpf-tuner record` and `ebpf-tuner replay`. Record runs the signals (and the strategies, in dry-run: nothing is
 * written) and stores every tick's snapshot; replay runs the strategies over a recording and prints the decisions
 * they would make — deterministic, for tuning rules offline and pinning behaviour in tests.
 */
import { hostname, release } from 'node:os';
import { channels } from '../core/events.js';
import { createLogger } from '../core/log.js';
import type { TickSnapshot } from '../core/types.js';
import { loadConfig } from '../config/load.js';
import { assertSafeConfigFile } from '../security/perms.js';
import { asUsage } from './usage.js';
import { Agent } from '../agent/agent.js';
import { readRecording, RecordingWriter, RECORDING_VERSION } from '../replay/recording.js';
import { formatReplay, replay } from '../replay/replay.js';

export async function recordCommand(opts: { out: string; config?: string; duration?: number; logLevel?: string }): Promise<void> {
  const log = createLogger({ level: opts.logLevel ?? 'warn', fd: 2 });
  if (opts.config) asUsage(() => assertSafeConfigFile(opts.config!));
  const config = asUsage(() => loadConfig(opts.config));
  const agent = new Agent({ config, log, stateDir: '/nonexistent', dryRun: true, dryRunAudit: false });
  await agent.start();
  const writer = new RecordingWriter(opts.out, {
    format: 'ebpf-tuner-recording',
    version: RECORDING_VERSION,
    startedAt: Date.now(),
    host: hostname(),
    kernel: release(),
    config,
    targets: agent.targetList.map((t) => ({ name: t.name, role: t.role })),
    knobs: agent.knobValues(),
  });
  const onTick = (s: unknown) => {
    writer.add(s as TickSnapshot);
    if (process.stderr.isTTY) process.stderr.write(`\rrecording ${opts.out}: ${writer.ticks} ticks`);
  };
  channels.tick.subscribe(onTick);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (opts.duration !== undefined) setTimeout(resolve, opts.duration * 1000);
  });
  channels.tick.unsubscribe(onTick);
  await agent.stop();
  await writer.close();
  if (process.stderr.isTTY) process.stderr.write('\n');
  process.stdout.write(`recorded ${writer.ticks} ticks to ${opts.out}\n`);
  setImmediate(() => process.exit(0));
}

export async function replayCommand(file: string, opts: { config?: string; json?: boolean }): Promise<void> {
  const { header, ticks } = await readRecording(file);
  // The recording's own config unless another is given: tuning rules offline means replaying with a new one.
  if (opts.config) asUsage(() => assertSafeConfigFile(opts.config!));
  const config = opts.config ? asUsage(() => loadConfig(opts.config)) : header.config;
  const decisions = replay(header, ticks, config);
  process.stdout.write((opts.json ? decisions.map((d) => JSON.stringify(d)).join('\n') : formatReplay(decisions)) + '\n');
}
