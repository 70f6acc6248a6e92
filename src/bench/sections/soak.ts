/**
 * Section 7 — does the agent's memory level off under target churn? The agent runs as deployed (default signals,
 * 1 s tick) with targets that keep changing underneath it: cgroups appear and vanish under a `cgroup_pattern`
 * target, each with a short-lived process; a `comm` and a `pidfile` target's processes restart; and the plain
 * cgroup targets are swapped by rewriting the config file and sending SIGHUP, as an operator would. Its VmRSS
 * (/proc/<pid>/status) and open fds (/proc/<pid>/fd) are sampled throughout; the slopes per hour are least-squares
 * fits over the second half of the run, after warm-up.
 */
import { copyFileSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startAgent, type AgentTarget, type RunningAgent } from '../peers.js';
import { removeCgroupTree } from '../../cgroup/cgroup.js';
import type { BenchCgroup, Proc } from '../resources.js';
import { fmt } from '../stats.js';
import type { ChartPanel } from '../chart.js';
import type { BenchContext, Goal, Section, Table } from '../types.js';
import { statusKb } from './agent-cost.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The project's memory budget for the agent (README, "agent RSS ≤ 100 MiB"). */
const RSS_BUDGET_MIB = 100;
/** Below this many MiB per hour RSS counts as level whatever the noise (≈ 24 MiB a day). */
const LEVEL_MIB_PER_HOUR = 1;
/** A comm target's process name: a copy of sleep(1) under this name (at most 15 characters, as /proc/<pid>/comm). */
const COMM = 'ebt-soak-comm';

export const DEFAULT_SOAK_SECONDS = 600;

function params(quick: boolean, seconds: number | undefined) {
  return quick
    ? { durationS: seconds ?? 20, sampleS: 1, cycleS: 1, patternLifeS: 2, reloadEveryCycles: 5 }
    : { durationS: seconds ?? DEFAULT_SOAK_SECONDS, sampleS: 5, cycleS: 2, patternLifeS: 5, reloadEveryCycles: 15 };
}

export interface Sample {
  /** Seconds since the agent was ready. */
  t: number;
  rssMiB: number;
  /** The anonymous part of VmRSS (RssAnon): the heap, the allocator's arenas, stacks — the agent's own memory. */
  anonMiB: number;
  /** The file-backed part (RssFile): the node executable and libraries paged in from disk; clean, shared, reclaimable. */
  fileMiB: number;
  fds: number;
  /** V8 heap in use after the latest full (mark-compact) GC so far, from --trace-gc; NaN before the first. */
  heapMiB: number;
}

/** The heap in use after a full GC, in MiB (V8's --trace-gc writes MB for 2^20 bytes) ("Mark-Compact 40.1 (45.2) -> 35.2 (46.0) MB"). */
export function heapAfterFullGc(line: string): number | undefined {
  const m = /(?:Mark-Compact|Mark-sweep)[^\d]*[\d.]+ \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB/.exec(line);
  return m ? Number(m[1]) : undefined;
}

export interface Churn {
  cgroupsCreated: number;
  cgroupsRemoved: number;
  processesStarted: number;
  processesEnded: number;
  reloads: number;
}

/** Least-squares slope with its standard error, over (x, y) pairs. */
export interface SlopeFit {
  slope: number;
  stderr: number;
  n: number;
}

export function fitSlope(xs: readonly number[], ys: readonly number[]): SlopeFit {
  const n = Math.min(xs.length, ys.length);
  if (n < 3) return { slope: NaN, stderr: NaN, n };
  const mx = xs.slice(0, n).reduce((a, b) => a + b, 0) / n;
  const my = ys.slice(0, n).reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i]! - mx) ** 2;
    sxy += (xs[i]! - mx) * (ys[i]! - my);
  }
  if (sxx === 0) return { slope: NaN, stderr: NaN, n };
  const slope = sxy / sxx;
  let sse = 0;
  for (let i = 0; i < n; i++) sse += (ys[i]! - (my + slope * (xs[i]! - mx))) ** 2;
  return { slope, stderr: Math.sqrt(sse / (n - 2) / sxx), n };
}

/** Slopes per hour over the samples from half the run on (the first half is warm-up: JIT, caches, heap growth). */
export function analyse(samples: Sample[], durationS: number) {
  const late = samples.filter((s) => s.t >= durationS / 2);
  const early = samples.filter((s) => s.t < durationS / 2);
  const perHour = (f: SlopeFit): SlopeFit => ({ slope: f.slope * 3600, stderr: f.stderr * 3600, n: f.n });
  const rss = perHour(fitSlope(late.map((s) => s.t), late.map((s) => s.rssMiB)));
  const heapLate = late.filter((s) => Number.isFinite(s.heapMiB));
  const heap = perHour(fitSlope(heapLate.map((s) => s.t), heapLate.map((s) => s.heapMiB)));
  const heapValues = samples.map((s) => s.heapMiB).filter(Number.isFinite);
  const rssEarly = perHour(fitSlope(early.map((s) => s.t), early.map((s) => s.rssMiB)));
  const fd = perHour(fitSlope(late.map((s) => s.t), late.map((s) => s.fds)));
  const rssValues = samples.map((s) => s.rssMiB);
  const part = (pick: (s: Sample) => number) => {
    const values = samples.map(pick).filter(Number.isFinite);
    return {
      start: values[0] ?? NaN,
      end: values[values.length - 1] ?? NaN,
      max: values.length ? Math.max(...values) : NaN,
      slope: perHour(fitSlope(late.map((s) => s.t), late.map(pick))),
    };
  };
  const fdValues = samples.map((s) => s.fds);
  // Level: the late slope is within noise of zero (under two standard errors), or too small to matter.
  const level = (f: SlopeFit, floor: number): boolean | null =>
    Number.isFinite(f.slope) ? f.slope <= floor || f.slope <= 2 * f.stderr : null;
  return {
    rss,
    rssEarly,
    heap,
    heapStart: heapValues[0] ?? NaN,
    heapEnd: heapValues[heapValues.length - 1] ?? NaN,
    heapMax: heapValues.length ? Math.max(...heapValues) : NaN,
    fd,
    rssStart: rssValues[0] ?? NaN,
    rssEnd: rssValues[rssValues.length - 1] ?? NaN,
    rssMax: rssValues.length ? Math.max(...rssValues) : NaN,
    anon: part((s) => s.anonMiB),
    file: part((s) => s.fileMiB),
    fdStart: fdValues[0] ?? NaN,
    fdEnd: fdValues[fdValues.length - 1] ?? NaN,
    fdMax: fdValues.length ? Math.max(...fdValues) : NaN,
    rssLevel: level(rss, LEVEL_MIB_PER_HOUR),
    fdLevel: level(fd, 0),
  };
}

/** Samples the agent's /proc files, and the latest full-GC heap size among its output lines since the last sample. */
function sampler(agent: RunningAgent): (t: number) => Sample {
  let seen = 0;
  let heapMiB = NaN;
  return (t) => {
    const lines = agent.proc.lines;
    for (; seen < lines.length; seen++) heapMiB = heapAfterFullGc(lines[seen]!) ?? heapMiB;
    const pid = agent.proc.pid;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return {
      t,
      rssMiB: statusKb(status, 'VmRSS') / 1024,
      anonMiB: statusKb(status, 'RssAnon') / 1024,
      fileMiB: statusKb(status, 'RssFile') / 1024,
      fds: readdirSync(`/proc/${pid}/fd`).length,
      heapMiB, // V8's "MB" is 2^20 bytes
    };
  };
}

/** The cgroups and processes the churn keeps turning over, and the counts of what it did. */
class Churner {
  readonly churn: Churn = { cgroupsCreated: 0, cgroupsRemoved: 0, processesStarted: 0, processesEnded: 0, reloads: 0 };
  private readonly patternBase: BenchCgroup;
  private readonly plainBase: BenchCgroup;
  private readonly procsCg: BenchCgroup;
  private readonly root: string;
  private readonly pattern: { cg: BenchCgroup; proc: Proc }[] = [];
  private plain: { cg: BenchCgroup; proc: Proc }[] = [];
  private comm?: Proc;
  private pidProc?: Proc;
  private seq = 0;

  constructor(
    private readonly ctx: BenchContext,
    parent: BenchCgroup,
    private readonly commBin: string,
    readonly pidfile: string,
    private readonly p: ReturnType<typeof params>,
  ) {
    this.root = path.dirname(parent.path);
    this.patternBase = parent.child('pattern');
    this.plainBase = parent.child('plain');
    this.procsCg = parent.child('procs');
  }

  get patternGlob(): string {
    return path.join(this.patternBase.path, 'c*');
  }

  /** The config the agent runs with now: the fixed targets plus the current plain cgroups. */
  config(): { targets: AgentTarget[] } {
    return {
      targets: [
        { name: 'churn', role: 'noisy', cgroup_pattern: this.patternGlob },
        { name: 'comm', role: 'protect', comm: COMM },
        { name: 'pidfile', role: 'protect', pidfile: this.pidfile },
        ...this.plain.map(({ cg }, i) => ({ name: `plain-${path.basename(cg.path)}`, role: i % 2 === 0 ? ('protect' as const) : ('noisy' as const), cgroup: cg.path })),
      ],
    };
  }

  private spawn(cmd: string, args: string[], cgroup: BenchCgroup, name: string): Proc {
    const proc = this.ctx.res.spawn(cmd, args, { cgroup: cgroup.path, name });
    this.churn.processesStarted++;
    void proc.exited.then(() => this.churn.processesEnded++);
    return proc;
  }

  private makeCgroup(base: BenchCgroup, prefix: string): BenchCgroup {
    const cg = base.child(`${prefix}${++this.seq}`);
    this.churn.cgroupsCreated++;
    return cg;
  }

  private async removeCgroup(entry: { cg: BenchCgroup; proc: Proc }): Promise<void> {
    await entry.proc.stop('SIGKILL', 2000);
    removeCgroupTree(entry.cg.path, this.root);
    this.churn.cgroupsRemoved++;
  }

  /** The processes and plain cgroups the first config names (a pidfile and a comm must resolve at start). */
  async start(): Promise<void> {
    this.restartProcesses();
    for (let i = 0; i < 2; i++) this.addPlain();
    await this.waitForPid(this.pidProc!);
  }

  private addPlain(): void {
    const cg = this.makeCgroup(this.plainBase, 'p');
    this.plain.push({ cg, proc: this.spawn('sleep', ['3600'], cg, 'soak plain') });
  }

  private async waitForPid(proc: Proc): Promise<void> {
    // The shell wrapper joins the cgroup and then execs: the comm is right once the exec is done.
    for (let i = 0; i < 100 && proc.running; i++) {
      try {
        if (readFileSync(`/proc/${proc.pid}/comm`, 'utf8').trim() !== 'sh') return;
      } catch {
        return;
      }
      await sleep(10);
    }
  }

  private restartProcesses(): void {
    const oldComm = this.comm;
    const oldPid = this.pidProc;
    this.comm = this.spawn(this.commBin, ['3600'], this.procsCg, 'soak comm');
    this.pidProc = this.spawn('sleep', ['3600'], this.procsCg, 'soak pidfile');
    // Replaced by rename, as daemons do: the agent never reads a half-written pidfile.
    writeFileSync(`${this.pidfile}.new`, `${this.pidProc.pid}\n`);
    renameSync(`${this.pidfile}.new`, this.pidfile);
    void oldComm?.stop('SIGKILL', 2000);
    void oldPid?.stop('SIGKILL', 2000);
  }

  /** One churn step: a new pattern cgroup with a short-lived process, finished ones removed, the processes restarted. */
  async cycle(): Promise<void> {
    const cg = this.makeCgroup(this.patternBase, 'c');
    this.pattern.push({ cg, proc: this.spawn('sleep', [String(this.p.patternLifeS)], cg, 'soak pattern') });
    for (const e of this.pattern.filter((x) => !x.proc.running)) {
      this.pattern.splice(this.pattern.indexOf(e), 1);
      await this.removeCgroup(e);
    }
    this.restartProcesses();
  }

  /** Swaps the oldest plain cgroup target for a new one through a config reload (SIGHUP), then removes it. */
  async swapPlain(agent: RunningAgent): Promise<void> {
    this.addPlain();
    const old = this.plain.shift()!;
    const answer = await agent.reload(this.config());
    if (!/config reloaded/.test(answer)) throw new Error(`reload the agent: ${answer}`);
    this.churn.reloads++;
    await this.removeCgroup(old);
  }

  async stop(): Promise<void> {
    for (const e of [...this.pattern, ...this.plain]) await this.removeCgroup(e);
    this.pattern.length = 0;
    this.plain = [];
    await this.comm?.stop('SIGKILL', 2000);
    await this.pidProc?.stop('SIGKILL', 2000);
  }
}

export const soak: Section = {
  id: 'soak',
  title: 'Agent memory and fds under target churn (soak)',
  steps: () => 1,
  async run(ctx) {
    const p = params(ctx.quick, ctx.soakSeconds);
    const { res, progress } = ctx;
    progress.step(`${fmt(p.durationS / 60, 1)} min of target churn`);
    const parent = res.makeCgroup('soak');
    const dir = res.tempDir('soak');
    const commBin = path.join(dir, COMM);
    copyFileSync('/bin/sleep', commBin);
    const churner = new Churner(ctx, parent, commBin, path.join(dir, 'worker.pid'), p);
    const samples: Sample[] = [];
    let agent: RunningAgent | undefined;
    try {
      await churner.start();
      // --trace-gc prints one line per GC: the heap left after each full GC tells a JS leak from native memory.
      agent = await startAgent(res, { config: churner.config(), nodeFlags: ['--trace-gc'], readyTimeoutMs: 120_000 });
      const t0 = performance.now();
      const elapsed = (): number => (performance.now() - t0) / 1000;
      const sample = sampler(agent);
      samples.push(sample(0));
      const timer = setInterval(() => {
        if (agent?.proc.running) samples.push(sample(elapsed()));
      }, p.sampleS * 1000);
      try {
        for (let cycle = 1; elapsed() < p.durationS; cycle++) {
          const next = t0 + cycle * p.cycleS * 1000;
          await churner.cycle();
          if (cycle % p.reloadEveryCycles === 0) await churner.swapPlain(agent);
          if (!agent.proc.running) throw new Error(`the agent exited during the soak: ${agent.proc.stderrTail(5)}`);
          const last = samples[samples.length - 1]!;
          progress.status(`${Math.round(elapsed())}/${p.durationS} s · RSS ${fmt(last.rssMiB, 1)} MiB · ${last.fds} fds · ${churner.churn.cgroupsCreated} cgroups, ${churner.churn.reloads} reloads`);
          await sleep(Math.max(0, next - performance.now()));
        }
      } finally {
        clearInterval(timer);
      }
      samples.push(sample(elapsed()));
      const seconds = elapsed();
      progress.tick();
      return summarize(samples, churner.churn, seconds, { ...p, pattern: churner.patternGlob });
    } finally {
      await agent?.stop();
      await churner.stop();
      res.removeCgroup(parent);
      res.removeTempDir(dir);
    }
  },
};

export function summarize(samples: Sample[], churn: Churn, seconds: number, p: Record<string, unknown> & { durationS: number }) {
  const a = analyse(samples, seconds);
  const minutes = seconds / 60;
  const events = churn.cgroupsCreated + churn.cgroupsRemoved + churn.processesStarted + churn.processesEnded + churn.reloads;
  const yesNo = (b: boolean | null): string => (b === null ? '—' : b ? 'yes' : 'no');
  const slope = (f: SlopeFit, digits: number): string => `${fmt(f.slope, digits)} ± ${fmt(f.stderr, digits)}`;
  const table: Table = {
    title: `agent process over ${fmt(minutes, 1)} min of churn (slopes: least squares over the second half, ± one standard error)`,
    columns: ['measure', 'start', 'end', 'max', 'slope per hour (2nd half)', 'slope per hour (1st half)', 'levelled off'],
    rows: [
      ['VmRSS MiB', fmt(a.rssStart, 1), fmt(a.rssEnd, 1), fmt(a.rssMax, 1), slope(a.rss, 1), slope(a.rssEarly, 1), yesNo(a.rssLevel)],
      ['  of which anonymous (RssAnon) MiB', fmt(a.anon.start, 1), fmt(a.anon.end, 1), fmt(a.anon.max, 1), slope(a.anon.slope, 1), '', ''],
      ['  of which file-backed (RssFile) MiB', fmt(a.file.start, 1), fmt(a.file.end, 1), fmt(a.file.max, 1), slope(a.file.slope, 1), '', ''],
      ['V8 heap after full GC MiB', fmt(a.heapStart, 1), fmt(a.heapEnd, 1), fmt(a.heapMax, 1), slope(a.heap, 1), '', ''],
      ['open fds', a.fdStart, a.fdEnd, a.fdMax, slope(a.fd, 1), '', yesNo(a.fdLevel)],
    ],
  };
  const churnTable: Table = {
    title: 'churn the agent saw',
    columns: ['cgroups created', 'cgroups removed', 'processes started', 'processes ended', 'config reloads (SIGHUP)', 'events per minute'],
    rows: [[churn.cgroupsCreated, churn.cgroupsRemoved, churn.processesStarted, churn.processesEnded, churn.reloads, fmt(events / minutes, 0)]],
  };
  const toBudget = a.rss.slope > 0 ? (RSS_BUDGET_MIB - a.rssEnd) / a.rss.slope : Infinity;
  const goals: Goal[] = [
    {
      goal: 'agent RSS ≤ 100 MiB under target churn',
      measured: `max ${fmt(a.rssMax, 1)} MiB (start ${fmt(a.rssStart, 1)}, end ${fmt(a.rssEnd, 1)}) over ${fmt(minutes, 1)} min`,
      met: Number.isFinite(a.rssMax) ? a.rssMax <= RSS_BUDGET_MIB : null,
    },
    {
      goal: 'agent RSS levels off under target churn',
      measured: `${slope(a.rss, 1)} MiB/h over the second half${Number.isFinite(toBudget) && toBudget > 0 ? ` (the budget in ${fmt(toBudget, 1)} h at that rate)` : ''}; fds ${slope(a.fd, 1)}/h; ${fmt(events / minutes, 0)} churn events/min`,
      met: a.rssLevel === null || a.fdLevel === null ? null : a.rssLevel && a.fdLevel,
    },
  ];
  const charts: ChartPanel[] = [
    {
      kind: 'line',
      title: 'Agent resident memory (VmRSS) under target churn',
      xLabel: 'seconds since the agent was ready',
      yLabel: 'MiB',
      series: [
        { label: 'VmRSS', color: 0, markers: false, points: samples.map((s) => [s.t, s.rssMiB] as [number, number]) },
        { label: 'RssAnon', color: 3, markers: false, points: samples.map((s) => [s.t, s.anonMiB] as [number, number]) },
        { label: 'RssFile', color: 4, markers: false, points: samples.map((s) => [s.t, s.fileMiB] as [number, number]) },
        {
          label: 'V8 heap after the latest full GC',
          color: 2,
          markers: false,
          points: samples.filter((s) => Number.isFinite(s.heapMiB)).map((s) => [s.t, s.heapMiB] as [number, number]),
        },
      ],
      vlines: [{ x: seconds / 2, label: 'fit from here' }],
    },
    {
      kind: 'line',
      title: 'Agent open file descriptors under target churn',
      xLabel: 'seconds since the agent was ready',
      yLabel: 'fds',
      series: [{ label: '/proc/<pid>/fd', color: 1, markers: false, points: samples.map((s) => [s.t, s.fds] as [number, number]) }],
    },
  ];
  return {
    params: p,
    tables: [table, churnTable],
    goals,
    notes: [
      `Targets: a cgroup_pattern (${String(p.pattern ?? '')}) under which a cgroup with a ${String(p.patternLifeS)} s process appears every ${String(p.cycleS)} s and is removed once that process has exited; a comm and a pidfile target whose processes restart every ${String(p.cycleS)} s; two plain cgroup targets, one swapped for a new cgroup every ${Number(p.cycleS) * Number(p.reloadEveryCycles)} s by rewriting the config and sending SIGHUP. Default signals and tick.`,
      `RssFile is mostly the node executable's own pages read in from disk as code paths run (a bare \`node -e\` holds about 34 MiB of it): clean, shared with every node process, and dropped by the kernel under memory pressure. RssAnon is what the agent itself allocated.`,
      `VmRSS (/proc/<pid>/status) and the open fds (/proc/<pid>/fd) sampled every ${String(p.sampleS)} s; the agent runs as node --trace-gc bin/ebpf-tuner run …, and the V8 heap left after its latest full GC is read from that output, so a JS leak can be told from native memory.`,
      `"Levelled off": the second-half slope is under ${LEVEL_MIB_PER_HOUR} MiB/h (fds: not rising) or within two standard errors of zero.`,
    ],
    charts,
    data: { samples, churn, analysis: a, seconds },
  };
}
