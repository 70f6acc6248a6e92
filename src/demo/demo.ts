/**
 * `ebpf-tuner demo`: the newcomer's first minute. In cgroups it creates, it runs a latency-sensitive victim (it
 * measures its own request latency) and, on the same CPU, a noisy neighbour; it shows the victim's p50/p99 alone,
 * beside the neighbour, and beside the neighbour with the agent acting — with the dashboard live meanwhile — and
 * removes everything at the end or on Ctrl-C. Nothing outside its own cgroups is touched.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { channels } from '../core/events.js';
import { TunerError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { parseConfig } from '../config/load.js';
import { removeCgroupTree } from '../cgroup/cgroup.js';
import { detectLayout } from '../cgroup/layout.js';
import { pidAlive } from '../core/pid.js';
import { cpuHierarchy } from '../agent/resolve.js';
import { Agent } from '../agent/agent.js';
import { agentControl } from '../agent/control.js';
import { toolPath } from '../bpf/paths.js';
import type { AuditRecord } from '../audit/audit.js';

export interface DemoOptions {
  /** Seconds per phase (alone, beside the neighbour, with the agent). */
  seconds: number;
  listen?: string;
  json?: boolean;
}

interface Phase {
  name: string;
  p50: number[];
  p99: number[];
}

const PREFIX = 'ebpf-tuner-demo-';

const median = (xs: number[]) => (xs.length ? xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)] : NaN);
const ms = (us: number) => (Number.isFinite(us) ? `${(us / 1000).toFixed(2)} ms` : 'n/a');

export async function runDemo(opts: DemoOptions): Promise<number> {
  if (process.getuid?.() !== 0) throw new TunerError('PERMISSION', 'run demo: needs root (it creates cgroups and attaches BPF programs) — fix: sudo ebpf-tuner demo');
  for (const t of ['victim', 'hog']) {
    if (!existsSync(toolPath(t))) throw new TunerError('INTERNAL', `run demo: ${toolPath(t)} is not built — fix: run scripts/setup.sh`);
  }
  const out = (s: string) => process.stdout.write(s + '\n');
  const tty = process.stdout.isTTY === true && !opts.json;
  const layout = detectLayout();
  const cpu = cpuHierarchy(layout);
  // Demos killed hard leave their cgroups; remove those whose process is gone before making new ones.
  for (const name of readdirSync(cpu.mount)) {
    const m = new RegExp(`^${PREFIX}(\\d+)$`).exec(name);
    if (m && !pidAlive(Number(m[1]))) removeCgroupTree(join(cpu.mount, name), cpu.mount);
  }
  const base = join(cpu.mount, `${PREFIX}${process.pid}`);
  const victimCg = join(base, 'victim');
  const noisyCg = join(base, 'noisy');
  mkdirSync(victimCg, { recursive: true });
  mkdirSync(noisyCg, { recursive: true });
  const state = mkdtempSync(join(tmpdir(), 'ebpf-tuner-demo-'));
  const children: ChildProcess[] = [];
  let agent: Agent | undefined;
  let http: { url: string; close(): Promise<void> } | undefined;
  let interrupted = false;
  const cpuId = String(availableParallelism() - 1);

  const cleanup = async (): Promise<void> => {
    await agent?.stop();
    await http?.close();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    removeCgroupTree(base, cpu.mount);
    rmSync(state, { recursive: true, force: true });
  };
  const onSignal = () => {
    interrupted = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  // A child started inside a cgroup: the shell joins the cgroup, then execs the program pinned to one CPU, so the
  // contention is the same on any machine.
  const start = (cg: string, cmd: string, args: string[]): ChildProcess => {
    const c = spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && cpu=$1 && shift && exec taskset -c "$cpu" "$@"', cg, cpuId, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(c);
    return c;
  };

  const phases: Phase[] = [];
  let current: Phase | undefined;
  try {
    const victim = spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec taskset -c "$1" "$2" --period-us 5000 --work-us 1000 --report-ms 1000 --quiet', victimCg, cpuId, toolPath('victim')], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(victim);
    createInterface({ input: victim.stdout! }).on('line', (line) => {
      try {
        const r = JSON.parse(line) as { p50_us: number; p99_us: number; final?: boolean };
        if (!r.final && current) {
          current.p50.push(r.p50_us);
          current.p99.push(r.p99_us);
        }
      } catch {
        // not a report line
      }
    });

    const decisions: AuditRecord[] = [];
    const onDecision = (d: unknown) => {
      const r = d as AuditRecord;
      if (r.kind !== 'refused') decisions.push(r);
      if (!opts.json && (r.kind === 'applied' || r.kind === 'reverted' || r.kind === 'restored')) {
        out(`${tty ? '\r\x1b[K' : ''}  agent: ${r.kind} ${r.action} on ${r.target} ${r.from ?? ''} → ${r.to ?? ''} — ${r.reason}`);
      }
    };

    const runPhase = async (name: string, seconds = opts.seconds): Promise<void> => {
      current = { name, p50: [], p99: [] };
      phases.push(current);
      const t0 = Date.now();
      while (Date.now() - t0 < seconds * 1000 && !interrupted) {
        await new Promise((r) => setTimeout(r, 250));
        if (tty) {
          const s = ((Date.now() - t0) / 1000).toFixed(0);
          process.stdout.write(`\r\x1b[K${name.padEnd(34)} ${s}/${seconds}s   victim p99 now ${ms(current.p99.at(-1) ?? NaN)}`);
        }
      }
      if (tty) process.stdout.write('\r\x1b[K');
      if (!opts.json) out(`${name.padEnd(34)} victim p50 ${ms(median(current.p50)).padStart(9)}   p99 ${ms(median(current.p99)).padStart(9)}`);
    };

    if (!opts.json) out(`demo: victim and noisy neighbour in ${base}, both on CPU ${cpuId}; ${opts.seconds}s per phase (Ctrl-C to stop)`);
    await runPhase('1. victim alone');
    if (!interrupted) {
      start(noisyCg, toolPath('hog'), ['--threads', '4']);
      await runPhase('2. beside a noisy neighbour');
    }
    if (!interrupted) {
      const config = parseConfig(
        `tick: 1s
policy: {noisy_neighbor: {p99_threshold_us: 3000}}
targets:
  - {name: victim, cgroup: ${victimCg}, role: protect}
  - {name: noisy, cgroup: ${noisyCg}, role: noisy}
`,
        '<demo>',
      );
      agent = new Agent({ config, log: createLogger({ level: process.env.EBPF_TUNER_LOG_LEVEL ?? 'warn', fd: 2 }), stateDir: state });
      channels.decision.subscribe(onDecision);
      await agent.start();
      const { startHttpServer } = await import('../http/server.js');
      http = await startHttpServer({ listen: opts.listen ?? '127.0.0.1:0', control: agentControl(agent), log: createLogger({ level: 'warn', fd: 2 }) });
      if (!opts.json) out(`dashboard: ${http.url}/  (live while the demo runs)`);
      // The agent needs a few ticks to see the contention and act; the victim is measured once it has.
      const acted = new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (interrupted || decisions.some((d) => d.kind === 'applied')) {
            clearInterval(t);
            resolve();
          }
        }, 100);
        setTimeout(() => (clearInterval(t), resolve()), opts.seconds * 2000);
      });
      if (tty) process.stdout.write('3. waiting for the agent to act...');
      await acted;
      if (tty) process.stdout.write('\r\x1b[K');
      await runPhase('3. beside it, with ebpf-tuner');
      channels.decision.unsubscribe(onDecision);
    }
    const [alone, noisy, tuned] = phases.map((p) => ({ phase: p.name, p50Us: median(p.p50), p99Us: median(p.p99) }));
    if (opts.json) {
      out(JSON.stringify({ phases: phases.map((p) => ({ phase: p.name, p50Us: median(p.p50), p99Us: median(p.p99), samples: p.p99.length })), decisions, interrupted, pids: children.map((c) => c.pid), cgroup: base }));
    } else if (tuned) {
      out('');
      out(`victim p99: ${ms(alone.p99Us)} alone, ${ms(noisy.p99Us)} beside the neighbour, ${ms(tuned.p99Us)} with the agent ` +
        `(${(tuned.p99Us / alone.p99Us).toFixed(2)}x its isolated p99; ${(noisy.p99Us / alone.p99Us).toFixed(2)}x without the agent)`);
      out(`decisions: ${decisions.filter((d) => d.kind === 'applied').length} applied — see them with the dashboard while it runs, or \`ebpf-tuner explain\` in a real run`);
    }
    return interrupted ? 130 : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
    if (!opts.json) out('demo: cleaned up (agent stopped and restored, processes ended, cgroups removed)');
  }
}
