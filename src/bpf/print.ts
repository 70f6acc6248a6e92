/**
 * Routes libbpf's own log (its print callback) to our logger, and captures it while a load is in progress so a
 * verifier rejection can be reported with the verifier's log attached.
 */
import { bpf, c, koffi, PrintFn } from './libbpf.js';
import type { Logger } from '../core/log.js';

const LEVELS = ['warn', 'info', 'debug'] as const; // enum libbpf_print_level: WARN, INFO, DEBUG
const buf = Buffer.alloc(8192);
let sink: Logger | undefined;
let capture: string[] | undefined;
let installed = false;

function onPrint(level: number, fmt: string, args: unknown): number {
  const n = c.vsnprintf(buf, buf.length, fmt, args) as number;
  const text = buf.toString('utf8', 0, Math.max(0, Math.min(n, buf.length - 1)));
  capture?.push(text);
  const lvl = LEVELS[level] ?? 'debug';
  // libbpf's WARN lines during probing are expected failures; they are surfaced through the error, not the log.
  if (sink && (capture === undefined || lvl !== 'warn')) sink[lvl === 'warn' ? 'warn' : 'debug']({ libbpf: text.trimEnd() }, 'libbpf');
  return 0;
}

const callback = koffi.register(onPrint, koffi.pointer(PrintFn));

export function routeLibbpfLog(log: Logger): void {
  sink = log;
  if (!installed) {
    bpf.libbpf_set_print(callback);
    installed = true;
  }
}

/** Runs fn with libbpf's output captured; returns fn's result and the text libbpf printed meanwhile. */
export function withCapturedLog<T>(fn: () => T): { result: T; log: string } {
  if (!installed) {
    bpf.libbpf_set_print(callback);
    installed = true;
  }
  const prev = capture;
  const lines: string[] = [];
  capture = lines;
  try {
    return { result: fn(), log: lines.join('') };
  } finally {
    capture = prev;
    prev?.push(...lines);
  }
}
