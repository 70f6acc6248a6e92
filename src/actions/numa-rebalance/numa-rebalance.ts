/**
 * numa_rebalance: bring a target's CPUs and its memory onto the same NUMA node, through its cpuset cgroup.
 *
 *   - `{ cpusNode: N }` — move the CPUs to the memory: `cpuset.cpus` becomes node N's CPUs (those the parent
 *     cpuset allows). Cheap and fully reversible: the original list is journaled and put back on revert.
 *   - `{ memNode: N }` — move the memory to the CPUs: `cpuset.mems` becomes N (new allocations land there), and
 *     migrate_pages(2) moves each process's existing pages to N. The mems are journaled and put back on revert;
 *     pages already moved stay where they are (they are on a node the original mems allowed too, so nothing is
 *     left out of bounds, and moving gigabytes back would cost as much again). Refused while the kernel's automatic
     NUMA balancing is on (kernel.numa_balancing ≠ 0): the kernel moves pages itself, and two movers would race.
 *
 * A restore puts every journaled original back, even one that names values (`restoresFromJournal`).
 *
 * The cpuset cgroup is the target's own directory on v2, the same relative path under the v1 cpuset hierarchy on
 * v1 and hybrid hosts. Topology comes from /sys/devices/system/node; every root is injectable for tests.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TunerError, isTunerError } from '../../core/errors.js';
import type { KnobRef, Target } from '../../core/types.js';
import { kernelKnobIO, normalizeKnobValue, type KnobIO } from '../../cgroup/cgroup.js';
import { detectLayout, type CgroupLayout } from '../../cgroup/layout.js';
import type { RestoreItem } from '../../journal/restore.js';
import { formatCpuList, parseCpuList } from '../../signals/placement/cpulist.js';
import {
  effectiveCpusFile,
  effectiveMemsFile,
  readTaskStat,
  targetProcesses,
  type ProcRoots,
} from '../../signals/placement/procfs.js';
import { kernelNumaBalancing, nodeMemFreeKb, parseNumaMaps, readTopology, type NodeUsage } from '../../signals/numa/numa.js';
import { applyResult, type Action, type ActionPlan, type ApplyResult, type Desired } from '../action.js';
import { affinityKnobPath } from '../cpuset-spread/affinity.js';
import { cpusetDirOf, cpusetVersionOf } from '../cpuset-spread/cpuset-spread.js';
import type { KnobWriter } from '../knob-writer.js';
import { migratePages } from './migrate.js';

export const NUMA_REBALANCE = 'numa_rebalance';

export interface NumaRebalanceOptions extends ProcRoots {
  /** Cgroup file reads; the writer does the writes. */
  io?: KnobIO;
  /** Probed on first use when absent. */
  layout?: CgroupLayout;
  /** Injectable so the page move can be observed in tests; migrate_pages(2) by default. */
  migrate?: (pid: number, from: readonly number[], to: readonly number[]) => number;
  /**
   * Refuse to move memory onto a node with less free memory than this many times what would move there, so the
   * move cannot push the node into reclaim. Default 1.25.
   */
  headroom?: number;
}

/** The node holding every CPU (or node id) of `ids`, or -1 when they span nodes or are unknown. */
function singleNode(ids: readonly number[], nodeOf: (id: number) => number | undefined): number {
  let node: number | undefined;
  for (const id of ids) {
    const n = nodeOf(id);
    if (n === undefined || (node !== undefined && n !== node)) return -1;
    node = n;
  }
  return node ?? -1;
}

export function createNumaRebalanceAction(opts: NumaRebalanceOptions = {}): Action {
  const io = opts.io ?? kernelKnobIO;
  const migrate = opts.migrate ?? migratePages;
  const headroom = opts.headroom ?? 1.25;
  let layout = opts.layout;
  const lay = (): CgroupLayout => (layout ??= detectLayout());
  /** apply() sees only the plan; the target whose pages a memNode plan moves is kept beside it. */
  const movesPagesOf = new WeakMap<ActionPlan, Target>();

  const dirOf = (target: Target, verb: string): string => {
    const dir = cpusetDirOf(target, lay);
    if (dir === undefined) {
      throw new TunerError(
        'CGROUP_UNSUPPORTED',
        `${verb} ${NUMA_REBALANCE} for target ${target.name}: ${target.scope.kind === 'pids' ? 'a pid-list target has no cpuset cgroup' : 'it has no cpuset cgroup'} — give it a cgroup with the cpuset controller (v2: +cpuset in the parent's cgroup.subtree_control; v1: the same path under the cpuset hierarchy)`,
      );
    }
    return dir;
  };

  const knobsOf = (target: Target, verb: string): { cpus: KnobRef; mems: KnobRef; dir: string } => {
    const dir = dirOf(target, verb);
    const ref = (file: string): KnobRef => {
      const p = path.join(dir, file);
      return { id: `${NUMA_REBALANCE}:${p}`, path: p, target: target.name };
    };
    return { cpus: ref('cpuset.cpus'), mems: ref('cpuset.mems'), dir };
  };

  /** A cpuset list file, or its effective twin when it is empty (a v2 cpuset inheriting its parent's). */
  const listOf = (dir: string, file: 'cpus' | 'mems'): { raw: string; ids: number[] } => {
    const p = path.join(dir, `cpuset.${file}`);
    const raw = io.read(p);
    let ids = parseCpuList(raw, p);
    if (ids.length === 0) {
      const v = cpusetVersionOf(dir, lay());
      const eff = path.join(dir, file === 'cpus' ? effectiveCpusFile(v) : effectiveMemsFile(v));
      ids = parseCpuList(io.read(eff), eff);
    }
    return { raw, ids };
  };

  const parentEffective = (dir: string, file: 'cpus' | 'mems'): number[] => {
    const parent = path.dirname(dir);
    const v = cpusetVersionOf(parent, lay());
    const eff = path.join(parent, file === 'cpus' ? effectiveCpusFile(v) : effectiveMemsFile(v));
    return parseCpuList(io.read(eff), eff);
  };

  const usageOf = (target: Target): NodeUsage => {
    const usage: NodeUsage = { pages: new Map(), kb: new Map() };
    for (const pid of targetProcesses(target)) {
      try {
        parseNumaMaps(fs.readFileSync(path.join(opts.procRoot ?? '/proc', String(pid), 'numa_maps'), 'utf8'), usage);
      } catch {
        // exited since it was listed
      }
    }
    return usage;
  };

  const fail = (target: Target, msg: string): TunerError =>
    new TunerError('ACTION_FAILED', `plan ${NUMA_REBALANCE} for target ${target.name}: ${msg}`);

  const revert = (target: Target, writer: KnobWriter): RestoreItem[] => {
    const r = writer.restoreAll((e) => e.action === NUMA_REBALANCE && e.target === target.name);
    return [...r.restored, ...r.overridden, ...r.vanished, ...r.failed];
  };

  return {
    name: NUMA_REBALANCE,
    // Node ids (MAX_NUMNODES is 1024). Nodes are not ordered, so there is no step to bound: one nudge homes a target.
    bounds: { cpusNode: { min: 0, max: 1023 }, memNode: { min: 0, max: 1023 } },

    knobs(target: Target): KnobRef[] {
      const k = knobsOf(target, 'list knobs of');
      return [k.cpus, k.mems];
    },

    read(target: Target): Record<string, number> {
      const dir = dirOf(target, 'read');
      const topo = readTopology(opts);
      return {
        cpusNode: singleNode(listOf(dir, 'cpus').ids, (c) => topo.nodeOfCpu.get(c)),
        memNode: singleNode(listOf(dir, 'mems').ids, (n) => (topo.nodes.some((x) => x.id === n) ? n : undefined)),
      };
    },

    plan(target: Target, desired: Desired): ActionPlan {
      const { cpusNode, memNode } = desired;
      if ((cpusNode === undefined) === (memNode === undefined)) {
        throw fail(target, `desired must hold exactly one of cpusNode and memNode, got ${JSON.stringify(desired)}`);
      }
      const key = cpusNode !== undefined ? 'cpusNode' : 'memNode';
      const node = cpusNode ?? memNode;
      if (typeof node !== 'number' || !Number.isInteger(node) || node < 0) {
        throw fail(target, `desired.${key} must be a node number, got ${JSON.stringify(node)}`);
      }
      const topo = readTopology(opts);
      const n = topo.nodes.find((x) => x.id === node);
      if (n === undefined) {
        throw fail(target, `node ${node} does not exist (nodes: ${formatCpuList(topo.nodes.map((x) => x.id)) || 'none'})`);
      }
      const k = knobsOf(target, 'plan');
      const notes: string[] = [];
      if (key === 'cpusNode') {
        const allowed = new Set(parentEffective(k.dir, 'cpus'));
        const cpus = n.cpus.filter((c) => allowed.has(c));
        if (cpus.length === 0) {
          throw fail(target, `node ${node} has no CPU its parent cpuset allows (${formatCpuList([...allowed])})`);
        }
        if (cpus.length < n.cpus.length) notes.push(`node ${node} CPUs limited to ${formatCpuList(cpus)} by the parent cpuset`);
        const { raw } = listOf(k.dir, 'cpus');
        const to = formatCpuList(cpus);
        return {
          action: NUMA_REBALANCE,
          target: target.name,
          desired: { cpusNode: node },
          changes: normalizeKnobValue(raw) === to ? [] : [{ knob: k.cpus, from: raw, to }],
          notes,
        };
      }
      // Whatever proposed it, a page move while the kernel moves pages itself would race it: refuse, saying how to
      // hand the placement over.
      const balancing = kernelNumaBalancing(opts);
      if (balancing !== 0) {
        throw fail(
          target,
          `the kernel's automatic NUMA balancing is on (kernel.numa_balancing=${balancing}) and moves pages itself; a second mover would race it — fix: sysctl kernel.numa_balancing=0 to let numa_rebalance move memory, or move: cpus`,
        );
      }
      const allowedMems = parentEffective(k.dir, 'mems');
      if (!allowedMems.includes(node)) {
        throw fail(target, `node ${node} is outside the memory nodes its parent cpuset allows (${formatCpuList(allowedMems)})`);
      }
      const usage = usageOf(target);
      let moving = 0;
      for (const [nd, kb] of usage.kb) if (nd !== node) moving += kb;
      const free = nodeMemFreeKb(node, opts);
      if (free !== undefined && moving * headroom > free) {
        throw fail(
          target,
          `node ${node} has ${Math.round(free / 1024)} MiB free, too little for the ${Math.round(moving / 1024)} MiB that would move there (× ${headroom} headroom)`,
        );
      }
      if (moving > 0) notes.push(`moves ${Math.round(moving / 1024)} MiB of pages to node ${node}`);
      const { raw } = listOf(k.dir, 'mems');
      const to = String(node);
      const plan: ActionPlan = {
        action: NUMA_REBALANCE,
        target: target.name,
        desired: { memNode: node },
        changes: normalizeKnobValue(raw) === to ? [] : [{ knob: k.mems, from: raw, to }],
        notes,
      };
      movesPagesOf.set(plan, target);
      return plan;
    },

    apply(plan: ActionPlan, writer: KnobWriter): ApplyResult {
      const results = plan.changes.map((c) => writer.set(c.knob, NUMA_REBALANCE, c.to));
      const node = plan.desired.memNode;
      const target = movesPagesOf.get(plan);
      if (typeof node === 'number' && target !== undefined && !results.some((r) => r.status === 'overridden')) {
        const all = readTopology(opts).nodes.map((x) => x.id);
        for (const pid of targetProcesses(target)) {
          const st = readTaskStat(pid, opts);
          if (st === undefined) continue;
          // Page moves are no knob, but they obey the same scope: the process must be in a target, outside the deny list.
          try {
            writer.checkScope(affinityKnobPath({ tid: pid, starttime: st.starttime }));
            if (!writer.dryRun) migrate(pid, all, [node]);
          } catch (e) {
            // Exited since it was listed: nothing left to move.
            if (!isTunerError(e, 'PID_NOT_FOUND')) throw e;
          }
        }
      }
      return applyResult(plan, results);
    },

    revert,
    restoresFromJournal: true,
  };
}

export const numaRebalance: Action = createNumaRebalanceAction();
