/**
 * Structured logging: JSON lines by default (one object per line, for journald and log shippers), pretty when
 * stdout is a terminal. Every module takes a child logger so each line says where it came from.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Force pretty or JSON output; by default pretty only on a TTY. */
  pretty?: boolean;
  /** Write to this fd instead of stdout (2 for stderr, so machine-readable stdout stays clean). */
  fd?: number;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const level = opts.level ?? process.env.EBPF_TUNER_LOG_LEVEL ?? 'info';
  const fd = opts.fd ?? 1;
  const pretty = opts.pretty ?? (fd === 1 ? process.stdout.isTTY : process.stderr.isTTY) === true;
  if (pretty) {
    return pino({
      level,
      base: undefined,
      transport: { target: 'pino-pretty', options: { destination: fd, colorize: true, ignore: 'pid,hostname' } },
    });
  }
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd, sync: true }));
}

/** A logger that drops everything; for tests and library use without a sink. */
export const silentLogger: Logger = pino({ level: 'silent' });
