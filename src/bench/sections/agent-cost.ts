/**
 * Section 3 — what the agent itself costs and how that grows: its CPU use (utime+stime from /proc/<pid>/stat, and
 * the exact on-CPU ns of all its threads from schedstat) and memory (VmRSS, VmHWM) at a 1 s and a 100 ms tick with
 * 10, 100 and 1000 target cgroups (one sleeping process in each), while a helper process keeps ~10k threads sleeping on the host;
 * and at a 1 s tick serving HTTP (--listen) with /metrics scraped every 5 s, as the DaemonSet runs. The per-tick
 * cost is fitted against the target count: slope = cost per extra target, intercept = fixed cost of a tick.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { TunerError } from '../../core/errors.js';
import { projectRoot } from '../../bpf/paths.js';
import { startAgent, type AgentTarget } from '../peers.js';
import { fitLine, fmt, median, type LineFit } from '../stats.js';
import type { ChartPanel } from '../chart.js';
import type { BenchContext, Goal, Section, Table } from '../types.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function params(quick: boolean) {
  return quick
    ? { rounds: 1, windowS: 2, settleS: 1, targetCounts: [10, 100], ticks: TICKS, threads: 1000 }
    : { rounds: 2, windowS: 8, settleS: 30, targetCounts: [10, 100, 1000], ticks: TICKS, threads: 10_000 };
}

/** Ticks measured; the last also serves HTTP (--listen) and is scraped as Prometheus would, as in the DaemonSet. */
const TICKS = ['1s', '100ms', '1s --listen'];
const TICK_MS: Record<string, number> = { '1s': 1000, '100ms': 100, '1s --listen': 1000 };
/** How often the --listen runs fetch /metrics: Prometheus's default scrape interval is 15 s; a busy setup scrapes faster. */
const SCRAPE_MS = 5000;

/** utime+stime of a process in clock ticks (fields 14 and 15; the command name may contain spaces and ')'). */
export function parseStatTicks(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state), so field n is f[n - 3].
  return Number(f[11]) + Number(f[12]);
}

/** A "Vm…:   1234 kB" value of /proc/<pid>/status, in kB. */
export function statusKb(status: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
  return m ? Number(m[1]) : NaN;
}

interface CpuSample {
  t: number;
  ticks: number;
  ns: number;
}

function sampleCpu(pid: number): CpuSample {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // thread exited
    }
  }
  return { t: performance.now(), ticks: parseStatTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')), ns };
}

let clkTck: number | undefined;
function clockTicksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

interface Run {
  round: number;
  tick: string;
  targets: number;
  seconds: number;
  cpuPctStat: number;
  cpuPctSched: number;
  perTickUs: number;
  rssMiB: number;
  hwmMiB: number;
  /** openat calls per tick over the window (perf's syscalls:sys_enter_openat); NaN without perf. */
  opensPerTick: number;
}

/**
 * openat calls by every thread of `pid` over `seconds`, counted by `perf stat` on the syscall tracepoint; NaN when
 * perf is missing or cannot attach (the rest of the section does not depend on it).
 */
function countOpens(pid: number, seconds: number): Promise<number> {
  return new Promise((resolve) => {
    execFile('perf', ['stat', '-x', ',', '-e', 'syscalls:sys_enter_openat', '-p', String(pid), '--', 'sleep', String(seconds)], (err, _out, stderr) => {
      const line = String(stderr).split('\n').find((l) => l.includes('sys_enter_openat'));
      const n = line === undefined ? NaN : Number(line.split(',')[0]);
      resolve(err || !Number.isFinite(n) ? NaN : n);
    });
  });
}

/** Starts `sleep` in each cgroup given as an argument (joining it before exec), prints "ready N", then waits. */
const SLEEPERS_SCRIPT = `
n=0
for d in "$@"; do
  /bin/sh -c 'echo $$ > "$0/cgroup.procs" && exec sleep 86400' "$d" &
  n=$((n + 1))
done
echo "ready $n"
wait
`;

async function buildThreadsHelper(ctx: BenchContext): Promise<string> {
  const src = path.join(projectRoot, 'src', 'bench', 'threads.c');
  if (!existsSync(src)) throw new TunerError('INTERNAL', `build the threads helper: ${src} is missing`);
  const dir = ctx.res.tempDir('threads');
  const bin = path.join(dir, 'bench-threads');
  try {
    await ctx.res.run('cc', ['-O2', '-Wall', '-pthread', '-o', bin, src], { name: 'cc' });
  } catch (e) {
    throw new TunerError('INTERNAL', `build the threads helper: ${e instanceof Error ? e.message : String(e)} — fix: apt-get install gcc`);
  }
  return bin;
}

export const agentCost: Section = {
  id: 'agent-cost',
  title: 'Agent CPU and memory vs tick and target count',
  steps: (quick) => {
    const p = params(quick);
    return p.rounds * p.ticks.length * p.targetCounts.length;
  },
  async run(ctx) {
    const p = params(ctx.quick);
    const { res, progress } = ctx;
    progress.status(`building the threads helper and ${Math.max(...p.targetCounts)} target cgroups`);
    const bin = await buildThreadsHelper(ctx);
    const parent = res.makeCgroup('scale');
    const runs: Run[] = [];
    try {
      const threadsCg = parent.child('threads');
      const helper = res.spawn(bin, [String(p.threads)], { cgroup: threadsCg.path, name: 'bench-threads' });
      await helper.waitForLine(/^ready \d+/, 60_000);
      const targetsCg = parent.child('targets');
      const all: AgentTarget[] = [];
      const dirs: string[] = [];
      for (let i = 0; i < Math.max(...p.targetCounts); i++) {
        const name = `t${String(i).padStart(4, '0')}`;
        const dir = targetsCg.child(name).path;
        dirs.push(dir);
        // Alternate roles so the decision engine has protect and noisy targets to weigh on every tick.
        all.push({ name, role: i % 2 === 0 ? 'protect' : 'noisy', cgroup: dir });
      }
      // One sleeping process in every target cgroup, as a deployment has: the agent resolves, watches and reads each.
      // One shell forks them all, so they share its process group and end with it.
      const sleepers = res.spawn('/bin/sh', ['-c', SLEEPERS_SCRIPT, 'sleepers', ...dirs], { name: 'sleepers' });
      await sleepers.waitForLine(/^ready \d+/, 120_000);
      try {
        for (let r = 1; r <= p.rounds; r++) {
          for (const tick of p.ticks) {
            for (const n of p.targetCounts) {
              progress.step(`round ${r}/${p.rounds} · tick ${tick} · ${n} targets`);
              runs.push(await measure(ctx, r, tick, all.slice(0, n), p));
              progress.tick();
            }
          }
        }
      } finally {
        await sleepers.stop('SIGKILL', 5000);
        await helper.stop('SIGKILL', 5000);
      }
    } finally {
      res.removeCgroup(parent);
      res.removeTempDir(path.dirname(bin));
    }
    return summarize(runs, p);
  },
};

async function measure(ctx: BenchContext, round: number, tick: string, targets: AgentTarget[], p: ReturnType<typeof params>): Promise<Run> {
  const listen = tick.endsWith('--listen');
  const agent = await startAgent(ctx.res, { config: { tick: tick.split(' ')[0]!, targets }, readyTimeoutMs: 120_000, listen });
  const scraper = listen ? setInterval(() => void scrape(agent.port!), SCRAPE_MS) : undefined;
  try {
    // Start-up (loading, resolving targets, then JIT compilation: a quarter of the agent's CPU 6 s after start, an
    // eighth after 90 s, in perf profiles at 100 targets) is not what an always-on agent costs from then on.
    await sleep(p.settleS * 1000);
    const a = sampleCpu(agent.proc.pid);
    // perf's own start-up falls inside the window; what it adds to the agent is the tracepoint, a few ns per open.
    const opens = countOpens(agent.proc.pid, p.windowS);
    await sleep(p.windowS * 1000);
    const b = sampleCpu(agent.proc.pid);
    const openCount = await opens;
    const status = readFileSync(`/proc/${agent.proc.pid}/status`, 'utf8');
    const seconds = (b.t - a.t) / 1000;
    const ticks = (seconds * 1000) / TICK_MS[tick]!;
    return {
      round,
      tick,
      targets: targets.length,
      seconds,
      cpuPctStat: ((b.ticks - a.ticks) / clockTicksPerSecond() / seconds) * 100,
      cpuPctSched: ((b.ns - a.ns) / 1e9 / seconds) * 100,
      perTickUs: (b.ns - a.ns) / 1000 / ticks,
      rssMiB: statusKb(status, 'VmRSS') / 1024,
      hwmMiB: statusKb(status, 'VmHWM') / 1024,
      opensPerTick: openCount / ((p.windowS * 1000) / TICK_MS[tick]!),
    };
  } finally {
    clearInterval(scraper);
    await agent.stop();
  }
}

/** One Prometheus-like scrape of /metrics, read to the end; a failure counts as nothing (the numbers say it). */
async function scrape(port: number): Promise<void> {
  try {
    await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(4000) })).text();
  } catch {
    // the agent is stopping, or slow: the run's CPU and memory still count it
  }
}

export function summarize(runs: Run[], p: Record<string, unknown> & { ticks: string[]; targetCounts: number[]; windowS: number }) {
  const med = (tick: string, n: number, k: keyof Run): number =>
    median(runs.filter((r) => r.tick === tick && r.targets === n).map((r) => r[k] as number));
  const fits = new Map<string, LineFit>();
  for (const tick of p.ticks) {
    fits.set(tick, fitLine(p.targetCounts, p.targetCounts.map((n) => med(tick, n, 'perTickUs'))));
  }
  const table: Table = {
    title: 'agent process, median over rounds (CPU as % of one core)',
    columns: ['tick', 'targets', 'CPU % (stat utime+stime)', 'CPU % (schedstat)', 'µs per tick', 'VmRSS MiB', 'VmHWM MiB', 'file opens per tick'],
    rows: p.ticks.flatMap((tick) =>
      p.targetCounts.map((n) => [
        tick,
        n,
        fmt(med(tick, n, 'cpuPctStat'), 2),
        fmt(med(tick, n, 'cpuPctSched'), 3),
        fmt(med(tick, n, 'perTickUs'), 0),
        fmt(med(tick, n, 'rssMiB'), 1),
        fmt(med(tick, n, 'hwmMiB'), 1),
        fmt(med(tick, n, 'opensPerTick'), 1),
      ]),
    ),
  };
  const fitTable: Table = {
    title: 'per-tick cost vs target count, least squares over the medians',
    columns: ['tick', 'slope (µs per target per tick)', 'intercept (µs per tick)', 'r²'],
    rows: p.ticks.map((tick) => {
      const f = fits.get(tick)!;
      return [tick, fmt(f.slope, 2), fmt(f.intercept, 0), fmt(f.r2, 3)];
    }),
  };
  const ref = p.targetCounts.includes(100) ? 100 : p.targetCounts[p.targetCounts.length - 1]!;
  const cpu = med('1s', ref, 'cpuPctStat');
  const cpuSched = med('1s', ref, 'cpuPctSched');
  const rssMax = Math.max(...runs.map((r) => r.rssMiB));
  const rssRef = med('1s', ref, 'rssMiB');
  const big = Math.max(...p.targetCounts);
  const goals: Goal[] = [
    {
      goal: `agent ≤ 1% of one core at 1 s tick with ${ref} targets`,
      measured: `${fmt(cpu, 2)}% (stat), ${fmt(cpuSched, 3)}% (schedstat)`,
      met: Number.isFinite(cpu) ? cpu <= 1 : null,
    },
    {
      goal: `agent RSS ≤ 100 MiB at 1 s tick with ${ref} targets`,
      measured: `${fmt(rssRef, 1)} MiB at 1 s / ${ref} targets; largest in any run ${fmt(rssMax, 1)} MiB`,
      met: Number.isFinite(rssRef) ? rssRef <= 100 : null,
    },
  ];
  if (big >= 1000) {
    const cpuBig = med('1s', big, 'cpuPctStat');
    const rssBig = med('1s', big, 'rssMiB');
    goals.push(
      {
        goal: `agent ≤ 3% of one core at 1 s tick with ${big} targets`,
        measured: `${fmt(cpuBig, 2)}% (stat), ${fmt(med('1s', big, 'cpuPctSched'), 3)}% (schedstat); ${fmt(med('1s', big, 'opensPerTick'), 0)} file opens per tick (${fmt(med('1s', ref, 'opensPerTick'), 0)} at ${ref})`,
        met: Number.isFinite(cpuBig) ? cpuBig <= 3 : null,
      },
      {
        goal: `agent RSS ≤ 150 MiB at 1 s tick with ${big} targets`,
        measured: `${fmt(rssBig, 1)} MiB`,
        met: Number.isFinite(rssBig) ? rssBig <= 150 : null,
      },
    );
  }
  const series = (k: keyof Run) =>
    p.ticks.map((tick, i) => ({
      label: `tick ${tick}`,
      color: i,
      points: p.targetCounts.map((n) => [n, med(tick, n, k)] as [number, number]),
    }));
  const maxN = Math.max(...p.targetCounts);
  const charts: ChartPanel[] = [
    {
      kind: 'line',
      title: 'Agent CPU per tick vs target count (points: medians; dashed: least-squares fit)',
      xLabel: 'target cgroups',
      yLabel: 'µs of CPU per tick',
      series: [
        ...series('perTickUs').map((s) => ({ ...s, line: false })),
        ...p.ticks.map((tick, i) => {
          const f = fits.get(tick)!;
          return { label: `fit ${tick}: ${fmt(f.slope, 2)} µs/target + ${fmt(f.intercept, 0)} µs`, color: i, dashed: true, markers: false, points: [[0, f.intercept], [maxN, f.intercept + f.slope * maxN]] as [number, number][] };
        }),
      ],
    },
    { kind: 'line', title: 'Agent CPU (% of one core, schedstat)', xLabel: 'target cgroups', yLabel: '% of one core', series: series('cpuPctSched') },
    { kind: 'line', title: 'Agent resident memory (VmRSS)', xLabel: 'target cgroups', yLabel: 'MiB', series: series('rssMiB') },
  ];
  return {
    params: p,
    tables: [table, fitTable],
    goals,
    notes: [
      `Each run: start the agent with N target cgroups, one sleeping process in each (roles alternating protect/noisy), let it settle, then measure over ${p.windowS} s.`,
      `A helper process keeps ${(p as { threads?: number }).threads ?? '?'} threads sleeping on the host during the whole section.`,
      'stat utime+stime counts in clock ticks (10 ms), so small percentages are coarse; schedstat sums the exact on-CPU ns of every agent thread.',
      'File opens per tick: openat calls of all agent threads over the window, counted with perf stat -e syscalls:sys_enter_openat -p PID (n/a without perf).',
    ],
    charts,
    data: { runs, fits: Object.fromEntries(fits) },
  };
}
