/**
 * Where the cgroup controllers live on this host: pure v1, pure v2, or the hybrid of both, and which mount each
 * controller is attached to. Everything that turns a target into a knob path or a cgroup id goes through here.
 *
 * The host is probed through a `CgroupProbe`; tests point it at a fake tree (see `fake-cgroup2.ts`) by passing
 * the probe that fake hands out, never by patching `fs`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TunerError, errnoCode } from '../core/errors.js';

export const CGROUP2_SUPER_MAGIC = 0x63677270;
export const CGROUP_SUPER_MAGIC = 0x27e0eb;
export const TMPFS_MAGIC = 0x01021994;

export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';

/**
 * The v1 subsystems the kernel can bind to a hierarchy. Mount options of a `cgroup` mount mix these with plain
 * options (rw, nosuid, clone_children, ...); only these name a controller.
 */
const V1_SUBSYSTEMS = new Set([
  'cpuset',
  'cpu',
  'cpuacct',
  'blkio',
  'memory',
  'devices',
  'freezer',
  'net_cls',
  'perf_event',
  'net_prio',
  'hugetlb',
  'pids',
  'rdma',
  'misc',
  'debug',
]);

export interface ControllerMount {
  version: 1 | 2;
  /** Absolute mount point of the hierarchy this controller is attached to. */
  mount: string;
  /**
   * The hierarchy path mounted there (mountinfo field 4), '/' unless a container bind-mounted a subtree. Paths in
   * /proc/<pid>/cgroup are relative to the hierarchy root, so this is needed to turn them into file paths.
   */
  mountRoot: string;
}

export interface CgroupMount {
  version: 1 | 2;
  mount: string;
  mountRoot: string;
  /** v1: the subsystems bound to this hierarchy (named hierarchies appear as `name=<x>`); v2: cgroup.controllers. */
  controllers: string[];
}

export interface CgroupLayout {
  mode: 'v1' | 'v2' | 'hybrid';
  /** Mount point of the v2 hierarchy, when there is one. */
  unified?: string;
  /** Keyed by the kernel's own controller name (`blkio` on v1, `io` on v2; `name=systemd` for named v1 hierarchies). */
  controllers: Record<string, ControllerMount>;
  /** Every cgroup mount found, v2 first. */
  mounts: CgroupMount[];
}

/** How the host is inspected. Every field defaults to the real system. */
export interface CgroupProbe {
  /** Where the cgroup mounts are expected; default /sys/fs/cgroup. */
  root?: string;
  /** Contents of /proc/self/mountinfo. */
  mountinfo?: string;
  /** Filesystem magic of a path, as `statfs(2)` reports it. Must throw the fs error (ENOENT...) for missing paths. */
  statfsType?: (p: string) => number;
}

function realStatfsType(p: string): number {
  return Number(fs.statfsSync(p).type);
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

interface MountinfoEntry {
  mountRoot: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

export function parseMountinfo(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    // Optional fields end at a lone '-'; fstype, source and super options follow it.
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 4) continue;
    out.push({
      mountRoot: unescapeMountField(fields[3]),
      mountPoint: unescapeMountField(fields[4]),
      fsType: fields[sep + 1],
      superOptions: fields[sep + 3].split(','),
    });
  }
  return out;
}

function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : dir + '/');
}

function readControllers(unified: string): string[] {
  try {
    return fs.readFileSync(path.join(unified, 'cgroup.controllers'), 'utf8').split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * Probe the host's cgroup layout. Throws CGROUP_UNSUPPORTED when no cgroup filesystem is mounted at all.
 *
 * When a hierarchy is mounted more than once (bind mounts in containers), the mount under `root` wins.
 */
export function detectLayout(opts: CgroupProbe = {}): CgroupLayout {
  const root = path.resolve(opts.root ?? DEFAULT_CGROUP_ROOT);
  const statfsType = opts.statfsType ?? realStatfsType;
  let text = opts.mountinfo;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    } catch (e) {
      throw new TunerError(
        'CGROUP_UNSUPPORTED',
        `read /proc/self/mountinfo: ${errnoCode(e) ?? String(e)} — mount procfs at /proc`,
        { cause: e },
      );
    }
  }

  const entries = parseMountinfo(text).filter((m) => m.fsType === 'cgroup' || m.fsType === 'cgroup2');
  // Stable preference: mounts under root before others, in mountinfo order otherwise.
  entries.sort((a, b) => Number(isUnder(b.mountPoint, root)) - Number(isUnder(a.mountPoint, root)));

  const mounts: CgroupMount[] = [];
  const controllers: Record<string, ControllerMount> = {};
  let unified: string | undefined;
  let v2Root: string | undefined;

  for (const m of entries) {
    if (m.fsType !== 'cgroup') continue;
    const names = m.superOptions.filter((o) => V1_SUBSYSTEMS.has(o) || o.startsWith('name='));
    if (names.length === 0) continue;
    if (mounts.some((x) => x.version === 1 && x.controllers.join() === names.join())) continue;
    mounts.push({ version: 1, mount: m.mountPoint, mountRoot: m.mountRoot, controllers: names });
    for (const n of names) controllers[n] ??= { version: 1, mount: m.mountPoint, mountRoot: m.mountRoot };
  }
  const v2 = entries.find((m) => m.fsType === 'cgroup2');
  if (v2 !== undefined) {
    unified = v2.mountPoint;
    v2Root = v2.mountRoot;
    // A controller bound to a v1 hierarchy cannot be in cgroup.controllers, so there is no overlap to resolve.
    const names = readControllers(unified);
    mounts.unshift({ version: 2, mount: unified, mountRoot: v2Root, controllers: names });
    for (const n of names) controllers[n] ??= { version: 2, mount: unified, mountRoot: v2Root };
  }

  if (mounts.length === 0) {
    throw new TunerError(
      'CGROUP_UNSUPPORTED',
      `detect cgroup layout: no cgroup or cgroup2 filesystem is mounted — mount cgroup2 at ${root}`,
    );
  }

  let rootType: number | undefined;
  try {
    rootType = statfsType(root);
  } catch {
    rootType = undefined;
  }
  const hasV1 = mounts.some((m) => m.version === 1);
  let mode: CgroupLayout['mode'];
  if (rootType === CGROUP2_SUPER_MAGIC || !hasV1) mode = 'v2';
  else mode = unified !== undefined ? 'hybrid' : 'v1';

  return { mode, ...(unified !== undefined ? { unified } : {}), controllers, mounts };
}

function hex(n: number): string {
  return '0x' + n.toString(16);
}

/**
 * The cgroup version of the hierarchy a directory belongs to, from the filesystem magic. CGROUP_NOT_FOUND when the
 * path does not exist, CGROUP_UNSUPPORTED when it is not on a cgroup filesystem.
 */
export function cgroupVersionOf(p: string, probe: CgroupProbe = {}): 1 | 2 {
  const statfsType = probe.statfsType ?? realStatfsType;
  let type: number;
  try {
    type = statfsType(p);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new TunerError('CGROUP_NOT_FOUND', `find cgroup ${p}: no such directory — check the path in the config`, {
        cause: e,
      });
    }
    throw new TunerError('CGROUP_UNSUPPORTED', `inspect cgroup ${p}: ${code ?? String(e)}`, { cause: e });
  }
  if (type === CGROUP2_SUPER_MAGIC) return 2;
  if (type === CGROUP_SUPER_MAGIC) return 1;
  const what = type === TMPFS_MAGIC ? 'tmpfs, the directory that holds the cgroup mounts' : `filesystem ${hex(type)}`;
  throw new TunerError(
    'CGROUP_UNSUPPORTED',
    `inspect cgroup ${p}: not on a cgroup filesystem (${what}) — name a directory inside a cgroup mount such as ${DEFAULT_CGROUP_ROOT}/cpu/<group> or ${DEFAULT_CGROUP_ROOT}/<group>`,
  );
}

/**
 * The cgroup id of a directory: its inode number, which is the kernfs node id that `bpf_get_current_cgroup_id()`
 * and `cgroup->kn->id` report on 64-bit kernels.
 */
export function cgroupId(p: string): bigint {
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(p, { bigint: true });
  } catch (e) {
    throw new TunerError('CGROUP_NOT_FOUND', `find cgroup ${p}: ${errnoCode(e) ?? String(e)} — check the path in the config`, {
      cause: e,
    });
  }
  if (!st.isDirectory()) {
    throw new TunerError('CGROUP_UNSUPPORTED', `read cgroup id of ${p}: not a directory — name the cgroup directory, not a file in it`);
  }
  return st.ino;
}

/**
 * The mount point of the cgroup hierarchy a path lies under (the longest matching mount). CGROUP_NOT_FOUND when
 * it lies under none.
 */
export function controllerRootOf(p: string, layout: CgroupLayout = detectLayout()): string {
  const abs = path.resolve(p);
  let best: string | undefined;
  for (const m of layout.mounts) {
    if (isUnder(abs, m.mount) && (best === undefined || m.mount.length > best.length)) best = m.mount;
  }
  if (best === undefined) {
    throw new TunerError(
      'CGROUP_NOT_FOUND',
      `find the cgroup hierarchy of ${abs}: it is under no cgroup mount (${layout.mounts.map((m) => m.mount).join(', ')}) — name a directory inside one of them`,
    );
  }
  return best;
}

/** Is `p` the directory `dir` or inside it? Paths are compared as given; resolve them first. */
export function isPathUnder(p: string, dir: string): boolean {
  return isUnder(p, dir);
}
