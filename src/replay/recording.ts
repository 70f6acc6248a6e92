/**
 * The recording format: gzip'd JSON lines. Line 1 is a header (format version, the config the signals were collected
 * under, the targets and their knob values when recording began); every further line is one TickSnapshot. Gzip of
 * JSON lines is compact for repetitive per-tick numbers (~10x) and readable with zcat and jq.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { createGunzip, createGzip, type Gzip } from 'node:zlib';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { errnoCode, TunerError } from '../core/errors.js';
import type { Role, TickSnapshot } from '../core/types.js';
import type { Config } from '../config/types.js';

/** 2: each blkio device carries its `major` and `minor` beside `dev` (version 1 had only "major:minor"). */
export const RECORDING_VERSION = 2;

export interface RecordingHeader {
  format: 'ebpf-tuner-recording';
  version: number;
  startedAt: number;
  host: string;
  kernel: string;
  config: Config;
  targets: { name: string; role: Role }[];
  /** Knob values per target and action when recording began, in action units (e.g. {cpu_weight: {weight: 100}}). */
  knobs: Record<string, Record<string, Record<string, number>>>;
}

export class RecordingWriter {
  private readonly gzip: Gzip;
  private readonly file: WriteStream;
  private readonly done: Promise<void>;
  ticks = 0;

  constructor(path: string, header: RecordingHeader) {
    this.gzip = createGzip();
    this.file = createWriteStream(path, { mode: 0o600 });
    this.done = new Promise((resolve, reject) => {
      this.file.once('finish', resolve);
      this.file.once('error', (e) => reject(new TunerError('INTERNAL', `write recording ${path}: ${e.message}`)));
    });
    this.gzip.pipe(this.file);
    this.gzip.write(JSON.stringify(header) + '\n');
  }

  add(s: TickSnapshot): void {
    this.gzip.write(JSON.stringify(s) + '\n');
    this.ticks++;
  }

  async close(): Promise<void> {
    this.gzip.end();
    await this.done;
  }
}

export async function readRecording(path: string): Promise<{ header: RecordingHeader; ticks: TickSnapshot[] }> {
  const lines: string[] = [];
  const fix = 'fix: pass a file written by `ebpf-tuner record`';
  try {
    // pipeline, not pipe: an error of the file stream (ENOENT, EISDIR) must reach this catch, not crash the process.
    const gunzip = createGunzip();
    const done = pipeline(createReadStream(path), gunzip);
    const rl = createInterface({ input: gunzip, crlfDelay: Infinity });
    const read = (async () => {
      for await (const line of rl) if (line.trim()) lines.push(line);
    })();
    await Promise.all([done, read]);
  } catch (e) {
    const code = errnoCode(e);
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : e instanceof Error ? e.message : String(e);
    throw new TunerError('CLI_USAGE', `read recording ${path}: ${why}${code !== undefined && !why.includes(code) ? ` (${code})` : ''} — ${fix}`);
  }
  if (lines.length === 0) throw new TunerError('CLI_USAGE', `read recording ${path}: empty — ${fix}`);
  let header: RecordingHeader;
  try {
    header = JSON.parse(lines[0]) as RecordingHeader;
  } catch {
    throw new TunerError('CLI_USAGE', `read recording ${path}: line 1 is not a recording header — ${fix}`);
  }
  if (header.format !== 'ebpf-tuner-recording' || header.version > RECORDING_VERSION) {
    throw new TunerError('CLI_USAGE', `read recording ${path}: format ${header.format} v${header.version} is not one this version reads (v${RECORDING_VERSION}) — fix: replay it with the version that recorded it`);
  }
  const ticks = lines.slice(1).map((l, i) => {
    try {
      return JSON.parse(l) as TickSnapshot;
    } catch {
      throw new TunerError('CLI_USAGE', `read recording ${path}: line ${i + 2} is not JSON (truncated file?) — ${fix}`);
    }
  });
  if (header.version < 2) for (const t of ticks) addDeviceNumbers(t);
  return { header, ticks };
}

/** A version 1 tick as version 2 writes it: each blkio device's numbers from its "major:minor". */
function addDeviceNumbers(tick: TickSnapshot): void {
  for (const signals of [...Object.values(tick.targets ?? {}), tick.host ?? {}]) {
    const devices: unknown = (signals.blkio as { devices?: unknown } | undefined)?.devices;
    if (!Array.isArray(devices)) continue;
    for (const d of devices as { dev?: unknown; major?: number; minor?: number }[]) {
      const m = typeof d?.dev === 'string' ? /^(\d+):(\d+)$/.exec(d.dev) : null;
      if (m !== null) [d.major, d.minor] = [Number(m[1]), Number(m[2])];
    }
  }
}
