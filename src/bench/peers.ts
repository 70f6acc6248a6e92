/**
 * The things a benchmark compares, each started as a real process and stopped again: the agent
 * (`bin/ebpf-tuner run`, as deployed), Debian's libbpf-tools `runqlat`, and bpftrace running run-queue-latency logic
 * equivalent to runqlat.bt. Each reports when it is attached and which BPF programs it holds.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { parseConfig, readYaml } from '../config/load.js';
import { holdTracefs } from '../bpf/tracefs.js';
import { TunerError } from '../core/errors.js';
import { projectRoot } from '../bpf/paths.js';
import { progIdsOf } from './bpf-progs.js';
import type { Proc, Resources } from './resources.js';

/**
 * runqlat.bt without its #include (the bundled script does not compile on recent kernels): the same three
 * tracepoints, TASK_RUNNING written as its value 0, and the timestamp map cleared at exit instead of printed.
 */
export const BPFTRACE_RUNQLAT = `
tracepoint:sched:sched_wakeup,
tracepoint:sched:sched_wakeup_new
{
	@qtime[args->pid] = nsecs;
}

tracepoint:sched:sched_switch
{
	if (args->prev_state == 0) {
		@qtime[args->prev_pid] = nsecs;
	}
	$ns = @qtime[args->next_pid];
	if ($ns) {
		@usecs = hist((nsecs - $ns) / 1000);
	}
	delete(@qtime[args->next_pid]);
}

END
{
	clear(@qtime);
}
`;

export const BCC_RUNQLAT = '/usr/sbin/runqlat';

export interface Running {
  readonly label: string;
  readonly proc?: Proc;
  /** BPF programs this peer holds now. */
  progIds(): number[];
  stop(): Promise<void>;
}

/** A target as the config file spells it: a name, a role and one scope. */
export type AgentTarget = { name: string; role: 'protect' | 'noisy' } & (
  | { cgroup: string }
  | { cgroup_pattern: string; max_matches?: number }
  | { comm: string }
  | { pidfile: string }
);

export interface AgentConfig {
  tick?: string;
  targets?: AgentTarget[];
  /** `signals:` as the config file spells it, e.g. { futex: { enabled: true, attach: 'tracepoint' } }. */
  signals?: Record<string, { enabled: boolean; attach?: string }>;
  /** `policy:` as the config file spells it, e.g. { noisy_neighbor: { event_driven: false } }. */
  policy?: AgentPolicy;
  /** `strategy:` as the config file spells it, e.g. { kind: 'learned', exploration: { uniform_share: 1 } }. */
  strategy?: Record<string, unknown>;
  /** `closed_loop:` as the config file spells it, e.g. { penalty: '0s' }. */
  closed_loop?: Record<string, unknown>;
}

/** `policy:` as the config file spells it: rule → its settings. */
export type AgentPolicy = Record<string, Record<string, unknown>>;

/**
 * The agent's `policy:` from `bench --policy`: YAML as the config file's `policy:` mapping spells it, checked by the
 * config's own schema (an error names the key and the fix, as `ebpf-tuner check` would) and kept as written, for the
 * configs the bench writes.
 */
export function parsePolicyOption(text: string): AgentPolicy {
  // Syntax first, so an error's line and column are the option's own; then the settings, under policy:.
  const { value } = readYaml(text, '--policy');
  parseConfig(JSON.stringify({ policy: value ?? {} }), '--policy');
  if (!isPolicy(value)) {
    throw new TunerError('CLI_USAGE', `read --policy: expected a mapping of rules to settings, got ${JSON.stringify(text)} — fix: e.g. --policy 'noisy_neighbor: {min_weight: 100}'`);
  }
  return value;
}

const isMapping = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isPolicy = (v: unknown): v is AgentPolicy => isMapping(v) && Object.values(v).every(isMapping);

/** A note for a section's summary when `bench --policy` changed the policy its agents ran, or nothing. */
export function policyNotes(policy: unknown): string[] {
  if (policy === undefined) return [];
  return [`\`bench --policy\`: every agent of this section ran with \`${stringify(policy, { collectionStyle: 'flow' }).trim()}\` laid over the policy described here; where a setting above is a default, this one applies instead.`];
}

/**
 * An agent config's `policy` part: `base` (`bench --policy`) with `over` (a condition's own settings) laid on top, rule
 * by rule; nothing when neither is given, so the agent runs its built-in policy.
 */
export function policyOf(base?: AgentPolicy, over?: AgentPolicy): { policy?: AgentPolicy } {
  if (base === undefined && over === undefined) return {};
  const policy: AgentPolicy = { ...base };
  for (const [rule, settings] of Object.entries(over ?? {})) policy[rule] = { ...policy[rule], ...settings };
  return { policy };
}

export interface AgentOptions {
  /** Omitted: no config file, the built-in defaults (every default signal, observing the whole host). */
  config?: AgentConfig;
  /** Node.js flags for the agent's process (`node <flags> bin/ebpf-tuner run …`), e.g. diagnostics. */
  nodeFlags?: string[];
  readyTimeoutMs?: number;
  /** `--log-level`; info by default. debug adds one `"msg":"tick"` line per tick with each target's run-queue p99. */
  logLevel?: 'info' | 'debug';
  /** Serve /metrics, the API and the dashboard on a free port of 127.0.0.1 (`--listen`), as a DaemonSet does. */
  listen?: boolean;
}

export interface AgentLogLine {
  time: number;
  msg?: string;
  kind?: string;
  action?: string;
  target?: string;
  from?: string;
  to?: string;
  [k: string]: unknown;
}

export class RunningAgent implements Running {
  readonly label = 'ebpf-tuner';
  constructor(
    readonly proc: Proc,
    private readonly res: Resources,
    private readonly dir: string,
    /** The config file it was started with, when it was given one. */
    readonly configFile?: string,
    /** The port of 127.0.0.1 it serves HTTP on, when started with `listen`. */
    readonly port?: number,
  ) {}

  /**
   * Rewrites the config file and sends SIGHUP, as an operator would; resolves with the agent's log line that answers
   * that reload ("config reloaded", "config unchanged" or a refusal).
   */
  async reload(config: AgentConfig, timeoutMs = 60_000): Promise<string> {
    if (!this.configFile) throw new TunerError('INTERNAL', 'reload the agent: it was started without a config file');
    const seen = this.proc.lines.length;
    // Replaced by rename, so the agent never reads a half-written file.
    writeFileSync(`${this.configFile}.new`, configYaml(config));
    renameSync(`${this.configFile}.new`, this.configFile);
    this.proc.kill('SIGHUP', false);
    const answer = /"msg":"(config reloaded|config unchanged|config reload refused|starting with the reloaded config failed)/;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.proc.lines.slice(seen).find((l) => answer.test(l));
      if (line) return line;
      if (!this.proc.running) throw new TunerError('INTERNAL', `reload the agent (pid ${this.proc.pid}): it exited${this.proc.stderrTail() ? ` — ${this.proc.stderrTail(5)}` : ''}`);
      if (Date.now() > deadline) throw new TunerError('INTERNAL', `reload the agent (pid ${this.proc.pid}): no answer to SIGHUP within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  progIds(): number[] {
    return progIdsOf(this.proc.pid);
  }

  /** The agent's JSON log lines so far (anything else on stdout is skipped). */
  log(): AgentLogLine[] {
    const out: AgentLogLine[] = [];
    for (const l of this.proc.lines) {
      if (!l.startsWith('{')) continue;
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        out.push({ ...o, time: typeof o.time === 'string' ? Date.parse(o.time) : Number(o.time) });
      } catch {
        // not a log line
      }
    }
    return out;
  }

  async stop(): Promise<void> {
    // SIGTERM lets it restore every knob it changed before it exits.
    const e = await this.proc.stop('SIGTERM', 15_000);
    this.res.removeTempDir(this.dir);
    if (e.signal === 'SIGKILL') throw new TunerError('INTERNAL', `stop the agent (pid ${this.proc.pid}): it did not exit on SIGTERM within 15 s`);
  }
}

function configYaml(c: AgentConfig): string {
  const doc: Record<string, unknown> = {};
  if (c.tick) doc.tick = c.tick;
  if (c.signals) doc.signals = c.signals;
  if (c.policy) doc.policy = c.policy;
  if (c.strategy) doc.strategy = c.strategy;
  if (c.closed_loop) doc.closed_loop = c.closed_loop;
  if (c.targets) doc.targets = c.targets;
  return stringify(doc);
}

/** The systemd unit the agent ships with: the bench runs its agents with the environment it sets. */
export const SYSTEMD_UNIT = path.join(projectRoot, 'deploy', 'systemd', 'ebpf-tuner.service');

/**
 * The variables a systemd unit's `Environment=` lines set, in order (a later one wins): each line holds assignments
 * separated by spaces, an assignment with spaces in double quotes, as systemd.exec(5) reads them.
 */
export function unitEnvironment(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^Environment=(.*)$/.exec(line.trim());
    if (m === null) continue;
    for (const [, quoted, bare] of m[1]!.matchAll(/"([^"]*)"|(\S+)/g)) {
      const word = quoted ?? bare!;
      const eq = word.indexOf('=');
      if (eq > 0) env[word.slice(0, eq)] = word.slice(eq + 1);
    }
  }
  return env;
}

export function agentBinary(): string {
  const bin = path.join(projectRoot, 'bin', 'ebpf-tuner');
  if (!existsSync(path.join(projectRoot, 'dist', 'cli', 'main.js'))) {
    throw new TunerError('INTERNAL', 'start the agent: dist/ is not built — fix: npx tsc -p tsconfig.json (or scripts/setup.sh)');
  }
  return bin;
}

/** Starts `ebpf-tuner run` with its own state directory and waits until it logs that it is running. */
export async function startAgent(res: Resources, opts: AgentOptions = {}): Promise<RunningAgent> {
  const dir = res.tempDir('agent');
  const args = ['run', '--state-dir', path.join(dir, 'state'), '--log-level', opts.logLevel ?? 'info'];
  let configFile: string | undefined;
  if (opts.config) {
    configFile = path.join(dir, 'config.yaml');
    writeFileSync(configFile, configYaml(opts.config));
    args.push('--config', configFile);
  }
  const port = opts.listen ? await freePort() : undefined;
  if (port !== undefined) args.push('--listen', `127.0.0.1:${port}`);
  // As the systemd unit runs it: V8's and the C allocator's memory settings are part of what the agent costs.
  const env = { ...process.env, ...unitEnvironment(readFileSync(SYSTEMD_UNIT, 'utf8')) };
  const proc = opts.nodeFlags?.length
    ? res.spawn(process.execPath, [...opts.nodeFlags, agentBinary(), ...args], { name: 'ebpf-tuner', env })
    : res.spawn(agentBinary(), args, { name: 'ebpf-tuner', env });
  const agent = new RunningAgent(proc, res, dir, configFile, port);
  try {
    await proc.waitForLine(/"msg":"agent running/, opts.readyTimeoutMs ?? 60_000);
  } catch (e) {
    await agent.stop().catch(() => undefined);
    throw e;
  }
  return agent;
}

class SimplePeer implements Running {
  constructor(
    readonly label: string,
    readonly proc: Proc,
    private readonly stopSignal: NodeJS.Signals,
  ) {}

  progIds(): number[] {
    return progIdsOf(this.proc.pid);
  }

  async stop(): Promise<void> {
    await this.proc.stop(this.stopSignal, 10_000);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A port on 127.0.0.1 that nothing listens on now (the kernel's pick; a server takes it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new TunerError('INTERNAL', 'pick a free port: the listener has no address'))));
    });
  });
}

/** Waits until the process holds at least `n` programs and the set has stopped growing (loading is done). */
async function settlePrograms(p: Running, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  for (;;) {
    const k = p.progIds().length;
    if (k >= n && k === last) return;
    if (Date.now() > deadline) {
      throw new TunerError('INTERNAL', `start ${p.label}: holds ${k} BPF programs after ${timeoutMs} ms, expected at least ${n}`);
    }
    last = k;
    await sleep(150);
  }
}

/** libbpf-tools runqlat: one histogram for the whole host, its default mode. */
export async function startBccRunqlat(res: Resources): Promise<Running> {
  if (!existsSync(BCC_RUNQLAT)) throw new TunerError('INTERNAL', `start runqlat: ${BCC_RUNQLAT} is missing — fix: apt-get install libbpf-tools`);
  // Line-buffered: it announces itself with printf on a pipe, which would otherwise sit in its stdio buffer.
  const proc = res.spawn('stdbuf', ['-oL', BCC_RUNQLAT], { name: 'runqlat' });
  const peer = new SimplePeer('libbpf-tools runqlat', proc, 'SIGINT');
  try {
    await proc.waitForLine(/Tracing run queue latency/, 20_000);
    await settlePrograms(peer, 3, 10_000);
  } catch (e) {
    await peer.stop();
    throw e;
  }
  return peer;
}

export async function startBpftrace(res: Resources): Promise<Running> {
  // bpftrace finds its tracepoints (formats and ids) through tracefs while it starts; once attached it needs it no more.
  const release = holdTracefs();
  try {
    const proc = res.spawn('bpftrace', ['-e', BPFTRACE_RUNQLAT], { name: 'bpftrace' });
    const peer = new SimplePeer('bpftrace runqlat', proc, 'SIGINT');
    try {
      await proc.waitForLine(/^Attaching \d+ probes/, 30_000);
      await settlePrograms(peer, 3, 10_000);
      // "Attaching" is printed before the attach calls; they take a few ms.
      await sleep(300);
    } catch (e) {
      await peer.stop();
      throw e;
    }
    return peer;
  } finally {
    release();
  }
}
