/**
 * Section 2 — end-to-end overhead: how much slower context-switch-bound workloads run while each observer is
 * attached. Conditions (no observer, the agent with its defaults, libbpf-tools runqlat, bpftrace) are interleaved
 * within every round so slow drift on a shared machine hits all of them alike; each value is the median over
 * rounds and each ratio is against "no observer". The pinned pipe run is the one that separates the conditions:
 * unpinned runs vary by several percent from run to run on their own.
 */
import { startAgent, startBccRunqlat, startBpftrace, type Running } from '../peers.js';
import { fmt, fmtChange, fmtRatio, median, ratio, spread } from '../stats.js';
import type { BarPanel } from '../chart.js';
import type { BenchContext, Goal, Section, Table } from '../types.js';
import { messagingWorkload, pipeWorkload, type Workload } from '../workloads.js';

interface Condition {
  id: string;
  label: string;
  start?(ctx: BenchContext): Promise<Running>;
}

const CONDITIONS: Condition[] = [
  { id: 'none', label: 'no observer' },
  { id: 'agent', label: 'ebpf-tuner (defaults, 1 s tick)', start: (ctx) => startAgent(ctx.res) },
  { id: 'bcc', label: 'libbpf-tools runqlat', start: (ctx) => startBccRunqlat(ctx.res) },
  { id: 'bpftrace', label: 'bpftrace runqlat', start: (ctx) => startBpftrace(ctx.res) },
];

export const PINNED_CPU = 0;

function params(quick: boolean) {
  return quick
    ? { rounds: 1, pinnedLoops: 20_000, pipeLoops: 20_000, messagingLoops: 10, messagingGroups: 5 }
    : // Unpinned pipe costs ~6 µs/op on a busy host but ~50 µs/op on an idle one (every hand-off wakes an idle vCPU),
      // so its loop count is what bounds the section's time.
      { rounds: 4, pinnedLoops: 300_000, pipeLoops: 50_000, messagingLoops: 150, messagingGroups: 10 };
}

function workloads(p: ReturnType<typeof params>): Workload[] {
  return [pipeWorkload(p.pinnedLoops, PINNED_CPU), pipeWorkload(p.pipeLoops), messagingWorkload(p.messagingLoops, p.messagingGroups)];
}

interface Sample {
  round: number;
  condition: string;
  workload: string;
  value: number;
}

export const overhead: Section = {
  id: 'overhead',
  title: 'End-to-end overhead on context-switch-heavy workloads',
  steps: (quick) => params(quick).rounds * CONDITIONS.length,
  async run(ctx) {
    const p = params(ctx.quick);
    const wls = workloads(p);
    const samples: Sample[] = [];
    for (let r = 1; r <= p.rounds; r++) {
      for (const c of CONDITIONS) {
        ctx.progress.step(`round ${r}/${p.rounds} · ${c.label}`);
        const peer = c.start ? await c.start(ctx) : undefined;
        try {
          for (const w of wls) {
            ctx.progress.status(`round ${r}/${p.rounds} · ${c.label} · ${w.label}`);
            samples.push({ round: r, condition: c.id, workload: w.id, value: await w.run(ctx.res) });
          }
        } finally {
          await peer?.stop();
        }
        ctx.progress.tick();
      }
    }
    return summarize(samples, wls, p);
  },
};

export function summarize(samples: Sample[], wls: Workload[], p: Record<string, unknown>) {
  const med = (c: string, w: string): number => median(samples.filter((s) => s.condition === c && s.workload === w).map((s) => s.value));
  const table: Table = {
    title: 'median over rounds (µs/op for pipe, s total for messaging) and the ratio to no observer',
    columns: ['workload', ...CONDITIONS.flatMap((c) => (c.id === 'none' ? [c.label] : [c.label, 'vs none']))],
    rows: wls.map((w) => {
      const base = med('none', w.id);
      return [
        `${w.label} [${w.unit}]`,
        ...CONDITIONS.flatMap((c) => {
          const v = med(c.id, w.id);
          return c.id === 'none' ? [fmt(v, 3)] : [fmt(v, 3), `${fmtRatio(ratio(v, base), 3)} (${fmtChange(ratio(v, base))})`];
        }),
      ];
    }),
  };
  const pinned = wls[0]!;
  const agentPinned = ratio(med('agent', pinned.id), med('none', pinned.id));
  const goals: Goal[] = [
    {
      goal: 'pinned pipe slowdown ≤ 5% with the agent\'s default signals',
      measured: `${fmtChange(agentPinned)} (${fmt(med('agent', pinned.id), 3)} vs ${fmt(med('none', pinned.id), 3)} µs/op)`,
      met: Number.isFinite(agentPinned) ? agentPinned <= 1.05 : null,
    },
  ];
  // Whiskers: every round's value over the median of "none", so the spread of the baseline itself shows too.
  const chart: BarPanel = {
    kind: 'bar',
    title: 'Workload time relative to no observer (median; whiskers: min–max over rounds)',
    yLabel: '× no observer (lower is better)',
    series: CONDITIONS.map((c) => c.label),
    groups: wls.map((w) => {
      const base = med('none', w.id);
      const per = CONDITIONS.map((c) => spread(samples.filter((s) => s.condition === c.id && s.workload === w.id).map((s) => s.value / base)));
      return {
        label: w.label,
        values: CONDITIONS.map((c) => ratio(med(c.id, w.id), base)),
        lo: per.map((x) => x[0]),
        hi: per.map((x) => x[1]),
      };
    }),
    refLine: { value: 1.05, label: '+5%' },
    digits: 3,
  };
  return {
    params: p,
    tables: [table],
    goals,
    notes: [
      `${p.rounds} round(s); in each, every condition runs all three workloads in turn (observer started before, stopped after).`,
      'The agent runs with no config: its default signals and tick, observing every task on the host (its heaviest in-kernel path).',
      'Unpinned pipe and messaging vary by several percent between runs of the same condition on this 2-vCPU machine; read them with the min–max whiskers.',
    ],
    charts: [chart],
    data: { samples, medians: Object.fromEntries(wls.map((w) => [w.id, Object.fromEntries(CONDITIONS.map((c) => [c.id, med(c.id, w.id)]))])) },
  };
}
