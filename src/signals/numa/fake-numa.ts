/**
 * A faithful fake of the sysfs and procfs files NUMA placement is read from, for tests on hosts with a single node
 * (this one, and most CI runners). It is a plain directory tree under the temp dir, holding the kernel's real file
 * names with contents in the kernel's own formats:
 *
 *   sys/devices/system/node/{online,possible,has_cpu,has_memory,has_normal_memory}
 *   sys/devices/system/node/node<N>/{cpulist,cpumap,distance,meminfo}
 *   sys/devices/system/cpu/{online,possible}
 *   proc/stat, proc/<pid>/{stat,status,cpuset,numa_maps,task/<tid>/stat}, proc/<tid>/stat
 *
 * Pass `sysRoot` and `procRoot` to the code under test. What it does not fake: anything the kernel does on a write
 * (moving pages, migrating tasks); tests change the tree themselves to show the kernel's reaction.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatCpuList, parseCpuList } from '../placement/cpulist.js';

export interface FakeNodeSpec {
  /** CPU list of the node, e.g. "2-3". */
  cpus: string;
  memTotalKb?: number;
  memFreeKb?: number;
}

export interface FakeThread {
  tid: number;
  /** The CPU it last ran on (stat field 39). */
  cpu: number;
  state?: string;
  /** utime in clock ticks (stat field 14); stime stays 0. */
  cpuTicks?: number;
  /** Start time (stat field 22); default 1000. Give a real thread's to describe that thread. */
  starttime?: number;
}

export interface FakeProcessSpec {
  pid: number;
  /** The leader is the thread whose tid equals pid; list it first. */
  threads: FakeThread[];
  /** Pages per node of the process's one anonymous mapping, e.g. { 0: 1000, 1: 24 }. */
  pages?: Record<number, number>;
}

export interface FakeNuma {
  readonly root: string;
  readonly sysRoot: string;
  readonly procRoot: string;
  addProcess(p: FakeProcessSpec): void;
  /** Rewrite a thread's stat (the kernel's view after it moved or ran). */
  setThread(pid: number, t: FakeThread): void;
  /** Rewrite a process's numa_maps with these per-node page counts (the kernel's view after pages moved). */
  setPages(pid: number, pages: Record<number, number>): void;
  remove(): void;
}

const STAT_FIELDS = 52;

/** A /proc/<tid>/stat line with the given fields set and the rest as a sleeping thread has them. */
export function fakeStatLine(pid: number, t: FakeThread): string {
  const f: string[] = new Array<string>(STAT_FIELDS).fill('0');
  f[0] = String(t.tid);
  f[1] = '(worker)';
  f[2] = t.state ?? 'S';
  f[3] = '1'; // ppid
  f[4] = String(pid); // pgrp
  f[5] = String(pid); // session
  f[6] = '0';
  f[7] = '-1'; // tpgid
  f[8] = '4194560'; // flags
  f[13] = String(t.cpuTicks ?? 0); // utime
  f[17] = '20'; // priority
  f[19] = '1'; // num_threads
  f[21] = String(t.starttime ?? 1000);
  f[24] = '18446744073709551615'; // rsslim
  f[37] = '17'; // exit_signal
  f[38] = String(t.cpu); // processor
  return f.join(' ') + '\n';
}

/** One numa_maps line for an anonymous mapping, as the kernel prints it. */
export function fakeNumaMapsLine(addr: number, pages: Record<number, number>): string {
  const total = Object.values(pages).reduce((a, b) => a + b, 0);
  const nodes = Object.entries(pages)
    .filter(([, n]) => n > 0)
    .sort((a, b) => Number(a[0]) - Number(b[0]))
    .map(([node, n]) => `N${node}=${n}`)
    .join(' ');
  return `${addr.toString(16)} default anon=${total} dirty=${total} active=0 ${nodes} kernelpagesize_kB=4\n`;
}

function meminfo(node: number, totalKb: number, freeKb: number): string {
  const line = (k: string, v: number): string => `Node ${node} ${`${k}:`.padEnd(16)}${String(v).padStart(8)} kB\n`;
  return (
    line('MemTotal', totalKb) +
    line('MemFree', freeKb) +
    line('MemUsed', totalKb - freeKb) +
    line('SwapCached', 0) +
    line('Active', 0) +
    line('Inactive', 0) +
    line('FilePages', 0) +
    line('AnonPages', totalKb - freeKb) +
    `Node ${node} HugePages_Total:     0\nNode ${node} HugePages_Free:      0\nNode ${node} HugePages_Surp:      0\n`
  );
}

/** cpumap: the node's CPUs as comma-separated 32-bit hex words, most significant first. */
function cpumap(cpus: number[], ncpu: number): string {
  const words = Math.max(1, Math.ceil(ncpu / 32));
  const out: string[] = [];
  for (let w = words - 1; w >= 0; w--) {
    let v = 0;
    for (const c of cpus) if (c >= w * 32 && c < (w + 1) * 32) v |= 1 << (c - w * 32);
    out.push((v >>> 0).toString(16).padStart(8, '0'));
  }
  return out.join(',') + '\n';
}

export function createFakeNuma(nodes: FakeNodeSpec[]): FakeNuma {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-fake-numa-')));
  const sysRoot = path.join(root, 'sys');
  const procRoot = path.join(root, 'proc');
  const nodeDir = path.join(sysRoot, 'devices/system/node');
  const cpuDir = path.join(sysRoot, 'devices/system/cpu');
  fs.mkdirSync(nodeDir, { recursive: true });
  fs.mkdirSync(cpuDir, { recursive: true });
  fs.mkdirSync(procRoot, { recursive: true });

  const allCpus = nodes.flatMap((n) => parseCpuList(n.cpus));
  const ncpu = Math.max(...allCpus) + 1;
  const nodeList = formatCpuList(nodes.map((_, i) => i)) + '\n';
  for (const f of ['online', 'possible', 'has_cpu', 'has_memory', 'has_normal_memory']) fs.writeFileSync(path.join(nodeDir, f), nodeList);
  fs.writeFileSync(path.join(cpuDir, 'online'), formatCpuList(allCpus) + '\n');
  fs.writeFileSync(path.join(cpuDir, 'possible'), formatCpuList(allCpus) + '\n');
  nodes.forEach((n, i) => {
    const d = path.join(nodeDir, `node${i}`);
    fs.mkdirSync(d);
    const cpus = parseCpuList(n.cpus);
    fs.writeFileSync(path.join(d, 'cpulist'), formatCpuList(cpus) + '\n');
    fs.writeFileSync(path.join(d, 'cpumap'), cpumap(cpus, ncpu));
    fs.writeFileSync(path.join(d, 'distance'), nodes.map((_, j) => (i === j ? '10' : '21')).join(' ') + '\n');
    fs.writeFileSync(path.join(d, 'meminfo'), meminfo(i, n.memTotalKb ?? 4_000_000, n.memFreeKb ?? 3_000_000));
  });
  const statLines = ['cpu  0 0 0 0 0 0 0 0 0 0', ...allCpus.map((c) => `cpu${c} 0 0 0 0 0 0 0 0 0 0`)];
  fs.writeFileSync(path.join(procRoot, 'stat'), statLines.join('\n') + '\nintr 0\nctxt 0\nbtime 0\nprocesses 0\n');

  const writeThread = (pid: number, t: FakeThread): void => {
    const line = fakeStatLine(pid, t);
    const td = path.join(procRoot, String(pid), 'task', String(t.tid));
    fs.mkdirSync(td, { recursive: true });
    fs.writeFileSync(path.join(td, 'stat'), line);
    // /proc/<tid> resolves for every thread, listed or not.
    const hidden = path.join(procRoot, String(t.tid));
    fs.mkdirSync(hidden, { recursive: true });
    fs.writeFileSync(path.join(hidden, 'stat'), line);
    fs.writeFileSync(path.join(hidden, 'status'), `Name:\tworker\nState:\tS (sleeping)\nTgid:\t${pid}\nPid:\t${t.tid}\n`);
    fs.writeFileSync(path.join(hidden, 'cpuset'), '/\n');
  };

  let removed = false;
  return {
    root,
    sysRoot,
    procRoot,
    addProcess(p) {
      const d = path.join(procRoot, String(p.pid));
      fs.mkdirSync(path.join(d, 'task'), { recursive: true });
      for (const t of p.threads) writeThread(p.pid, t);
      fs.writeFileSync(path.join(d, 'numa_maps'), fakeNumaMapsLine(0x7f0000000000, p.pages ?? {}));
      fs.writeFileSync(path.join(d, 'cgroup'), '0::/\n');
    },
    setThread(pid, t) {
      writeThread(pid, t);
    },
    setPages(pid, pages) {
      fs.writeFileSync(path.join(procRoot, String(pid), 'numa_maps'), fakeNumaMapsLine(0x7f0000000000, pages));
    },
    remove() {
      if (removed) return;
      removed = true;
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
