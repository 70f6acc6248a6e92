/**
 * The "memory far from its CPUs" rule: when most of a protect target's memory sits on one NUMA node while its
 * threads do their work on another, bring the two together with numa_rebalance — by default by moving the CPUs to
 * the memory (cpuset.cpus, cheap and reversible), or, when configured, the memory to the CPUs (cpuset.mems and
 * migrate_pages). Once the memory is no longer concentrated on the node the target was homed to, the original
 * placement is put back.
 *
 * Hot and calm are different conditions on purpose: homing the target removes the remote accesses, so "no remote
 * accesses" would undo every fix. Calm is "the memory has no home any more" (its largest share fell well below the
 * dominance that triggered the move), and between the two the change holds. On a host with one node the NUMA
 * signal reports nothing, and the rule never fires.
 *
 * While the kernel's own NUMA balancing is on (kernel.numa_balancing ≠ 0) the rule moves no memory: the kernel
 * migrates pages toward the threads that fault on them and tasks toward their memory, so a second mover of pages
 * would race it (the rule moving pages to the threads while the kernel moves the threads to the pages). Moving the
 * CPUs stays allowed: a cpuset is a bound the kernel's balancer honours, and the placement it leads to (threads on
 * the node of their memory) is the one the kernel converges to itself; it only fires where the kernel has left the
 * memory remote for trigger_ticks samples (memory it may not move, as under an MPOL_BIND policy).
 */
import type { NumaRebalancePolicy } from '../../config/types.js';
import type { TickSnapshot } from '../../core/types.js';
import type { NumaStats } from '../../signals/numa/numa.js';
import { formatPercent } from '../format.js';
import { restoreNudge, type DecideInput, type Strategy, type StrategyNudge } from '../strategy.js';
import { recallNothing, recallSignal, streak } from './common.js';

export const NUMA_REBALANCE_RULE = 'numa-rebalance';
export const NUMA_REBALANCE_ACTION = 'numa_rebalance';

export class NumaRebalanceRule implements Strategy {
  readonly name = NUMA_REBALANCE_RULE;
  readonly historyTicks: number;
  readonly #policy: NumaRebalancePolicy;

  constructor(policy: NumaRebalancePolicy) {
    this.#policy = policy;
    this.historyTicks = Math.max(policy.triggerTicks, policy.calmTicks) - 1;
  }

  /** Streaks look back at the protect targets' NUMA placement only. */
  recall(snapshot: TickSnapshot): TickSnapshot {
    if (!this.#policy.enabled) return recallNothing(snapshot);
    return recallSignal(snapshot, 'numa', (t) => t.role === 'protect');
  }

  /** Memory homed on one node while the threads mostly run elsewhere. */
  #far(s: TickSnapshot, name: string): boolean {
    const p = this.#policy;
    const n = numa(s, name);
    return (
      n !== undefined &&
      n.nodes >= 2 &&
      n.totalKb >= p.minMemoryMb * 1024 &&
      n.memShare >= p.dominance &&
      n.remoteFraction >= p.remoteThreshold
    );
  }

  /** The memory has no home node any more (or the target has no memory to place). */
  #calm(s: TickSnapshot, name: string): boolean {
    const n = numa(s, name);
    return n === undefined || n.totalKb === 0 || n.memShare < this.#policy.dominance * this.#policy.calmFraction;
  }

  decide(input: DecideInput): StrategyNudge[] {
    const p = this.#policy;
    if (!p.enabled) return [];
    const out: StrategyNudge[] = [];
    const protect = input.targets.filter((t) => t.role === 'protect').map((t) => t.name).sort();
    for (const name of protect) {
      const hot = streak(input, p.triggerTicks, (s) => this.#far(s, name));
      if (hot >= p.triggerTicks) {
        const n = this.#step(input, name, hot);
        if (n !== undefined) out.push(n);
        continue;
      }
      if (!input.changed(name, NUMA_REBALANCE_ACTION)) continue;
      if (streak(input, p.calmTicks, (s) => this.#calm(s, name)) < p.calmTicks) continue;
      const n = numa(input.snapshot, name);
      out.push(
        restoreNudge({
          action: NUMA_REBALANCE_ACTION,
          target: name,
          reason:
            `calm: ${name}'s memory has had no home node (largest share < ${formatPercent(p.dominance * p.calmFraction)}) ` +
            `for ${p.calmTicks} ticks${n !== undefined ? ` (now ${formatPercent(n.memShare)} on node ${n.memNode})` : ''}; restoring its original cpuset`,
          rule: NUMA_REBALANCE_RULE,
          evidence: { calmTicks: p.calmTicks, memShare: n?.memShare ?? 0 },
          expected: `${name} runs on its original cpuset without a home node to favour`,
        }),
      );
    }
    return out;
  }

  #step(input: DecideInput, name: string, hot: number): StrategyNudge | undefined {
    const p = this.#policy;
    const n = numa(input.snapshot, name)!;
    const current = input.current(name, NUMA_REBALANCE_ACTION);
    if (current === undefined) return undefined;
    const mib = Math.round(n.totalKb / 1024);
    const why =
      `${formatPercent(n.memShare)} of ${name}'s ${mib} MiB is on node ${n.memNode} while its threads run mostly on node ` +
      `${n.cpuNode}: ${formatPercent(n.remoteFraction)} of its accesses are remote (≥ ${formatPercent(p.remoteThreshold)}) for ${hot} ticks`;
    const evidence: Record<string, number> = {
      memShare: n.memShare,
      memNode: n.memNode,
      cpuNode: n.cpuNode,
      remoteFraction: n.remoteFraction,
      memoryMb: mib,
      hotTicks: hot,
    };
    let desired: Record<string, number>;
    let move: string;
    if (p.move === 'memory') {
      // The kernel moves pages itself (see the module comment); the signal said so when it noticed.
      if (n.kernelBalancing > 0) return undefined;
      if (n.cpuNode < 0 || n.cpuNode === n.memNode || current.memNode === n.cpuNode) return undefined;
      desired = { memNode: n.cpuNode };
      move = `moving its memory to node ${n.cpuNode} (cpuset.mems and migrate_pages)`;
    } else {
      if (n.memNode < 0 || current.cpusNode === n.memNode) return undefined;
      desired = { cpusNode: n.memNode };
      move = `moving its CPUs to node ${n.memNode} (cpuset.cpus)`;
    }
    return {
      kind: 'set',
      action: NUMA_REBALANCE_ACTION,
      target: name,
      desired,
      reason: `${why}; ${move}`,
      rule: NUMA_REBALANCE_RULE,
      evidence,
      expected: `${name}'s threads and memory share a node, and its remote fraction falls toward 0`,
      objective: { targets: [name], metric: 'numa.remoteFraction', better: 'lower', baselineTicks: p.triggerTicks },
    };
  }
}

function numa(s: TickSnapshot, name: string): NumaStats | undefined {
  return s.targets[name]?.numa;
}

