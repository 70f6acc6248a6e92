/**
 * The block devices the agent may change: the config's `devices` list, resolved against sysfs. A device knob
 * (a disk's `queue/read_ahead_kb`) is shared by every process on the device, so it lies outside every target and
 * needs a scope of its own; this is that scope. The KnobWriter refuses a write to any file outside a cgroup target
 * unless it lies in one of these devices' sysfs directories, and the guardrails refuse a nudge naming another device.
 *
 * A device is named the way an SRE names it — `sda`, `/dev/nvme0n1`, `8:0` — and resolves to its whole disk's
 * directory under /sys/devices. A partition is refused rather than widened to its disk: its queue knobs are the
 * disk's, shared by every partition on it, and listing `sda1` should not silently let the agent change all of `sda`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TunerError } from '../core/errors.js';
import { isPathUnder } from '../cgroup/layout.js';

/** A whole disk in scope. */
export interface BlockDevice {
  /** Its name under /sys/block, e.g. `sda`, `nvme0n1`, `loop3`. */
  name: string;
  /** "major:minor". */
  dev: string;
  /** Canonical sysfs directory of the disk; its queue knobs lie below it. */
  sysfs: string;
}

export interface SysfsPaths {
  /** Default /sys/block: one entry per whole disk. */
  sysBlock?: string;
  /** Default /sys/class/block: disks and partitions. */
  sysClassBlock?: string;
  /** Default /sys/dev/block: "major:minor" links. */
  sysDevBlock?: string;
}

/** The kernel's new_decode_dev: 12-bit major and 20-bit minor, split across the low and high halves. */
function decodeDev(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

function realpathOrUndefined(p: string): string | undefined {
  try {
    return fs.realpathSync(p);
  } catch {
    return undefined;
  }
}

/** Whole disks that have a queue, by name, for "what exists" in error messages. */
export function listDisks(sysBlock = '/sys/block'): string[] {
  try {
    return fs.readdirSync(sysBlock).filter((n) => fs.existsSync(path.join(sysBlock, n, 'queue'))).sort();
  } catch {
    return [];
  }
}

/**
 * The sysfs directory a written device name points at (disk or partition), or why it points at nothing. Names are
 * looked up in /sys/class/block, device files by the numbers of the block device they are, numbers in /sys/dev/block.
 */
function locate(spec: string, p: Required<SysfsPaths>): { dir: string } | { missing: string } {
  if (/^\d+:\d+$/.test(spec)) {
    const dir = realpathOrUndefined(path.join(p.sysDevBlock, spec));
    return dir !== undefined ? { dir } : { missing: `no block device has the numbers ${spec}` };
  }
  if (spec.startsWith('/')) {
    let st: fs.BigIntStats | undefined;
    try {
      st = fs.statSync(spec, { bigint: true });
    } catch {
      return { missing: `${spec} does not exist` };
    }
    if (!st.isBlockDevice()) return { missing: `${spec} is not a block device` };
    const dir = realpathOrUndefined(path.join(p.sysDevBlock, decodeDev(st.rdev)));
    return dir !== undefined ? { dir } : { missing: `${spec} (${decodeDev(st.rdev)}) has no entry in ${p.sysDevBlock}` };
  }
  if (spec.includes('/') || spec === '.' || spec === '..') return { missing: `${spec} is not a device name` };
  const dir = realpathOrUndefined(path.join(p.sysClassBlock, spec));
  return dir !== undefined ? { dir } : { missing: `no block device is named ${spec}` };
}

/**
 * Resolve the configured devices, in order, without duplicates (two spellings of one disk are one device). Throws
 * CONFIG_INVALID naming the entry, what is wrong and the fix — with the disks that exist — before anything changes.
 */
export function resolveDevices(specs: readonly string[], paths: SysfsPaths = {}, source?: string): BlockDevice[] {
  const p = sysfsPaths(paths);
  const out = new Map<string, BlockDevice>();
  specs.forEach((spec, i) => {
    const d = resolveDevice(spec, i, p, source);
    if (!out.has(d.sysfs)) out.set(d.sysfs, d);
  });
  return [...out.values()];
}

/**
 * Every configured device that resolveDevices would refuse, each with its index and the error it would throw
 * (resolveDevices stops at the first), for `ebpf-tuner config check`.
 */
export function deviceProblems(specs: readonly string[], paths: SysfsPaths = {}, source?: string): { index: number; error: TunerError }[] {
  const p = sysfsPaths(paths);
  const problems: { index: number; error: TunerError }[] = [];
  specs.forEach((spec, i) => {
    try {
      resolveDevice(spec, i, p, source);
    } catch (e) {
      if (!(e instanceof TunerError)) throw e;
      problems.push({ index: i, error: e });
    }
  });
  return problems;
}

function sysfsPaths(paths: SysfsPaths): Required<SysfsPaths> {
  return {
    sysBlock: paths.sysBlock ?? '/sys/block',
    sysClassBlock: paths.sysClassBlock ?? '/sys/class/block',
    sysDevBlock: paths.sysDevBlock ?? '/sys/dev/block',
  };
}

/** `devices[i]`, resolved to its whole disk; throws CONFIG_INVALID with the fix. */
function resolveDevice(spec: string, i: number, p: Required<SysfsPaths>, source: string | undefined): BlockDevice {
  const where = `devices[${i}] "${spec}"${source !== undefined ? ` in ${source}` : ''}`;
  const found = locate(spec, p);
  const disks = (): string => listDisks(p.sysBlock).join(', ') || 'none';
  if ('missing' in found) {
    throw new TunerError('CONFIG_INVALID', `resolve ${where}: ${found.missing} — fix: name a disk this host has (${disks()}), as sda, /dev/sda or 8:0`);
  }
  const name = path.basename(found.dir);
  if (fs.existsSync(path.join(found.dir, 'partition'))) {
    const disk = path.basename(path.dirname(found.dir));
    throw new TunerError(
      'CONFIG_INVALID',
      `resolve ${where}: ${name} is a partition of ${disk}, and its queue knobs (read_ahead_kb) belong to the whole disk, shared by all its partitions — fix: list the disk, ${disk}, to let the agent change it`,
    );
  }
  if (!fs.existsSync(path.join(found.dir, 'queue'))) {
    throw new TunerError('CONFIG_INVALID', `resolve ${where}: ${name} has no request queue to tune — fix: name a disk this host has (${disks()})`);
  }
  let dev: string;
  try {
    dev = fs.readFileSync(path.join(found.dir, 'dev'), 'utf8').trim();
  } catch {
    dev = '?';
  }
  return { name, dev, sysfs: found.dir };
}

/** The devices in scope, asked by the number of any device on them (a partition counts as its disk). */
export class DeviceScope {
  readonly devices: readonly BlockDevice[];
  readonly #sysDevBlock: string;

  constructor(devices: readonly BlockDevice[], sysDevBlock = '/sys/dev/block') {
    this.devices = devices;
    this.#sysDevBlock = sysDevBlock;
  }

  /** The device in scope holding the sysfs file (canonical path), if any. */
  holding(file: string): BlockDevice | undefined {
    return this.devices.find((d) => isPathUnder(file, d.sysfs));
  }

  /** The device in scope that "major:minor" is, or is a partition of. */
  of(dev: string): BlockDevice | undefined {
    const dir = realpathOrUndefined(path.join(this.#sysDevBlock, dev));
    return dir !== undefined ? this.holding(dir) : undefined;
  }

  /** For messages: the name "major:minor" has under /sys/block or /sys/class/block, else the numbers. */
  nameOf(dev: string): string {
    const dir = realpathOrUndefined(path.join(this.#sysDevBlock, dev));
    return dir !== undefined ? path.basename(dir) : dev;
  }

  /** For messages: `sda, loop3`, or `none listed`. */
  describe(): string {
    return this.devices.map((d) => d.name).join(', ') || 'none listed';
  }
}

/** For messages: the block device a sysfs file belongs to (`…/<name>/queue/…`, `…/block/<name>/…`), else the file. */
export function deviceNameOf(file: string): string {
  const parts = file.split('/');
  const q = parts.lastIndexOf('queue');
  if (q > 0) return parts[q - 1]!;
  const i = parts.lastIndexOf('block');
  return i >= 0 && i + 1 < parts.length ? parts[i + 1]! : file;
}
