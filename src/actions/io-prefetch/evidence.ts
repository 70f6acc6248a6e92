/**
 * What the kernel shows about a target's block I/O without tracing: the block devices its processes have open
 * (directly, or under the file systems of the files they have open), the files they are streaming through, and
 * where a device's read-ahead knob lives in sysfs. The io_prefetch action declares only these devices' knobs to the
 * KnobWriter, so a write to any other device is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Target } from '../../core/types.js';
import { listProcs } from '../../cgroup/cgroup.js';

/**
 * A file open for reading (not O_DIRECT) that is being read through: its offset moved forward since the previous
 * scan, or, the first time the scanner sees it, sits part-way into the file.
 */
export interface Stream {
  /** /proc/<pid>/fd/<n>: opening it opens the same file. */
  fdPath: string;
  /** The file offset now, bytes. */
  pos: number;
  size: number;
  /** Bytes the offset moved forward since the previous scan; 0 on first sight. */
  advanced: number;
}

export interface Evidence {
  /** "major:minor" of block devices, those opened directly first, each group in numeric order. */
  devices: string[];
  streams: Stream[];
}

/** Per-scan bounds, so a target with thousands of processes or descriptors costs a bounded number of syscalls. */
export const SCAN_LIMITS = { procs: 256, fds: 4096 } as const;

// x86-64 and arm64 open(2) flags as /proc/<pid>/fdinfo prints them (octal).
const O_ACCMODE = 0o3;
const O_WRONLY = 0o1;
const O_DIRECT = 0o40000;

/** The kernel's new_decode_dev: 12-bit major and 20-bit minor, split across the low and high halves. */
export function decodeDev(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

export function parseDev(dev: string): { major: number; minor: number } | undefined {
  const m = /^(\d+):(\d+)$/.exec(dev.trim());
  if (m === null) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]) };
}

function byNumber(a: string, b: string): number {
  const x = parseDev(a)!;
  const y = parseDev(b)!;
  return x.major - y.major || x.minor - y.minor;
}

/** pos and flags from /proc/<pid>/fdinfo/<n>; undefined when the descriptor is gone. */
export function parseFdinfo(text: string): { pos: number; flags: number } | undefined {
  const pos = /^pos:\s*(\d+)/m.exec(text);
  const flags = /^flags:\s*([0-7]+)/m.exec(text);
  if (pos === null || flags === null) return undefined;
  return { pos: Number(pos[1]), flags: parseInt(flags[1]!, 8) };
}

export class EvidenceScanner {
  readonly #procRoot: string;
  /** Per target: `${pid}:${fd}:${dev}:${ino}` → offset at the previous scan. */
  readonly #offsets = new Map<string, Map<string, number>>();

  constructor(procRoot = '/proc') {
    this.#procRoot = procRoot;
  }

  scan(target: Target): Evidence {
    let pids: number[];
    if (target.scope.kind === 'pids') pids = target.scope.pids;
    else {
      try {
        pids = listProcs(target.scope.path);
      } catch {
        pids = [];
      }
    }
    const direct = new Set<string>();
    const underFiles = new Set<string>();
    const streams: Stream[] = [];
    const before = this.#offsets.get(target.name) ?? new Map<string, number>();
    const seen = new Map<string, number>();
    let fds = 0;
    for (const pid of pids.slice(0, SCAN_LIMITS.procs)) {
      const fdDir = path.join(this.#procRoot, String(pid), 'fd');
      let names: string[];
      try {
        names = fs.readdirSync(fdDir);
      } catch {
        // Exited, or not ours to look at: either way it shows nothing.
        continue;
      }
      for (const n of names) {
        if (++fds > SCAN_LIMITS.fds) break;
        const fdPath = path.join(fdDir, n);
        const st = fs.statSync(fdPath, { bigint: true, throwIfNoEntry: false });
        if (st === undefined) continue;
        if (st.isBlockDevice()) {
          direct.add(decodeDev(st.rdev));
          continue;
        }
        if (!st.isFile()) continue;
        // Files on virtual file systems (tmpfs, overlay, proc) have major 0 and no queue to tune.
        const fsDev = decodeDev(st.dev);
        if (!fsDev.startsWith('0:')) underFiles.add(fsDev);
        let info: { pos: number; flags: number } | undefined;
        try {
          info = parseFdinfo(fs.readFileSync(path.join(this.#procRoot, String(pid), 'fdinfo', n), 'utf8'));
        } catch {
          info = undefined;
        }
        if (info === undefined || (info.flags & O_ACCMODE) === O_WRONLY || (info.flags & O_DIRECT) !== 0) continue;
        const key = `${pid}:${n}:${st.dev}:${st.ino}`;
        seen.set(key, info.pos);
        const prev = before.get(key);
        const size = Number(st.size);
        // A single look cannot see movement; a file part-way read is the best evidence it offers (the agent often
        // looks for the first time right when it acts).
        const reading = prev === undefined ? info.pos > 0 && info.pos < size : info.pos > prev;
        if (reading) streams.push({ fdPath, pos: info.pos, size, advanced: prev === undefined ? 0 : info.pos - prev });
      }
      if (fds > SCAN_LIMITS.fds) break;
    }
    this.#offsets.set(target.name, seen);
    for (const d of direct) underFiles.delete(d);
    return { devices: [...[...direct].sort(byNumber), ...[...underFiles].sort(byNumber)], streams };
  }
}

/** A whole disk as sysfs shows it. */
export interface BlockDisk {
  /** "major:minor" of the whole disk (a partition resolves to its disk). */
  dev: string;
  name: string;
  /** Canonical path of its queue/read_ahead_kb. */
  knob: string;
}

/**
 * The disk behind "major:minor", through /sys/dev/block/<dev> (a partition's directory sits inside its disk's, and
 * only the disk has a queue). Undefined when there is no such device or it has no read-ahead knob.
 */
export function resolveDisk(dev: string, sysDevBlock = '/sys/dev/block'): BlockDisk | undefined {
  let dir: string;
  try {
    dir = fs.realpathSync(path.join(sysDevBlock, dev));
  } catch {
    return undefined;
  }
  if (fs.existsSync(path.join(dir, 'partition'))) dir = path.dirname(dir);
  const knob = path.join(dir, 'queue', 'read_ahead_kb');
  if (!fs.existsSync(knob)) return undefined;
  let diskDev = dev;
  try {
    diskDev = fs.readFileSync(path.join(dir, 'dev'), 'utf8').trim();
  } catch {
    diskDev = dev;
  }
  return { dev: diskDev, name: path.basename(dir), knob };
}
