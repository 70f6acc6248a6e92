/**
 * Section 1 — per-event cost of every BPF program, as the kernel measures it (BPF stats: run_time_ns / run_cnt),
 * under a context-switch-heavy load (`perf bench sched pipe`). An empty tp_btf program on sched_switch stays
 * attached the whole time: it is the floor (what any program on that hook costs) and its run count is the number
 * of context switches in each window. The agent, libbpf-tools runqlat and bpftrace take turns beside it, round
 * after round, and each one's programs are read by id from the process that holds them.
 */
import { BpfObject } from '../../bpf/object.js';
import { bpfObjectPath } from '../../bpf/paths.js';
import { enableBpfStats } from '../../bpf/stats.js';
import { bpftoolProgs, progDeltas, progIdOfFdinfo, type ProgDelta } from '../bpf-progs.js';
import { startAgent, startBccRunqlat, startBpftrace, type Running } from '../peers.js';
import { fmt, fmtRatio, median, ratio, spread } from '../stats.js';
import type { BenchContext, Goal, Section, Table } from '../types.js';
import { readFileSync } from 'node:fs';
import type { BarPanel } from '../chart.js';

const FLOOR_PROGRAM = 'probe_tp_btf';

interface Condition {
  id: string;
  label: string;
  ours: boolean;
  start(ctx: BenchContext, cg: { a: string; b: string }): Promise<Running>;
}

const CONDITIONS: Condition[] = [
  { id: 'agent-host', label: 'ebpf-tuner (defaults: whole host)', ours: true, start: (ctx) => startAgent(ctx.res) },
  {
    id: 'agent-targets',
    label: 'ebpf-tuner (2 targets, load outside them)',
    ours: true,
    start: (ctx, cg) =>
      startAgent(ctx.res, {
        config: {
          targets: [
            { name: 'a', role: 'protect', cgroup: cg.a },
            { name: 'b', role: 'noisy', cgroup: cg.b },
          ],
        },
      }),
  },
  { id: 'bcc', label: 'libbpf-tools runqlat', ours: false, start: (ctx) => startBccRunqlat(ctx.res) },
  { id: 'bpftrace', label: 'bpftrace runqlat', ours: false, start: (ctx) => startBpftrace(ctx.res) },
];

interface Window {
  round: number;
  condition: string;
  switches: number;
  floor: { runTimeNs: number; runCnt: number };
  programs: ProgDelta[];
}

function params(quick: boolean) {
  return { rounds: quick ? 1 : 4, loops: quick ? 20_000 : 100_000 };
}

/**
 * A program's hook: from its name when the name says (every tool here names programs after the tracepoint, up to
 * the kernel's 15 characters), else from how often it ran relative to sched_switch.
 */
export function hookOf(p: { name: string; runCnt: number }, switches: number): string {
  if (/wakeup_n/.test(p.name)) return 'sched_wakeup_new';
  if (/wakeup/.test(p.name)) return 'sched_wakeup';
  if (/switch/.test(p.name)) return 'sched_switch';
  if (p.runCnt === 0) return 'idle in this load';
  if (switches > 0 && Math.abs(p.runCnt / switches - 1) < 0.03) return 'sched_switch';
  return 'other';
}

export const bpfCost: Section = {
  id: 'bpf-cost',
  title: 'Per-event cost of every BPF program',
  steps: (quick) => params(quick).rounds * CONDITIONS.length,
  async run(ctx) {
    const { rounds, loops } = params(ctx.quick);
    const { res, progress } = ctx;
    const release = res.own('bpf-stats', enableBpfStats());
    const floorObj = BpfObject.open(bpfObjectPath('probe'));
    const closeFloor = res.own('floor-program', () => floorObj.close());
    const cg = res.makeCgroup('cost');
    const targets = { a: cg.child('a').path, b: cg.child('b').path };
    const windows: Window[] = [];
    try {
      floorObj.selectPrograms([FLOOR_PROGRAM]);
      floorObj.load();
      floorObj.attach(FLOOR_PROGRAM);
      const floorId = progIdOfFdinfo(readFileSync(`/proc/self/fdinfo/${floorObj.programFd(FLOOR_PROGRAM)}`, 'utf8'));
      if (floorId === undefined) throw new Error('read the floor program id: its fd is not a BPF program');

      for (let r = 1; r <= rounds; r++) {
        for (const c of CONDITIONS) {
          progress.step(`round ${r}/${rounds} · ${c.label}`);
          const peer = await c.start(ctx, targets);
          try {
            const ids = peer.progIds();
            const before = bpftoolProgs();
            await res.run('perf', ['bench', 'sched', 'pipe', '-l', String(loops)], { name: 'perf bench sched pipe' });
            const after = bpftoolProgs();
            const [floor] = progDeltas(before, after, [floorId]);
            if (!floor) throw new Error('read the floor program counters: it vanished from bpftool prog show');
            windows.push({
              round: r,
              condition: c.id,
              switches: floor.runCnt,
              floor: { runTimeNs: floor.runTimeNs, runCnt: floor.runCnt },
              programs: progDeltas(before, after, ids),
            });
          } finally {
            await peer.stop();
          }
          progress.tick();
        }
      }
    } finally {
      await closeFloor();
      await release();
      res.removeCgroup(cg);
    }
    return summarize(windows, { rounds, loops });
  },
};

interface ProgRow {
  condition: string;
  program: string;
  type: string;
  hook: string;
  nsPerEvent: number;
  lo: number;
  hi: number;
  eventsPerSwitch: number;
}

export function summarize(windows: Window[], p: { rounds: number; loops: number }) {
  const floorNs = median(windows.map((w) => w.floor.runTimeNs / w.floor.runCnt));
  const progRows: ProgRow[] = [];
  const perSwitch = new Map<string, number>();
  const perSwitchSpread = new Map<string, [number, number]>();
  // Only the programs on scheduler hooks: the part that does what runqlat does, comparable across tools.
  const schedSwitch = new Map<string, number>();
  const schedSwitchSpread = new Map<string, [number, number]>();
  for (const c of CONDITIONS) {
    const ws = windows.filter((w) => w.condition === c.id);
    const names = [...new Set(ws.flatMap((w) => w.programs.map((x) => x.name)))];
    for (const name of names) {
      const per = ws.flatMap((w) => w.programs.filter((x) => x.name === name && x.runCnt > 0).map((x) => ({ w, x })));
      const ns = per.map(({ x }) => x.runTimeNs / x.runCnt);
      const any = ws.flatMap((w) => w.programs.filter((x) => x.name === name))[0]!;
      const [lo, hi] = spread(ns);
      progRows.push({
        condition: c.id,
        program: name,
        type: any.type,
        hook: per.length ? hookOf(per[0]!.x, per[0]!.w.switches) : 'idle in this load',
        nsPerEvent: median(ns),
        lo,
        hi,
        eventsPerSwitch: median(per.map(({ w, x }) => x.runCnt / w.switches)),
      });
    }
    const tot = ws.map((w) => w.programs.reduce((sum, x) => sum + x.runTimeNs, 0) / w.switches);
    const sched = ws.map((w) => w.programs.filter((x) => hookOf(x, w.switches).startsWith('sched')).reduce((sum, x) => sum + x.runTimeNs, 0) / w.switches);
    perSwitch.set(c.id, median(tot));
    perSwitchSpread.set(c.id, spread(tot));
    schedSwitch.set(c.id, median(sched));
    schedSwitchSpread.set(c.id, spread(sched));
  }
  const label = (id: string): string => CONDITIONS.find((c) => c.id === id)?.label ?? id;
  const bccSwitch = schedSwitch.get('bcc') ?? NaN;
  const btSwitch = schedSwitch.get('bpftrace') ?? NaN;

  const programs: Table = {
    title: 'ns per event, per program (median over rounds; the floor is an empty tp_btf program on sched_switch)',
    columns: ['tool', 'program', 'type', 'hook', 'events / switch', 'ns / event', 'min–max', '× floor'],
    rows: [
      ['floor', FLOOR_PROGRAM, 'tracing', 'sched_switch', '1.00', fmt(floorNs), fmtSpread(spread(windows.map((w) => w.floor.runTimeNs / w.floor.runCnt))), '1.00×'],
      ...progRows.map((r) => [
        label(r.condition),
        r.program,
        r.type,
        r.hook,
        fmt(r.eventsPerSwitch, 2),
        fmt(r.nsPerEvent),
        fmtSpread([r.lo, r.hi]),
        fmtRatio(ratio(r.nsPerEvent, floorNs)),
      ]),
    ],
  };
  const tools: Table = {
    title:
      'ns per context switch, a tool\'s programs together (Σ run_time_ns / sched_switch count): those on scheduler hooks (the run-queue latency work every peer does) and all of them',
    columns: ['tool', 'sched hooks: ns / switch', 'min–max', '× floor', '× libbpf-tools runqlat', '× bpftrace', 'all programs: ns / switch', 'min–max'],
    rows: CONDITIONS.map((c) => {
      const v = schedSwitch.get(c.id) ?? NaN;
      return [
        c.label,
        fmt(v),
        fmtSpread(schedSwitchSpread.get(c.id) ?? [NaN, NaN]),
        fmtRatio(ratio(v, floorNs)),
        fmtRatio(ratio(v, bccSwitch)),
        fmtRatio(ratio(v, btSwitch)),
        fmt(perSwitch.get(c.id)),
        fmtSpread(perSwitchSpread.get(c.id) ?? [NaN, NaN]),
      ];
    }),
  };

  const ours = progRows.filter((r) => CONDITIONS.find((c) => c.id === r.condition)?.ours && r.hook.startsWith('sched'));
  const worst = ours.reduce<ProgRow | undefined>((m, r) => (m === undefined || r.nsPerEvent > m.nsPerEvent ? r : m), undefined);
  const worstRatio = worst ? ratio(worst.nsPerEvent, floorNs) : NaN;
  const agentSwitch = Math.max(schedSwitch.get('agent-host') ?? NaN, schedSwitch.get('agent-targets') ?? NaN);
  const vsBcc = ratio(agentSwitch, bccSwitch);
  const goals: Goal[] = [
    {
      goal: 'our sched programs ≤ 2× the floor (ns/event)',
      measured: worst ? `${fmtRatio(worstRatio)} (${worst.program}, ${label(worst.condition)}: ${fmt(worst.nsPerEvent)} ns vs ${fmt(floorNs)} ns)` : 'no program ran',
      met: Number.isFinite(worstRatio) ? worstRatio <= 2 : null,
    },
    {
      goal: "≤ ¼ of libbpf-tools runqlat's per-event cost (per context switch, programs on scheduler hooks)",
      measured: `${fmtRatio(vsBcc)} (${fmt(agentSwitch)} ns vs ${fmt(bccSwitch)} ns per switch; all the agent's default programs: ${fmt(Math.max(perSwitch.get('agent-host') ?? NaN, perSwitch.get('agent-targets') ?? NaN))} ns)`,
      met: Number.isFinite(vsBcc) ? vsBcc <= 0.25 : null,
    },
  ];
  const peers = CONDITIONS.filter((c) => !c.ours);
  const chart: BarPanel = {
    kind: 'bar',
    title: 'BPF cost per context switch (median; whiskers: min–max over rounds)',
    yLabel: 'ns per sched_switch',
    series: ['programs on scheduler hooks', 'all programs'],
    groups: [
      { label: 'floor (empty tp_btf)', values: [floorNs, null] },
      ...CONDITIONS.map((c) => {
        const [slo, shi] = schedSwitchSpread.get(c.id) ?? [NaN, NaN];
        const [lo, hi] = perSwitchSpread.get(c.id) ?? [NaN, NaN];
        return { label: shortLabel(c.id), values: [schedSwitch.get(c.id) ?? NaN, perSwitch.get(c.id) ?? NaN], lo: [slo, lo], hi: [shi, hi] };
      }),
    ],
  };
  const progChart: BarPanel = {
    kind: 'bar',
    title: 'ns per event, per program, × the floor',
    yLabel: '× empty tp_btf program',
    series: ['× floor'],
    legend: CONDITIONS.map((c) => c.label),
    groups: progRows
      .filter((r) => r.hook !== 'idle in this load')
      .map((r) => ({ label: r.program.replace(/_/g, ' '), values: [ratio(r.nsPerEvent, floorNs)], color: CONDITIONS.findIndex((c) => c.id === r.condition) })),
    logY: true,
    refLine: { value: 2, label: 'goal: ≤ 2× floor' },
  };
  return {
    params: p,
    tables: [programs, tools],
    goals,
    notes: [
      `Load: perf bench sched pipe -l ${p.loops}, unpinned; ${p.rounds} round(s), the four peers interleaved in each; BPF stats on (enableBpfStats) only during this section.`,
      `Peers compared: ${peers.map((c) => c.label).join(', ')}. bpftrace runs runqlat.bt's logic (tracepoint sched_wakeup/sched_wakeup_new/sched_switch, no #include).`,
      '"ebpf-tuner (defaults)" runs with no config: every default signal, aggregating every task on the host — its heaviest in-kernel path. With targets configured, tasks outside them cost one membership lookup.',
      'A program\'s hook is read from its name (sched_switch, sched_wakeup…); programs on other hooks (syscalls, block I/O, network) are listed but fire on other events, so only their ns/event compares with the floor. Programs that did not run during the load are listed as idle.',
      'Run-time accounting adds two clock reads to every program run, the floor included; ratios to the floor carry that constant.',
    ],
    charts: [chart, progChart],
    data: {
      floorNsPerEvent: floorNs,
      schedNsPerSwitch: Object.fromEntries(schedSwitch),
      perSwitchNs: Object.fromEntries(perSwitch),
      programs: progRows,
      windows,
    },
  };
}

function shortLabel(id: string): string {
  return { 'agent-host': 'ebpf-tuner (host)', 'agent-targets': 'ebpf-tuner (targets)', bcc: 'libbpf-tools', bpftrace: 'bpftrace' }[id] ?? id;
}

function fmtSpread([lo, hi]: [number, number]): string {
  return Number.isFinite(lo) ? `${fmt(lo)}–${fmt(hi)}` : '—';
}
