/**
 * A faithful fake of a cgroup v2 tree, for tests on hosts that have no v2 cpu controller (a hybrid host with cpu
 * bound to v1, say). It is a plain directory under the temp dir holding the kernel's real interface file names, with
 * the exact contents the kernel prints for a fresh cgroup.
 *
 * What it does not fake: the kernel's validation and side effects of writes (an out-of-range cpu.weight is stored
 * as written, writing cgroup.procs moves nothing). Code under test sees the file interface only, which is the
 * contract the agent relies on; the kernel-side behaviour is covered by the *.kernel.test.ts suites on real v1.
 *
 * The tree is reached through `fake.probe`, the one injection point `detectLayout`, `cgroupVersionOf` and
 * `controllerRootOf` accept.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CGROUP2_SUPER_MAGIC, detectLayout, isPathUnder, type CgroupLayout, type CgroupProbe } from './layout.js';

/** The order the kernel prints controllers in (their subsystem ids). */
const SSID_ORDER = ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma', 'misc'];
const DEFAULT_CONTROLLERS = ['cpuset', 'cpu', 'io', 'memory', 'pids'];

const PSI_ZERO = 'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n';

export interface FakeMkdirOptions {
  /** Controllers to enable for this cgroup's children (written to its cgroup.subtree_control). Default none. */
  subtreeControl?: string[];
  /** cgroup.type; default 'domain'. */
  type?: 'domain' | 'domain threaded' | 'threaded';
  /** Pids listed in cgroup.procs (and as their own single thread in cgroup.threads). */
  procs?: number[];
}

export interface FakeCgroup2 {
  /** Absolute path of the fake mount point. */
  readonly root: string;
  /** Pass to detectLayout / cgroupVersionOf / controllerRootOf to make them see this tree as a cgroup2 mount. */
  readonly probe: CgroupProbe;
  /** detectLayout(probe), computed once: mode 'v2', every controller at `root`. */
  readonly layout: CgroupLayout;
  /** Absolute path of a cgroup relative to the root. */
  path(rel: string): string;
  /**
   * Create a cgroup (and any missing parents, which enable all of their controllers for their children, as a
   * systemd slice would). Returns its absolute path.
   */
  mkdir(rel: string, opts?: FakeMkdirOptions): string;
  /** Remove a cgroup and its descendants, as rmdir(2) on each would once they are empty. */
  rmdir(rel: string): void;
  /** Remove the whole tree. Idempotent. */
  remove(): void;
}

function sortControllers(names: string[]): string[] {
  const known = SSID_ORDER.filter((c) => names.includes(c));
  return [...known, ...names.filter((c) => !SSID_ORDER.includes(c))];
}

function controllerLine(names: string[]): string {
  return sortControllers(names).join(' ') + '\n';
}

function idLines(ids: number[]): string {
  return ids.map((id) => `${id}\n`).join('');
}

function cpuRange(): string {
  const n = Math.max(1, os.cpus().length);
  return n === 1 ? '0' : `0-${n - 1}`;
}

function cpuStat(withCpuController: boolean): string {
  let s = 'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnice_usec 0\n';
  if (withCpuController) s += 'nr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n';
  return s;
}

const MEMORY_STAT =
  'anon 0\nfile 0\nkernel 0\nkernel_stack 0\npagetables 0\nsec_pagetables 0\npercpu 0\nsock 0\nvmalloc 0\nshmem 0\n' +
  'file_mapped 0\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon 0\n' +
  'active_anon 0\ninactive_file 0\nactive_file 0\nunevictable 0\nslab_reclaimable 0\nslab_unreclaimable 0\nslab 0\n' +
  'pgfault 0\npgmajfault 0\n';

/** Files of the root cgroup: no cgroup.type/events/freeze and no per-cgroup limits, as on a real root. */
function rootFiles(controllers: string[], subtree: string[]): Record<string, string> {
  const f: Record<string, string> = {
    'cgroup.controllers': controllerLine(controllers),
    'cgroup.subtree_control': controllerLine(subtree),
    'cgroup.procs': '',
    'cgroup.threads': '',
    'cgroup.max.depth': 'max\n',
    'cgroup.max.descendants': 'max\n',
    'cgroup.stat': 'nr_descendants 0\nnr_dying_descendants 0\n',
    'cgroup.pressure': '1\n',
    'cpu.pressure': PSI_ZERO,
    'io.pressure': PSI_ZERO,
    'memory.pressure': PSI_ZERO,
    'cpu.stat': cpuStat(false),
    'cpu.stat.local': '',
  };
  if (controllers.includes('cpuset')) {
    f['cpuset.cpus.effective'] = cpuRange() + '\n';
    f['cpuset.mems.effective'] = '0\n';
    f['cpuset.cpus.isolated'] = '\n';
  }
  if (controllers.includes('memory')) f['memory.stat'] = MEMORY_STAT;
  if (controllers.includes('io')) f['io.stat'] = '';
  return f;
}

function childFiles(controllers: string[], opts: FakeMkdirOptions): Record<string, string> {
  const procs = opts.procs ?? [];
  const cpu = controllers.includes('cpu');
  const f: Record<string, string> = {
    'cgroup.controllers': controllerLine(controllers),
    'cgroup.subtree_control': controllerLine(opts.subtreeControl ?? []),
    'cgroup.procs': idLines(procs),
    'cgroup.threads': idLines(procs),
    'cgroup.type': (opts.type ?? 'domain') + '\n',
    'cgroup.events': `populated ${procs.length > 0 ? 1 : 0}\nfrozen 0\n`,
    'cgroup.freeze': '0\n',
    'cgroup.kill': '',
    'cgroup.max.depth': 'max\n',
    'cgroup.max.descendants': 'max\n',
    'cgroup.stat': 'nr_descendants 0\nnr_dying_descendants 0\n',
    'cgroup.pressure': '1\n',
    'cpu.pressure': PSI_ZERO,
    'io.pressure': PSI_ZERO,
    'memory.pressure': PSI_ZERO,
    'cpu.stat': cpuStat(cpu),
    'cpu.stat.local': cpu ? 'throttled_usec 0\n' : '',
  };
  if (cpu) {
    f['cpu.weight'] = '100\n';
    f['cpu.weight.nice'] = '0\n';
    f['cpu.max'] = 'max 100000\n';
    f['cpu.max.burst'] = '0\n';
    f['cpu.idle'] = '0\n';
  }
  if (controllers.includes('cpuset')) {
    // A fresh cpuset cgroup has empty cpus/mems and inherits the effective sets from its parent.
    f['cpuset.cpus'] = '\n';
    f['cpuset.cpus.effective'] = cpuRange() + '\n';
    f['cpuset.cpus.exclusive'] = '\n';
    f['cpuset.cpus.exclusive.effective'] = '\n';
    f['cpuset.cpus.partition'] = 'member\n';
    f['cpuset.mems'] = '\n';
    f['cpuset.mems.effective'] = '0\n';
  }
  if (controllers.includes('memory')) {
    f['memory.current'] = '0\n';
    f['memory.min'] = '0\n';
    f['memory.low'] = '0\n';
    f['memory.high'] = 'max\n';
    f['memory.max'] = 'max\n';
    f['memory.peak'] = '0\n';
    f['memory.events'] = 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n';
    f['memory.events.local'] = 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n';
    f['memory.oom.group'] = '0\n';
    f['memory.stat'] = MEMORY_STAT;
    f['memory.swap.current'] = '0\n';
    f['memory.swap.max'] = 'max\n';
  }
  if (controllers.includes('io')) {
    f['io.stat'] = '';
    f['io.max'] = '';
    f['io.weight'] = 'default 100\n';
  }
  if (controllers.includes('pids')) {
    f['pids.current'] = `${procs.length}\n`;
    f['pids.max'] = 'max\n';
    f['pids.peak'] = `${procs.length}\n`;
    f['pids.events'] = 'max 0\n';
  }
  return f;
}

function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
}

function escapeMountField(s: string): string {
  return s.replace(/[ \t\n\\]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
}

export function createFakeCgroup2(opts: { controllers?: string[] } = {}): FakeCgroup2 {
  const controllers = sortControllers(opts.controllers ?? DEFAULT_CONTROLLERS);
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-fake-cgroup2-')));
  writeFiles(root, rootFiles(controllers, controllers));

  const probe: CgroupProbe = {
    root,
    mountinfo:
      `9999 1 0:9999 / ${escapeMountField(root)} rw,nosuid,nodev,noexec,relatime shared:9999 - ` +
      'cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n',
    statfsType: (p: string) => {
      // stat first so a missing path throws ENOENT exactly as statfs(2) would.
      fs.statSync(p);
      const abs = path.resolve(p);
      return isPathUnder(abs, root) ? CGROUP2_SUPER_MAGIC : Number(fs.statfsSync(abs).type);
    },
  };
  const layout = detectLayout(probe);
  let removed = false;

  const abs = (rel: string): string => {
    const p = path.resolve(root, rel.replace(/^\/+/, ''));
    if (!isPathUnder(p, root)) throw new Error(`fake cgroup2: ${rel} is outside the fake root`);
    return p;
  };

  const readControllers = (dir: string, file: string): string[] =>
    fs.readFileSync(path.join(dir, file), 'utf8').split(/\s+/).filter(Boolean);

  const refreshDescendantCounts = (dir: string): void => {
    for (let d = dir; isPathUnder(d, root); d = path.dirname(d)) {
      let n = 0;
      const walk = (x: string): void => {
        for (const e of fs.readdirSync(x, { withFileTypes: true })) {
          if (e.isDirectory()) {
            n++;
            walk(path.join(x, e.name));
          }
        }
      };
      walk(d);
      fs.writeFileSync(path.join(d, 'cgroup.stat'), `nr_descendants ${n}\nnr_dying_descendants 0\n`);
      if (d === root) break;
    }
  };

  const mkdir = (rel: string, mopts: FakeMkdirOptions = {}): string => {
    const target = abs(rel);
    if (target === root) throw new Error('fake cgroup2: the root already exists');
    const parent = path.dirname(target);
    if (!fs.existsSync(parent)) {
      const pc = readControllersOfMissing(parent);
      mkdir(path.relative(root, parent), { subtreeControl: pc });
    }
    if (fs.existsSync(target)) {
      const err = new Error(`EEXIST: file already exists, mkdir '${target}'`) as NodeJS.ErrnoException;
      err.code = 'EEXIST';
      throw err;
    }
    const enabled = readControllers(parent, 'cgroup.subtree_control');
    fs.mkdirSync(target);
    writeFiles(target, childFiles(enabled, mopts));
    refreshDescendantCounts(parent);
    return target;
  };

  // A missing parent gets whatever its own nearest existing ancestor passes down, so the leaf sees them all.
  const readControllersOfMissing = (dir: string): string[] => {
    let d = path.dirname(dir);
    while (!fs.existsSync(d)) d = path.dirname(d);
    return readControllers(d, 'cgroup.subtree_control');
  };

  return {
    root,
    probe,
    layout,
    path: abs,
    mkdir,
    rmdir(rel: string): void {
      const target = abs(rel);
      if (target === root) throw new Error('fake cgroup2: cannot rmdir the root');
      fs.rmSync(target, { recursive: true });
      refreshDescendantCounts(path.dirname(target));
    },
    remove(): void {
      if (removed) return;
      removed = true;
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
