/**
 * Section 5 — the agent's effect on real servers, not only on the bench's own victim: nginx served to wrk, and
 * redis-server driven by redis-benchmark (all from Debian's packages), each beside a CPU-bound neighbour
 * (tools/bin/hog --threads 4). Server and hogs are pinned to the same CPU, each in its own cgroup; the client runs on
 * the other CPU, in no target, so it never competes with the server. Conditions, interleaved per pair in every
 * round: the server alone, beside the neighbour with no agent, and beside the neighbour with the agent (server
 * protect, neighbour noisy, default policy and tick). Reported: the latency percentiles and throughput the clients
 * themselves measure, so the effect is the one a server's users would see, and what the agent did in each run (its
 * applied actions, the neighbour's CPU weight and quota, the server's CPUs, the server's run-queue p99 as it saw it),
 * so a number can be told apart from the noise of a shared machine.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { toolPath } from '../../bpf/paths.js';
import { parseConfig } from '../../config/load.js';
import { TunerError } from '../../core/errors.js';
import { freePort, policyNotes, policyOf, startAgent, type AgentLogLine, type RunningAgent } from '../peers.js';
import { fmt, fmtRatio, median, ratio, spread } from '../stats.js';
import { CONTENTION_CPU } from './reaction.js';
import type { BarPanel } from '../chart.js';
import type { BenchCgroup, Proc, Resources } from '../resources.js';
import type { BenchContext, Goal, Section, Table } from '../types.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The clients' CPU: not the server's, so the client's own work is not part of the contention. */
export const CLIENT_CPU = 1;

/** Connections of each client: a closed loop this small is idle between requests, so its latency is the server's wake-up and wait. */
export const CONNECTIONS = 2;

/** The goal: a real server's p99 beside the neighbour with the agent, against the server alone. */
export const GOAL_RATIO = 1.3;

/** The agent's default policy (no policy in the config the bench writes): what its rules act on, for the notes. */
const POLICY = parseConfig('', 'the built-in defaults').policy;

/** The noisy_neighbor rule's hot threshold on the protect target's run-queue p99. */
export const POLICY_P99_THRESHOLD_US = POLICY.noisyNeighbor.p99ThresholdUs;

/** Debian's paths; each binary is named with the package that ships it, for the message when it is missing. */
export const BINARIES = {
  nginx: { file: '/usr/sbin/nginx', pkg: 'nginx' },
  wrk: { file: '/usr/bin/wrk', pkg: 'wrk' },
  redisServer: { file: '/usr/bin/redis-server', pkg: 'redis-server' },
  redisBenchmark: { file: '/usr/bin/redis-benchmark', pkg: 'redis-tools' },
} as const;

/** What is missing, as one message naming the files, their packages and the fix; undefined when all are there. */
export function missingBinaries(exists: (file: string) => boolean = existsSync): string | undefined {
  const missing = Object.values(BINARIES).filter((b) => !exists(b.file));
  if (missing.length === 0) return undefined;
  const pkgs = [...new Set(missing.map((b) => b.pkg))];
  return (
    `run the servers benchmark: ${missing.map((b) => `${b.file} (package ${b.pkg})`).join(', ')} not installed` +
    ` — fix: scripts/setup.sh (it installs the benchmark peers listed in scripts/apt-packages.txt), or apt-get install ${pkgs.join(' ')}`
  );
}

export type PairId = 'nginx' | 'redis';
export type ConditionId = 'isolated' | 'neighbour' | 'agent';

interface Condition {
  id: ConditionId;
  label: string;
  neighbour: boolean;
  agent: boolean;
}

export const CONDITIONS: Condition[] = [
  { id: 'isolated', label: 'server alone', neighbour: false, agent: false },
  { id: 'neighbour', label: 'with neighbour, no agent', neighbour: true, agent: false },
  { id: 'agent', label: 'with neighbour + agent', neighbour: true, agent: true },
];

function params(quick: boolean) {
  // A full run: 3 rounds × 2 pairs × 3 conditions of (settle + measure) s, plus the agent's start in a third of them.
  // settleS: the agent's first pressure_backoff cut lands about 5 s after the neighbour starts (host CPU PSI avg10 has
  // to climb past 20% for 3 ticks), its first cpu_weight step after 2 hot ticks; 7 s leaves room for one more step.
  return quick ? { rounds: 1, measureS: 2, settleS: 3, warmS: 1 } : { rounds: 3, measureS: 8, settleS: 7, warmS: 2 };
}

/** What a client reports for one run. */
export interface ClientResult {
  p50Us: number;
  p99Us: number;
  /** Requests per second over the run. */
  rps: number;
  requests: number;
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 };

/** A wrk time ("49.00us", "2.05ms", "1.00s") in µs. */
function wrkTimeUs(v: string, unit: string): number {
  return Number(v) * UNIT_US[unit]!;
}

/**
 * `wrk --latency` output: the latency distribution (50/75/90/99%), the request count and Requests/sec. Socket
 * errors and non-2xx responses make the run worthless (the server was not serving the file), so they throw.
 */
export function parseWrk(out: string): ClientResult & { p75Us: number; p90Us: number } {
  const pct = new Map<number, number>();
  for (const m of out.matchAll(/^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$/gm)) pct.set(Number(m[1]), wrkTimeUs(m[2]!, m[3]!));
  const req = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)/m.exec(out);
  const rps = /^Requests\/sec:\s*([\d.]+)/m.exec(out);
  if (!pct.has(50) || !pct.has(99) || !req || !rps) {
    throw new TunerError('INTERNAL', `parse wrk output: no latency distribution (run with --latency) or no request count in ${JSON.stringify(out.slice(0, 400))}`);
  }
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const bad = /Non-2xx or 3xx responses:\s*(\d+)/.exec(out);
  if ((errors && errors.slice(1).some((n) => Number(n) > 0)) || bad) {
    throw new TunerError('INTERNAL', `run wrk: the server answered with errors (${[errors?.[0], bad?.[0]].filter(Boolean).join('; ')}) — see the nginx error log in the bench's temporary directory`);
  }
  return { p50Us: pct.get(50)!, p75Us: pct.get(75) ?? NaN, p90Us: pct.get(90) ?? NaN, p99Us: pct.get(99)!, rps: Number(rps[1]), requests: Number(req[1]) };
}

/** One test's row of `redis-benchmark --csv`: columns found by name from the header, times in µs. */
export function parseRedisBenchmarkCsv(out: string, test = 'GET'): Omit<ClientResult, 'requests'> & { p95Us: number; avgUs: number; maxUs: number } {
  const rows = out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('"'))
    .map((l) => l.split(',').map((c) => c.replace(/^"|"$/g, '')));
  const header = rows.find((r) => r[0] === 'test');
  const row = rows.find((r) => r[0] === test);
  const col = (name: string): number => {
    const i = header?.indexOf(name) ?? -1;
    return i >= 0 && row ? Number(row[i]) : NaN;
  };
  const ms = (name: string) => col(name) * 1000;
  const r = { rps: col('rps'), p50Us: ms('p50_latency_ms'), p95Us: ms('p95_latency_ms'), p99Us: ms('p99_latency_ms'), avgUs: ms('avg_latency_ms'), maxUs: ms('max_latency_ms') };
  if (!Number.isFinite(r.p50Us) || !Number.isFinite(r.p99Us) || !Number.isFinite(r.rps)) {
    throw new TunerError('INTERNAL', `parse redis-benchmark --csv output: no "${test}" row with rps, p50_latency_ms and p99_latency_ms in ${JSON.stringify(out.slice(0, 400))}`);
  }
  return r;
}

/**
 * The run-queue p99 the agent measured for `target` in each tick between `from` and `to` (ms since the epoch), from
 * its debug `"msg":"tick"` lines (`targets: { name: "p99=3187us n=1480" }`); a tick without run-queue data is left out.
 */
export function tickP99s(log: readonly AgentLogLine[], target: string, from: number, to: number): number[] {
  const out: number[] = [];
  for (const l of log) {
    if (l.msg !== 'tick' || !(l.time >= from && l.time <= to)) continue;
    const t = (l.targets as Record<string, unknown> | undefined)?.[target];
    const m = typeof t === 'string' ? /p99=([\d.]+)us/.exec(t) : null;
    if (m) out.push(Number(m[1]));
  }
  return out;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ host: '127.0.0.1', port });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Waits until `proc` accepts connections on `port`; throws with its stderr when it exits first or takes too long. */
async function listening(proc: Proc, port: number, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!proc.running) throw new TunerError('INTERNAL', `start ${what}: exited (${proc.exitStatus?.signal ?? `code ${proc.exitStatus?.code}`}) before listening on 127.0.0.1:${port} — ${proc.stderrTail(5).replace(/\n/g, ' | ')}`);
    if (await accepts(port)) return;
    if (Date.now() > deadline) throw new TunerError('INTERNAL', `start ${what}: not listening on 127.0.0.1:${port} after ${timeoutMs} ms — ${proc.stderrTail(5).replace(/\n/g, ' | ')}`);
    await sleep(100);
  }
}

/** Runs a client pinned to CLIENT_CPU; a client that hangs is killed and named rather than waited on for ever. */
async function runClient(res: Resources, file: string, args: string[], name: string, timeoutMs: number): Promise<string> {
  const p = res.spawn(file, args, { cpu: CLIENT_CPU, name });
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p.exited, new Promise<'timeout'>((done) => (timer = setTimeout(() => done('timeout'), timeoutMs)))]);
  clearTimeout(timer);
  if (r === 'timeout') {
    await p.stop('SIGKILL', 5000);
    throw new TunerError('INTERNAL', `run ${p.command}: still running after ${Math.round(timeoutMs / 1000)} s — the server stopped answering?`);
  }
  if (r.code !== 0) throw new TunerError('INTERNAL', `run ${p.command}: ${r.signal ?? `exit code ${r.code}`} — ${p.stderrTail(5).replace(/\n/g, ' | ')}`);
  return p.stdout();
}

/** A server the bench started, with what its client needs to drive it. */
interface RunningServer {
  proc: Proc;
  port: number;
  dir: string;
  /** Its cgroup: the agent's protect target. */
  cg: BenchCgroup;
  /** GET (or HTTP) requests per second measured alone at the start: sizes count-based client runs. */
  aloneRps: number;
}

interface Pair {
  id: PairId;
  label: string;
  client: string;
  start(res: Resources, cg: BenchCgroup): Promise<Omit<RunningServer, 'aloneRps' | 'cg'>>;
  /** One client run of about `seconds` (exactly that for wrk; the same request count in every condition for redis). */
  measure(res: Resources, s: RunningServer, seconds: number): Promise<ClientResult>;
  /** An unmeasured first run, alone: warms the server up and gives its throughput. */
  warmUp(res: Resources, s: Omit<RunningServer, 'aloneRps'>, seconds: number): Promise<number>;
}

/** The static file nginx serves: the size of nginx's own welcome page. */
const PAGE_BYTES = 615;

export function nginxConfig(dir: string, port: number): string {
  const p = (f: string) => path.join(dir, f);
  return [
    'master_process on;',
    'worker_processes 1;',
    'daemon off;',
    `pid ${p('nginx.pid')};`,
    `error_log ${p('error.log')} warn;`,
    'events { worker_connections 64; }',
    'http {',
    '  access_log off;',
    // Debian's build puts these under /var/lib/nginx; the bench's server must touch nothing outside its directory.
    `  client_body_temp_path ${p('body')};`,
    `  proxy_temp_path ${p('proxy')};`,
    `  fastcgi_temp_path ${p('fastcgi')};`,
    `  uwsgi_temp_path ${p('uwsgi')};`,
    `  scgi_temp_path ${p('scgi')};`,
    '  server {',
    `    listen 127.0.0.1:${port};`,
    `    root ${p('www')};`,
    '  }',
    '}',
    '',
  ].join('\n');
}

const nginx: Pair = {
  id: 'nginx',
  label: 'nginx + wrk',
  client: 'wrk',
  async start(res, cg) {
    const dir = res.tempDir('nginx');
    // The worker runs as nobody: it must be able to read the page (mkdtemp makes the directory 0700).
    chmodSync(dir, 0o755);
    mkdirSync(path.join(dir, 'www'), { mode: 0o755 });
    writeFileSync(path.join(dir, 'www', 'index.html'), `<!DOCTYPE html>\n<title>bench</title>\n${'x'.repeat(PAGE_BYTES - 35)}\n`, { mode: 0o644 });
    const port = await freePort();
    const conf = path.join(dir, 'nginx.conf');
    writeFileSync(conf, nginxConfig(dir, port));
    // -e: the error log before the config is read, else nginx opens /var/log/nginx/error.log first.
    const proc = res.spawn(BINARIES.nginx.file, ['-c', conf, '-p', dir, '-e', path.join(dir, 'error.log')], { cpu: CONTENTION_CPU, cgroup: cg.path, name: 'nginx' });
    await listening(proc, port, 'nginx');
    return { proc, port, dir };
  },
  async warmUp(res, s, seconds) {
    return (await this.measure(res, { ...s, aloneRps: NaN }, seconds)).rps;
  },
  async measure(res, s, seconds) {
    const out = await runClient(
      res,
      BINARIES.wrk.file,
      ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${s.port}/index.html`],
      'wrk',
      (seconds + 30) * 1000,
    );
    return parseWrk(out);
  },
};

/** Requests of redis-benchmark's calibration run, alone. */
const REDIS_WARMUP_REQUESTS = 20_000;

const redis: Pair = {
  id: 'redis',
  label: 'redis-server + redis-benchmark',
  client: 'redis-benchmark',
  async start(res, cg) {
    const dir = res.tempDir('redis');
    const port = await freePort();
    const proc = res.spawn(
      BINARIES.redisServer.file,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir, '--logfile', ''],
      { cpu: CONTENTION_CPU, cgroup: cg.path, name: 'redis-server', cwd: dir },
    );
    await listening(proc, port, 'redis-server');
    return { proc, port, dir };
  },
  async warmUp(res, s) {
    // SET first, so every measured GET finds its key; the GET row's throughput sizes the measured runs.
    const out = await runClient(
      res,
      BINARIES.redisBenchmark.file,
      ['-h', '127.0.0.1', '-p', String(s.port), '-c', String(CONNECTIONS), '-n', String(REDIS_WARMUP_REQUESTS), '-t', 'set,get', '--csv'],
      'redis-benchmark',
      120_000,
    );
    return parseRedisBenchmarkCsv(out).rps;
  },
  async measure(res, s, seconds) {
    const requests = Math.max(1000, Math.round(s.aloneRps * seconds));
    const out = await runClient(
      res,
      BINARIES.redisBenchmark.file,
      ['-h', '127.0.0.1', '-p', String(s.port), '-c', String(CONNECTIONS), '-n', String(requests), '-t', 'get', '--csv'],
      'redis-benchmark',
      // Beside the neighbour the same count takes longer; a run 12× slower than alone is a broken server.
      (12 * seconds + 30) * 1000,
    );
    return { ...parseRedisBenchmarkCsv(out), requests };
  },
};

export const PAIRS: Pair[] = [nginx, redis];

export interface ServerRun {
  round: number;
  pair: PairId;
  condition: ConditionId;
  p50Us: number;
  p99Us: number;
  rps: number;
  requests: number;
  /** Wall time of the measured client run. */
  clientS: number;
  /** The neighbour's cpu.shares (cpu.weight on v2) when the measured client run started and when it ended. */
  neighbourWeightStart?: number;
  neighbourWeightEnd?: number;
  /** The neighbour's CPU bandwidth limit in CPUs at the same two moments; null when it has none. */
  neighbourQuotaStart?: number | null;
  neighbourQuotaEnd?: number | null;
  /** Cpus_allowed_list of the server's threads when the measured client run started and ended ("0", or "0-1" once spread). */
  serverCpusStart: string;
  serverCpusEnd: string;
  /** The server was not on CONTENTION_CPU alone before the run (a previous agent's change not undone) and was pinned again. */
  repinned?: boolean;
  /** Agent runs: applied decisions per action (every action of the default policy, not only cpu_weight) and reverts. */
  applied?: Record<string, number>;
  reverts?: number;
  /** Agent runs: from the neighbour's start to the agent's first applied decision of any action. */
  reactionMs?: number;
  /** Agent runs: every decision it logged, seconds from the neighbour's start. */
  decisions?: { t: number; kind: string; action?: string; target?: string; from?: string; to?: string }[];
  /** Agent runs: the server's run-queue p99 as the agent measured it, per tick of the measured client run (µs). */
  agentP99s?: number[];
}

/** Applied decisions per action in an agent's log, from `since` (ms since the epoch) on. */
export function appliedActions(log: readonly AgentLogLine[], since = 0): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of log) if (l.kind === 'applied' && typeof l.action === 'string' && l.time >= since) out[l.action] = (out[l.action] ?? 0) + 1;
  return out;
}

/** The distinct Cpus_allowed_list values of every thread of every process in a cgroup, e.g. "0" or "0 / 0-1". */
export function cgroupCpus(cg: BenchCgroup): string {
  const lists = new Set<string>();
  for (const pid of cg.read('cgroup.procs').split('\n').filter(Boolean)) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // exited since the read
    }
    for (const tid of tids) {
      try {
        const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
        if (m) lists.add(m[1]!);
      } catch {
        // a thread that exited since the listing
      }
    }
  }
  return [...lists].sort().join(' / ') || '—';
}

/** The weight knob of this hierarchy and its neutral value: cpu.shares 1024 on v1, cpu.weight 100 on v2. */
function weightKnob(cg: BenchCgroup): { file: string; neutral: string } {
  return cg.has('cpu.shares') ? { file: 'cpu.shares', neutral: '1024' } : { file: 'cpu.weight', neutral: '100' };
}

/** No CPU bandwidth limit: cpu.cfs_quota_us -1 on v1, cpu.max "max" on v2. */
function unlimitQuota(cg: BenchCgroup): void {
  if (cg.has('cpu.cfs_quota_us')) cg.write('cpu.cfs_quota_us', '-1');
  else cg.write('cpu.max', 'max');
}

/** The cgroup's CPU bandwidth limit in CPUs (quota / period), null when unlimited. */
export function quotaCpus(cg: Pick<BenchCgroup, 'has' | 'read'>): number | null {
  const [quota, period] = cg.has('cpu.cfs_quota_us') ? [cg.read('cpu.cfs_quota_us'), cg.read('cpu.cfs_period_us')] : cg.read('cpu.max').split(/\s+/);
  const q = Number(quota);
  return quota === 'max' || !(q > 0) ? null : q / Number(period);
}

function fmtQuota(q: number | null | undefined): string {
  return q === undefined ? '—' : q === null ? 'none' : `${fmt(q, 2)} CPU`;
}

/** The middle value, with "no limit" (null) above every limit; undefined when there are none. */
function medianQuota(xs: (number | null | undefined)[]): number | null | undefined {
  const v = xs.filter((x) => x !== undefined).sort((a, b) => (a ?? Infinity) - (b ?? Infinity));
  return v.length ? v[(v.length - 1) >> 1] : undefined;
}

export const servers: Section = {
  id: 'servers',
  title: 'Real servers beside a noisy neighbour: nginx and redis',
  steps: (quick) => params(quick).rounds * PAIRS.length * CONDITIONS.length + PAIRS.length,
  async run(ctx) {
    const missing = missingBinaries();
    if (missing) throw new TunerError('INTERNAL', missing);
    const p = params(ctx.quick);
    const { res, progress } = ctx;
    const cg = res.makeCgroup('servers');
    const noisyCg = cg.child('noisy');
    const running = new Map<PairId, RunningServer>();
    const runs: ServerRun[] = [];
    try {
      for (const pair of PAIRS) {
        progress.step(`starting ${pair.label.split(' + ')[0]} and warming it up (${pair.client}, alone)`);
        const serverCg = cg.child(pair.id);
        const s = { ...(await pair.start(res, serverCg)), cg: serverCg, aloneRps: NaN };
        // Registered before the warm-up, so a failing warm-up still stops it.
        running.set(pair.id, s);
        s.aloneRps = await pair.warmUp(res, s, p.warmS);
        progress.tick();
      }
      for (let r = 1; r <= p.rounds; r++) {
        for (const pair of PAIRS) {
          for (const c of CONDITIONS) {
            progress.step(`round ${r}/${p.rounds} · ${pair.label} · ${c.label}`);
            runs.push(await runOne(ctx, pair, running.get(pair.id)!, c, r, p, noisyCg));
            progress.tick();
          }
        }
      }
    } finally {
      for (const s of running.values()) {
        await s.proc.stop('SIGTERM', 10_000);
        res.removeTempDir(s.dir);
      }
      res.removeCgroup(cg);
    }
    const aloneRps = Object.fromEntries([...running].map(([id, s]) => [id, s.aloneRps]));
    return summarize(runs, { ...p, serverCpu: CONTENTION_CPU, clientCpu: CLIENT_CPU, connections: CONNECTIONS, aloneRps, redisWarmupRequests: REDIS_WARMUP_REQUESTS, pageBytes: PAGE_BYTES, ...(ctx.policy === undefined ? {} : { policy: ctx.policy }) });
  },
};

async function runOne(
  ctx: BenchContext,
  pair: Pair,
  server: RunningServer,
  c: Condition,
  round: number,
  p: ReturnType<typeof params>,
  noisyCg: BenchCgroup,
): Promise<ServerRun> {
  const { res } = ctx;
  const knob = weightKnob(noisyCg);
  let agent: RunningAgent | undefined;
  let hog: Proc | undefined;
  try {
    // Whatever a previous run's agent did was restored when it stopped; make sure of it.
    noisyCg.write(knob.file, knob.neutral);
    unlimitQuota(noisyCg);
    let repinned = false;
    if (cgroupCpus(server.cg) !== String(CONTENTION_CPU)) {
      for (const pid of server.cg.read('cgroup.procs').split('\n').filter(Boolean)) {
        await res.run('taskset', ['-a', '-p', '-c', String(CONTENTION_CPU), pid], { name: 'taskset' });
      }
      repinned = true;
    }
    if (!server.proc.running) throw new TunerError('INTERNAL', `run ${pair.label}: the server (pid ${server.proc.pid}) exited — ${server.proc.stderrTail(5).replace(/\n/g, ' | ')}`);
    if (c.agent) {
      agent = await startAgent(res, {
        // debug: one line per tick with the server's run-queue p99, what the policy decides on.
        logLevel: 'debug',
        config: {
          ...policyOf(ctx.policy),
          targets: [
            { name: pair.id, role: 'protect', cgroup: server.cg.path },
            { name: 'neighbour', role: 'noisy', cgroup: noisyCg.path },
          ],
        },
      });
    }
    let contention: number | undefined;
    if (c.neighbour) {
      contention = Date.now();
      hog = res.spawn(toolPath('hog'), ['--threads', '4'], { cpu: CONTENTION_CPU, cgroup: noisyCg.path, name: 'hog' });
    }
    // Load before measuring, in every condition alike: an idle server has no run-queue waits for the agent to see,
    // so only a server under load lets it find the contention and nudge before the measured run starts.
    await pair.measure(res, server, p.settleS);
    const weightStart = Number(noisyCg.read(knob.file));
    const quotaStart = quotaCpus(noisyCg);
    const serverCpusStart = cgroupCpus(server.cg);
    const t0 = Date.now();
    const m = await pair.measure(res, server, p.measureS);
    const t1 = Date.now();
    const clientS = (t1 - t0) / 1000;
    const weightEnd = Number(noisyCg.read(knob.file));
    const quotaEnd = quotaCpus(noisyCg);
    const serverCpusEnd = cgroupCpus(server.cg);
    await hog?.stop('SIGTERM', 5000);
    const out: ServerRun = {
      round,
      pair: pair.id,
      condition: c.id,
      p50Us: m.p50Us,
      p99Us: m.p99Us,
      rps: m.rps,
      requests: m.requests,
      clientS,
      neighbourWeightStart: weightStart,
      neighbourWeightEnd: weightEnd,
      neighbourQuotaStart: quotaStart,
      neighbourQuotaEnd: quotaEnd,
      serverCpusStart,
      serverCpusEnd,
      ...(repinned ? { repinned } : {}),
    };
    if (agent) {
      const log = agent.log();
      await agent.stop();
      agent = undefined;
      const since = contention ?? t0;
      const first = log.find((l) => l.kind === 'applied' && l.time >= since);
      out.reactionMs = first ? first.time - since : undefined;
      out.applied = appliedActions(log, since);
      out.reverts = log.filter((l) => l.kind === 'reverted' || l.kind === 'restored').length;
      out.decisions = log
        .filter((l) => typeof l.kind === 'string' && typeof l.action === 'string')
        .map((l) => ({ t: (l.time - since) / 1000, kind: String(l.kind), action: l.action, target: l.target, from: l.from, to: l.to }));
      out.agentP99s = tickP99s(log, pair.id, t0, t1);
    }
    return out;
  } finally {
    await hog?.stop('SIGKILL', 5000);
    await agent?.stop();
  }
}

const PAIR_LABEL: Record<PairId, string> = { nginx: nginx.label, redis: redis.label };

/** Applied decisions per action, median over runs: "cpuset_spread 1, cpu_weight 0", or "none". */
function appliedCell(runs: ServerRun[]): string {
  const actions = [...new Set(runs.flatMap((r) => Object.keys(r.applied ?? {})))].sort();
  if (actions.length === 0) return 'none';
  return actions.map((a) => `${a} ${fmt(median(runs.map((r) => r.applied?.[a] ?? 0)), 1)}`).join(', ');
}

/** The value most runs had (ties: the first seen), for a per-run string such as the server's CPUs. */
function mostCommon(xs: string[]): string {
  const n = new Map<string, number>();
  for (const x of xs) n.set(x, (n.get(x) ?? 0) + 1);
  let best = '—';
  let k = 0;
  for (const [x, c] of n) if (c > k) [best, k] = [x, c];
  return best;
}

/** The agent's view over all its runs: median per-tick run-queue p99 of the server, and ticks over the threshold. */
function agentP99Cell(runs: ServerRun[]): string {
  const ticks = runs.flatMap((r) => r.agentP99s ?? []);
  if (ticks.length === 0) return '—';
  return `${fmt(median(ticks), 0)}; ${ticks.filter((x) => x > POLICY_P99_THRESHOLD_US).length} of ${ticks.length}`;
}

export function summarize(runs: ServerRun[], p: Record<string, unknown> & { rounds: number; measureS: number; settleS: number }) {
  const of = (pair: PairId, c: ConditionId) => runs.filter((r) => r.pair === pair && r.condition === c);
  const med = (pair: PairId, c: ConditionId, k: 'p50Us' | 'p99Us' | 'rps' | 'clientS' | 'neighbourWeightStart' | 'neighbourWeightEnd') =>
    median(of(pair, c).map((r) => r[k] ?? NaN));
  const pairs = PAIRS.map((x) => x.id).filter((id) => runs.some((r) => r.pair === id));
  const tables: Table[] = pairs.map((pair) => {
    const iso99 = med(pair, 'isolated', 'p99Us');
    const isoRps = med(pair, 'isolated', 'rps');
    return {
      title: `${PAIR_LABEL[pair]}: latency and throughput as the client measured them, median over rounds`,
      columns: [
        'condition',
        'p50 µs',
        'p99 µs',
        'p99 × isolated',
        'requests/s',
        'throughput × isolated',
        'client run s',
        "server's CPUs (run start → end)",
        "neighbour's CPU weight (run start → end)",
        "neighbour's CPU quota (run start → end)",
        'neighbour start → first applied action',
        'agent actions applied per run',
        `agent's run-queue p99 of the server, µs (median tick; ticks > ${POLICY_P99_THRESHOLD_US / 1000} ms)`,
      ],
      rows: CONDITIONS.map((c) => {
        const a = of(pair, c.id);
        const missed = a.filter((r) => r.reactionMs === undefined).length;
        const reaction = median(a.map((r) => (r.reactionMs === undefined ? NaN : r.reactionMs / 1000)));
        return [
          c.label,
          fmt(med(pair, c.id, 'p50Us'), 0),
          fmt(med(pair, c.id, 'p99Us'), 0),
          fmtRatio(ratio(med(pair, c.id, 'p99Us'), iso99)),
          fmt(med(pair, c.id, 'rps'), 0),
          fmtRatio(ratio(med(pair, c.id, 'rps'), isoRps)),
          fmt(med(pair, c.id, 'clientS'), 1),
          `${mostCommon(a.map((r) => r.serverCpusStart))} → ${mostCommon(a.map((r) => r.serverCpusEnd))}`,
          c.neighbour ? `${fmt(med(pair, c.id, 'neighbourWeightStart'), 0)} → ${fmt(med(pair, c.id, 'neighbourWeightEnd'), 0)}` : '—',
          c.neighbour ? `${fmtQuota(medianQuota(a.map((r) => r.neighbourQuotaStart)))} → ${fmtQuota(medianQuota(a.map((r) => r.neighbourQuotaEnd)))}` : '—',
          c.agent ? `${fmt(reaction, 2)} s${missed ? ` (none in ${missed} of ${a.length} runs)` : ''}` : '—',
          c.agent ? appliedCell(a) : '—',
          c.agent ? agentP99Cell(a) : '—',
        ];
      }),
    };
  });

  const goals: Goal[] = [];
  const agentNotes: string[] = [];
  for (const pair of pairs) {
    const iso99 = med(pair, 'isolated', 'p99Us');
    const with99 = med(pair, 'agent', 'p99Us');
    const without99 = med(pair, 'neighbour', 'p99Us');
    const withAgent = ratio(with99, iso99);
    const noAgent = ratio(without99, iso99);
    goals.push({
      goal: `real server p99 with the agent ≤ ${GOAL_RATIO}× isolated (${PAIR_LABEL[pair]})`,
      measured: `${fmtRatio(withAgent)} (${fmt(with99, 0)} vs ${fmt(iso99, 0)} µs); no agent: ${fmtRatio(noAgent)} (${fmt(without99, 0)} µs)`,
      met: Number.isFinite(withAgent) ? withAgent <= GOAL_RATIO : null,
    });
    if (Number.isFinite(withAgent)) agentNotes.push(explainAgent(pair, runs, withAgent, noAgent));
  }
  const repinned = runs.filter((r) => r.repinned).length;

  const charts: BarPanel[] = pairs.map((pair) => {
    const iso99 = med(pair, 'isolated', 'p99Us');
    const groups = CONDITIONS.map((c) => {
      const a = of(pair, c.id);
      const s50 = spread(a.map((r) => r.p50Us));
      const s99 = spread(a.map((r) => r.p99Us));
      return { label: c.label.replace('with neighbour', 'neighbour'), values: [med(pair, c.id, 'p50Us'), med(pair, c.id, 'p99Us')], lo: [s50[0], s99[0]], hi: [s50[1], s99[1]] };
    });
    return {
      kind: 'bar',
      title: `${PAIR_LABEL[pair]}: client-measured latency (median over rounds, min–max whiskers)`,
      yLabel: 'µs',
      series: ['p50', 'p99'],
      groups,
      logY: true,
      digits: 0,
      ...(Number.isFinite(iso99) ? { refLine: { value: GOAL_RATIO * iso99, label: `goal: p99 ≤ ${GOAL_RATIO}× isolated` } } : {}),
    };
  });

  return {
    params: p,
    tables,
    goals,
    notes: [
      `Servers: nginx (master_process on, worker_processes 1, access_log off, one ${PAGE_BYTES}-byte static file over keep-alive HTTP/1.1) and redis-server (--save '' --appendonly no; GET of one 3-byte key set by the warm-up), each started once by the bench on a free 127.0.0.1 port and kept for the whole section. Each server and the neighbour (tools/bin/hog --threads 4) are pinned to CPU ${CONTENTION_CPU} (taskset), each in its own cgroup under one bench cgroup, with equal CPU weight before every run; the clients are pinned to CPU ${CLIENT_CPU} and are in no target.`,
      `Clients: closed loops of ${CONNECTIONS} connections, so each request waits for the previous one on its connection and the latency is the server's wake-up, run-queue wait and work: \`wrk -t1 -c${CONNECTIONS} -d${p.measureS}s --latency\`; \`redis-benchmark -c ${CONNECTIONS} -t get -n N --csv\` with N = the GET throughput measured alone at the start × ${p.measureS} s — the same count in every condition, so a slowed server's run lasts longer ("client run s").`,
      `Every run: the agent (condition 3) starts and logs that it is running, then the neighbour starts, then an unmeasured client run of ${p.settleS} s (in every condition alike): an idle server has no run-queue waits for the agent to measure, so it can only find the contention while the server is under load, and the host's CPU pressure (a 10 s average) takes about 5 s to cross the pressure_backoff threshold, which is when its first cut lands. Then the measured client run of ${p.measureS} s. Conditions are interleaved per pair within each round; ${p.rounds} round(s); values are medians over rounds.`,
      `The agent runs its default config apart from the two targets (server protect, neighbour noisy): default signals and rules, 1 s tick. Its default rules that can act here: noisy_neighbor lowers the neighbour's CPU weight when the server's run-queue p99, as the agent measures it, is over ${POLICY_P99_THRESHOLD_US / 1000} ms for ${POLICY.noisyNeighbor.triggerTicks} ticks; pressure_backoff caps the neighbour's CPU quota (× ${POLICY.pressureBackoff.decreaseFactor} per step, never below ${POLICY.pressureBackoff.floorCpus} CPU; + ${POLICY.pressureBackoff.increaseStepCpus} CPU per step back up once calm) when CPU pressure (PSI "some" avg10, the host's or the server's) is over ${POLICY.pressureBackoff.psiSomeAvg10Threshold}% for ${POLICY.pressureBackoff.triggerTicks} ticks; cpuset_spread widens the server's CPU affinity when its threads queue on one CPU while another it may use is idle (the bench's taskset pinning does not forbid that: the cgroup's cpuset allows both CPUs). "server's CPUs" is the threads' Cpus_allowed_list, "neighbour's CPU weight" the noisy cgroup's cpu.shares (cpu.weight on cgroup v2) and "CPU quota" its cpu.cfs_quota_us / cpu.cfs_period_us (cpu.max), read when the measured client run started and ended; the agent restores them when it stops, and the bench resets them before every run.`,
      ...policyNotes(p.policy),
      ...agentNotes,
      ...(repinned ? [`In ${repinned} run(s) the server was not on CPU ${CONTENTION_CPU} alone before the run and the bench pinned it again.`] : []),
    ],
    charts,
    data: { runs },
  };
}

/** What the agent did for one pair and what the numbers show, for the notes; says so first when the goal is missed. */
export function explainAgent(pair: PairId, runs: ServerRun[], withAgent: number, noAgent: number): string {
  const a = runs.filter((r) => r.pair === pair && r.condition === 'agent');
  const applied = appliedCell(a);
  const acted = a.some((r) => Object.values(r.applied ?? {}).some((n) => n > 0));
  const ticks = a.flatMap((r) => r.agentP99s ?? []);
  const over = ticks.filter((x) => x > POLICY_P99_THRESHOLD_US).length;
  const cpusEnd = mostCommon(a.map((r) => r.serverCpusEnd));
  const weightEnd = median(a.map((r) => r.neighbourWeightEnd ?? NaN));
  const quotaEnd = medianQuota(a.map((r) => r.neighbourQuotaEnd));
  const missed = withAgent > GOAL_RATIO;
  const parts = [`${PAIR_LABEL[pair]}: goal ${missed ? 'missed' : 'met'} — p99 ${fmtRatio(withAgent)} isolated with the agent, ${fmtRatio(noAgent)} without`];
  if (!acted) {
    // Without a change the agent left everything the server depends on as it was: a difference is other load.
    parts.push('the agent applied no action in any run, so the difference between the two is run-to-run variation, not its doing');
  } else {
    const removed = Number.isFinite(noAgent) && noAgent > 1 ? (noAgent - withAgent) / (noAgent - 1) : NaN;
    parts.push(`actions applied per run (median): ${applied}; at the end of the measured run (median) the server's CPUs were ${cpusEnd}, the neighbour's weight ${fmt(weightEnd, 0)} and its CPU quota ${fmtQuota(quotaEnd)}`);
    if (Number.isFinite(removed)) parts.push(removed > 0 ? `${fmt(Math.min(removed, 1) * 100, 0)}% of the p99 the neighbour added is gone` : 'none of the p99 the neighbour added is gone');
    if (cpusEnd !== String(CONTENTION_CPU) && cpusEnd !== '—') parts.push(`the server could run on CPU ${CLIENT_CPU} too, beside the client and away from the neighbour`);
  }
  if (ticks.length) {
    parts.push(
      `the server's run-queue p99 as the agent measured it: ${fmt(median(ticks), 0)} µs in the median tick of the measured runs, over the cpu_weight threshold of ${POLICY_P99_THRESHOLD_US / 1000} ms in ${over} of ${ticks.length} ticks`,
    );
    const iso99 = median(runs.filter((r) => r.pair === pair && r.condition === 'isolated').map((r) => r.p99Us));
    // The signal counts every wait of the server's threads for a CPU, after a wake-up and after a preemption alike.
    if (missed && acted && median(ticks) < iso99) {
      parts.push("so the p99 that is left is not the server's threads waiting for a CPU: the agent's signal counts their waits after a wake-up and after a preemption alike, and where those slow requests wait is not measured here");
    }
  }
  return `${parts.join('; ')}.`;
}
