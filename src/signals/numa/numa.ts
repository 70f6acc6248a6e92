/**
 * NUMA signal: for each target, how its memory is spread over the nodes (/proc/<pid>/numa_maps page counts per
 * node), which nodes its threads run on (each thread's last CPU mapped through /sys/devices/system/node/node<N>/
 * cpulist, weighted by the CPU time it used since the last sample), and from those the fraction of its memory
 * accesses expected to be remote.
 *
 * numa_maps walks every mapped page of a process, so it is read every `everyTicks` ticks, not every tick, and the
 * last sample is reported in between. On a host with one node nothing is read at all: every access is local.
 *
 * Each sample also records whether the kernel's own automatic NUMA balancing (kernel.numa_balancing) is on: it moves
 * pages toward the threads that touch them, the same placement numa_rebalance changes, and the rule steps aside from
 * moving memory while it runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../core/log.js';
import type { Signal, SignalContext, Target, TargetSignals } from '../../core/types.js';
import { parseCpuList } from '../placement/cpulist.js';
import { onlineCpus, processThreads, readTaskStat, targetProcesses, type ProcRoots } from '../placement/procfs.js';

export interface NumaNode {
  id: number;
  cpus: number[];
}

export interface NumaTopology {
  /** Nodes ascending by id. */
  nodes: NumaNode[];
  /** CPU → node. */
  nodeOfCpu: Map<number, number>;
}

/**
 * Every node directory under <sysRoot>/devices/system/node with its cpulist. A kernel built without NUMA has no
 * such directory: it is one node 0 holding every online CPU.
 */
export function readTopology(roots: ProcRoots = {}): NumaTopology {
  const base = path.join(roots.sysRoot ?? '/sys', 'devices/system/node');
  const nodes: NumaNode[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(base);
  } catch {
    names = [];
  }
  for (const name of names) {
    const m = /^node(\d+)$/.exec(name);
    if (m === null) continue;
    let cpus: number[] = [];
    try {
      cpus = parseCpuList(fs.readFileSync(path.join(base, name, 'cpulist'), 'utf8'), `${base}/${name}/cpulist`);
    } catch {
      cpus = [];
    }
    nodes.push({ id: Number(m[1]), cpus });
  }
  nodes.sort((a, b) => a.id - b.id);
  if (nodes.length === 0) {
    let cpus: number[] = [];
    try {
      cpus = onlineCpus(roots);
    } catch {
      cpus = [];
    }
    nodes.push({ id: 0, cpus });
  }
  const nodeOfCpu = new Map<number, number>();
  for (const n of nodes) for (const c of n.cpus) nodeOfCpu.set(c, n.id);
  return { nodes, nodeOfCpu };
}

/**
 * The kernel's automatic NUMA balancing mode, /proc/sys/kernel/numa_balancing: 0 off, 1 normal (pages move toward
 * the threads that fault on them, tasks toward their memory), 2 memory tiering (6.0+: hot pages promoted from slow
 * nodes), 3 both. 0 when the file is missing (a kernel built without CONFIG_NUMA_BALANCING) or unreadable.
 */
export function kernelNumaBalancing(roots: ProcRoots = {}): number {
  try {
    const v = Number(fs.readFileSync(path.join(roots.procRoot ?? '/proc', 'sys/kernel/numa_balancing'), 'utf8').trim());
    return Number.isInteger(v) && v >= 0 ? v : 0;
  } catch {
    return 0;
  }
}

/** Free memory of a node in kB, from the "Node <N> MemFree: <kB> kB" line of node<N>/meminfo; undefined if absent. */
export function nodeMemFreeKb(node: number, roots: ProcRoots = {}): number | undefined {
  try {
    const text = fs.readFileSync(path.join(roots.sysRoot ?? '/sys', `devices/system/node/node${node}/meminfo`), 'utf8');
    const m = /^Node\s+\d+\s+MemFree:\s+(\d+)\s+kB/m.exec(text);
    return m !== null ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface NodeUsage {
  /** Pages per node as numa_maps counts them (a huge page is one page). */
  pages: Map<number, number>;
  /** kB per node: pages × kernelpagesize_kB of their mapping. */
  kb: Map<number, number>;
}

/**
 * Sum the N<node>=<pages> fields of numa_maps lines ("7f… default anon=3 dirty=3 N0=2 N1=1 kernelpagesize_kB=4"),
 * into `into` when given (to add up a target's processes).
 */
export function parseNumaMaps(text: string, into: NodeUsage = { pages: new Map(), kb: new Map() }): NodeUsage {
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    let pageKb = 4;
    const counts: [number, number][] = [];
    for (const f of fields) {
      if (f.startsWith('kernelpagesize_kB=')) pageKb = Number(f.slice(18)) || 4;
      else if (f.charCodeAt(0) === 78 /* N */) {
        const m = /^N(\d+)=(\d+)$/.exec(f);
        if (m !== null) counts.push([Number(m[1]), Number(m[2])]);
      }
    }
    for (const [node, n] of counts) {
      into.pages.set(node, (into.pages.get(node) ?? 0) + n);
      into.kb.set(node, (into.kb.get(node) ?? 0) + n * pageKb);
    }
  }
  return into;
}

/** What one sample says about one target. */
export interface NumaStats {
  /** Nodes on the host. */
  nodes: number;
  /** Memory per node, kB (keys are node ids). */
  memKb: Record<string, number>;
  /** Pages per node as numa_maps counts them. */
  pages: Record<string, number>;
  /** Threads per node, by the CPU each last ran on. */
  threads: Record<string, number>;
  /** The node holding most of the target's memory; -1 when it has none. */
  memNode: number;
  /** Share of the target's memory on memNode, 0..1. */
  memShare: number;
  /** The node its threads used the most CPU time on; -1 when it has no threads. */
  cpuNode: number;
  /**
   * Expected share of memory accesses that cross nodes: for each thread, the share of the target's memory not on
   * the thread's node, averaged with the CPU time each thread used since the last sample as weight (equal weights
   * when none ran).
   */
  remoteFraction: number;
  /** Memory in total, kB. */
  totalKb: number;
  /** kernel.numa_balancing when the sample was taken (0 off); see kernelNumaBalancing. */
  kernelBalancing: number;
}

export interface NumaOptions extends ProcRoots {
  /** Read numa_maps every this many ticks (≥ 1). */
  everyTicks: number;
  /** policy.numa_rebalance.move, only to say at start what kernel NUMA balancing leaves the rule to do. */
  move?: 'cpus' | 'memory';
}

export class NumaSignal implements Signal {
  readonly name = 'numa';
  private log?: Logger;
  private targets: Target[] = [];
  private topo?: NumaTopology;
  private ticks = 0;
  private readonly last = new Map<string, NumaStats>();
  /** tid → CPU ticks at the last sample, for the weights. */
  private prevTicks = new Map<number, number>();
  /** kernel.numa_balancing at the last sample, to say when someone turns it on or off. */
  private balancing = 0;

  constructor(private readonly opts: NumaOptions) {}

  start(ctx: SignalContext): void {
    this.log = ctx.log.child({ signal: this.name });
    this.targets = ctx.targets;
    this.topo = readTopology(this.opts);
    if (this.topo.nodes.length < 2) {
      // Said once here, so `run` explains the idle rule the way `check` does, instead of staying silent.
      this.log.info(
        { nodes: this.topo.nodes.length },
        'numa_rebalance has nothing to do on this host: it has one NUMA node, so every memory access is local; numa_maps is not read',
      );
      return;
    }
    this.log.info({ nodes: this.topo.nodes.length, everyTicks: this.opts.everyTicks }, 'numa sampling numa_maps');
    this.balancing = kernelNumaBalancing(this.opts);
    if (this.balancing !== 0) this.sayBalancing('on');
  }

  /**
   * Said at start and whenever kernel.numa_balancing changes, so an idle rule is explained rather than silent: the
   * kernel and the rule would otherwise move the same memory in opposite directions (it moves pages to the threads
   * while the rule, or the kernel itself, moves the threads to the pages).
   */
  private sayBalancing(how: 'on' | 'turned on' | 'turned off'): void {
    const v = this.balancing;
    if (how === 'turned off') {
      this.log?.info({ numaBalancing: v }, 'kernel NUMA balancing turned off (kernel.numa_balancing=0): numa_rebalance moves memory again where configured');
      return;
    }
    const does =
      this.opts.move === 'memory'
        ? 'numa_rebalance (move: memory) holds back and moves no memory while it runs — set kernel.numa_balancing=0 to let it'
        : 'numa_rebalance moves no memory while it runs; it still moves the CPUs of a target to memory the kernel leaves remote';
    this.log?.info(
      { numaBalancing: v },
      `kernel NUMA balancing is ${how} (kernel.numa_balancing=${v}): the kernel itself moves pages toward the threads that touch them, so ${does}`,
    );
  }

  updateTargets(targets: Target[]): void {
    this.targets = targets;
    for (const k of [...this.last.keys()]) if (!targets.some((t) => t.name === k)) this.last.delete(k);
  }

  collect(_now: number, out: Record<string, TargetSignals>): void {
    const topo = this.topo;
    if (topo === undefined) return;
    // One node: every access is local, and nothing is worth reading.
    if (topo.nodes.length < 2) return;
    if (this.ticks++ % Math.max(1, this.opts.everyTicks) === 0) {
      const balancing = kernelNumaBalancing(this.opts);
      if (balancing !== this.balancing) {
        this.balancing = balancing;
        this.sayBalancing(balancing === 0 ? 'turned off' : 'turned on');
      }
      const seen = new Map<number, number>();
      for (const t of this.targets) {
        this.last.set(t.name, { ...sampleNuma(t, topo, this.opts, this.prevTicks, seen), kernelBalancing: balancing });
      }
      this.prevTicks = seen;
    }
    for (const t of this.targets) {
      const s = this.last.get(t.name);
      if (s === undefined) continue;
      const sig = (out[t.name] ??= { name: t.name, role: t.role });
      sig.numa = s;
    }
  }

  close(): void {
    this.topo = undefined;
    this.last.clear();
  }
}

/**
 * One target's NUMA picture now. `prevTicks` holds each thread's CPU ticks at the previous sample; this sample's
 * are added to `seen`.
 */
export function sampleNuma(
  target: Target,
  topo: NumaTopology,
  roots: ProcRoots,
  prevTicks: ReadonlyMap<number, number> = new Map(),
  seen: Map<number, number> = new Map(),
): NumaStats {
  const usage: NodeUsage = { pages: new Map(), kb: new Map() };
  const weights = new Map<number, number>();
  const threadCount = new Map<number, number>();
  const procRoot = roots.procRoot ?? '/proc';
  for (const pid of targetProcesses(target)) {
    try {
      parseNumaMaps(fs.readFileSync(path.join(procRoot, String(pid), 'numa_maps'), 'utf8'), usage);
    } catch {
      continue; // exited since it was listed
    }
    for (const tid of processThreads(pid, roots)) {
      const st = readTaskStat(tid, roots);
      if (st === undefined) continue;
      const node = topo.nodeOfCpu.get(st.processor);
      if (node === undefined) continue;
      seen.set(tid, st.cpuTicks);
      threadCount.set(node, (threadCount.get(node) ?? 0) + 1);
      const prev = prevTicks.get(tid);
      const used = prev !== undefined ? Math.max(0, st.cpuTicks - prev) : 0;
      weights.set(node, (weights.get(node) ?? 0) + used);
    }
  }
  return summarizeNuma(topo.nodes.length, usage, threadCount, weights);
}

/** The pure part: memory per node, threads per node and CPU time per node → NumaStats. */
export function summarizeNuma(
  nodes: number,
  usage: NodeUsage,
  threadCount: ReadonlyMap<number, number>,
  cpuWeight: ReadonlyMap<number, number>,
  kernelBalancing = 0,
): NumaStats {
  let totalKb = 0;
  for (const v of usage.kb.values()) totalKb += v;
  const byKey = <T>(m: ReadonlyMap<number, T>): Record<string, T> =>
    Object.fromEntries([...m].sort((a, b) => a[0] - b[0]).map(([k, v]) => [String(k), v]));
  const argmax = (m: ReadonlyMap<number, number>): number => {
    let best = -1;
    let bv = -Infinity;
    for (const [k, v] of [...m].sort((a, b) => a[0] - b[0])) {
      if (v > bv) {
        best = k;
        bv = v;
      }
    }
    return best;
  };
  const memNode = totalKb > 0 ? argmax(usage.kb) : -1;
  const memShare = totalKb > 0 ? (usage.kb.get(memNode) ?? 0) / totalKb : 0;
  let wsum = 0;
  for (const v of cpuWeight.values()) wsum += v;
  // Without CPU time in the window, each thread counts once.
  const w = wsum > 0 ? cpuWeight : threadCount;
  let wtotal = 0;
  let remote = 0;
  for (const [node, weight] of w) {
    wtotal += weight;
    remote += weight * (totalKb > 0 ? 1 - (usage.kb.get(node) ?? 0) / totalKb : 0);
  }
  return {
    nodes,
    memKb: byKey(usage.kb),
    pages: byKey(usage.pages),
    threads: byKey(threadCount),
    memNode,
    memShare,
    cpuNode: w.size > 0 ? argmax(w) : -1,
    remoteFraction: wtotal > 0 ? remote / wtotal : 0,
    totalKb,
    kernelBalancing,
  };
}

// This signal's part of each tick snapshot, declared beside the signal so the snapshot's type grows with the list of
// signals and readers need no casts.
declare module '../../core/types.js' {
  interface TargetSignals {
    numa?: NumaStats;
  }
}
