/**
 * Everything a benchmark run creates on the host, owned in one place so it is all undone at the end, on an error,
 * and on Ctrl-C/SIGTERM: processes (started in their own process group and ended by pid), cgroups named
 * `ebpf-tuner-bench-<our pid>-<random>` under the cpu controller, temporary directories, and anything else with a
 * close() (BPF objects, the BPF stats fd, the browser that draws the charts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TunerError, errnoCode } from '../core/errors.js';
import { removeCgroupTree } from '../cgroup/cgroup.js';
import { detectLayout } from '../cgroup/layout.js';
import { pidAlive } from '../core/pid.js';

export const BENCH_CGROUP_PREFIX = 'ebpf-tuner-bench-';
export const BENCH_TMP_PREFIX = 'ebpf-tuner-bench-';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOpts {
  /** Run inside this cgroup from its first instruction (a shell joins it, then execs the command). */
  cgroup?: string;
  /** Pin to this CPU with taskset. */
  cpu?: number;
  /** Short name for messages. */
  name?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** A process the bench started. Output is read continuously (so it never blocks on a full pipe) and split in lines. */
export class Proc {
  readonly pid: number;
  readonly name: string;
  readonly command: string;
  readonly exited: Promise<Exit>;
  /** Every stdout line, in order. */
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  private readonly errTail: string[] = [];
  private readonly waiters = new Set<{ re: RegExp; resolve: (line: string) => void }>();
  private exit?: Exit;

  constructor(child: ChildProcess, name: string, command: string) {
    if (child.pid === undefined) throw new TunerError('INTERNAL', `start ${command}: no pid (is the executable installed?)`);
    this.pid = child.pid;
    this.child = child;
    this.name = name;
    this.command = command;
    this.exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      child.once('error', () => {
        this.exit = { code: child.exitCode, signal: child.signalCode };
        resolve(this.exit);
      });
    });
    splitLines(child.stdout, (l) => {
      this.lines.push(l);
      this.match(l);
    });
    splitLines(child.stderr, (l) => {
      this.errTail.push(l);
      if (this.errTail.length > 40) this.errTail.shift();
      this.match(l);
    });
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  get exitStatus(): Exit | undefined {
    return this.exit;
  }

  stderrTail(n = 10): string {
    return this.errTail.slice(-n).join('\n');
  }

  stdout(): string {
    return this.lines.join('\n');
  }

  /** Resolves with the first stdout/stderr line matching `re` from now on or already seen on stdout. */
  waitForLine(re: RegExp, timeoutMs: number): Promise<string> {
    const seen = this.lines.find((l) => re.test(l)) ?? this.errTail.find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<string>((resolve, reject) => {
      const w = { re, resolve: (l: string) => done(() => resolve(l)) };
      const timer = setTimeout(
        () => done(() => reject(new TunerError('INTERNAL', `start ${this.name}: no line matching ${re} within ${timeoutMs} ms${this.tailText()}`))),
        timeoutMs,
      );
      const done = (f: () => void): void => {
        clearTimeout(timer);
        this.waiters.delete(w);
        f();
      };
      this.waiters.add(w);
      void this.exited.then((e) =>
        done(() =>
          reject(new TunerError('INTERNAL', `start ${this.name}: exited (${e.signal ?? `code ${e.code}`}) before ready${this.tailText()}`)),
        ),
      );
    });
  }

  /** Sends `signal`, waits up to `graceMs` for the exit, then SIGKILLs the whole process group. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<Exit> {
    if (!this.running) return this.exit!;
    this.kill(signal, false);
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.exited, new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), graceMs)))]);
    clearTimeout(timer);
    if (r !== 'timeout') {
      // Children it forked (perf bench's workers) must not outlive it.
      this.kill('SIGKILL', true);
      return r;
    }
    this.kill('SIGKILL', true);
    return this.exited;
  }

  /** Signals the process (group: its whole process group, which it leads). Never throws for a gone process. */
  kill(signal: NodeJS.Signals, group: boolean): void {
    try {
      process.kill(group ? -this.pid : this.pid, signal);
    } catch (e) {
      if (errnoCode(e) !== 'ESRCH') throw e;
    }
  }

  private tailText(): string {
    const t = this.stderrTail(5);
    return t ? ` — stderr: ${t.replace(/\n/g, ' | ')}` : '';
  }

  private match(line: string): void {
    for (const w of [...this.waiters]) if (w.re.test(line)) w.resolve(line);
  }
}

function splitLines(stream: NodeJS.ReadableStream | null, onLine: (l: string) => void): void {
  if (!stream) return;
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  stream.on('end', () => {
    if (buf) onLine(buf);
    buf = '';
  });
}

export interface BenchCgroup {
  readonly path: string;
  child(name: string): BenchCgroup;
  /** Writes a control file of this cgroup. */
  write(file: string, value: string): void;
  /** Reads a control file of this cgroup, trimmed. */
  read(file: string): string;
  /** Whether this cgroup has the control file (cpu.shares on cgroup v1, cpu.weight on v2). */
  has(file: string): boolean;
}

export class Resources {
  readonly procs = new Map<number, Proc>();
  /** Every process started, for the record (and for the smoke test's "nothing left behind"). */
  readonly started: { pid: number; name: string }[] = [];
  /** Every top-level cgroup and temporary directory made, for the same record. */
  readonly madeCgroups: string[] = [];
  readonly madeTempDirs: string[] = [];
  private readonly cgroups = new Map<string, string>(); // top-level cgroup → controller mount
  private readonly tempDirs = new Set<string>();
  private readonly closers = new Map<string, () => void | Promise<void>>();
  private cpuMount?: string;
  private cleaning?: Promise<void>;
  private aborted = false;

  spawn(cmd: string, args: string[], opts: SpawnOpts = {}): Proc {
    this.refuseIfAborted(`start ${cmd}`);
    let argv = [cmd, ...args];
    if (opts.cpu !== undefined) argv = ['taskset', '-c', String(opts.cpu), ...argv];
    if (opts.cgroup !== undefined) {
      argv = ['/bin/sh', '-c', 'echo $$ > "$0" && exec "$@"', path.join(opts.cgroup, 'cgroup.procs'), ...argv];
    }
    // Its own process group: a terminal's Ctrl-C reaches only the bench, which then stops everything in order (the
    // agent first gets SIGTERM so it restores its knobs), and a workload's forked children can be killed with it.
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    const name = opts.name ?? path.basename(cmd);
    const p = new Proc(child, name, [cmd, ...args].join(' '));
    this.procs.set(p.pid, p);
    this.started.push({ pid: p.pid, name });
    void p.exited.then(() => {
      this.procs.delete(p.pid);
      // The leader is gone; a straggler it forked must not survive it.
      p.kill('SIGKILL', true);
    });
    return p;
  }

  /** Runs a command to completion; throws with its stderr when it fails. */
  async run(cmd: string, args: string[], opts: SpawnOpts = {}): Promise<{ stdout: string; stderr: string }> {
    const p = this.spawn(cmd, args, opts);
    const e = await p.exited;
    if (e.code !== 0) {
      throw new TunerError('INTERNAL', `run ${p.command}: ${e.signal ?? `exit code ${e.code}`}${p.stderrTail() ? ` — ${p.stderrTail(5).replace(/\n/g, ' | ')}` : ''}`);
    }
    return { stdout: p.stdout(), stderr: p.stderrTail(40) };
  }

  /** A fresh top-level cgroup under the cpu controller: <cpu mount>/ebpf-tuner-bench-<pid>-<random>. */
  makeCgroup(label = ''): BenchCgroup {
    this.refuseIfAborted('create a bench cgroup');
    const mount = this.cpuControllerMount();
    const dir = path.join(mount, `${BENCH_CGROUP_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}${label ? `-${label}` : ''}`);
    fs.mkdirSync(dir);
    this.cgroups.set(dir, mount);
    this.madeCgroups.push(dir);
    return cgroupHandle(dir);
  }

  /** Removes one top-level cgroup made by makeCgroup (and everything below it) now. */
  removeCgroup(cg: BenchCgroup): void {
    const mount = this.cgroups.get(cg.path);
    if (mount === undefined) return;
    removeCgroupTree(cg.path, mount);
    this.cgroups.delete(cg.path);
  }

  tempDir(label: string): string {
    this.refuseIfAborted('create a temporary directory');
    const d = fs.mkdtempSync(path.join(os.tmpdir(), `${BENCH_TMP_PREFIX}${label}-`));
    this.tempDirs.add(d);
    this.madeTempDirs.push(d);
    return d;
  }

  removeTempDir(d: string): void {
    fs.rmSync(d, { recursive: true, force: true });
    this.tempDirs.delete(d);
  }

  /** Registers something to close at cleanup; returns a function that closes it now and forgets it. */
  own(key: string, close: () => void | Promise<void>): () => Promise<void> {
    this.closers.set(key, close);
    return async () => {
      if (!this.closers.delete(key)) return;
      await close();
    };
  }

  /** Removes cgroups left by earlier bench runs whose process no longer exists (a run killed with SIGKILL). */
  sweepStale(): string[] {
    const removed: string[] = [];
    for (const m of detectLayout().mounts) {
      let names: string[];
      try {
        names = fs.readdirSync(m.mount);
      } catch {
        continue;
      }
      for (const n of names) {
        if (!n.startsWith(BENCH_CGROUP_PREFIX)) continue;
        const owner = Number(n.slice(BENCH_CGROUP_PREFIX.length).split('-')[0]);
        if (!Number.isSafeInteger(owner) || owner <= 0 || owner === process.pid || pidAlive(owner)) continue;
        try {
          removeCgroupTree(path.join(m.mount, n), m.mount);
          removed.push(path.join(m.mount, n));
        } catch {
          // left for the next sweep
        }
      }
    }
    return removed;
  }

  /**
   * Cleanup for an interrupted run: from now on nothing new may start (a section still unwinding must not spawn
   * past the cleanup), then everything is undone.
   */
  abort(): Promise<void> {
    this.aborted = true;
    return this.cleanup();
  }

  private refuseIfAborted(what: string): void {
    if (this.aborted) throw new TunerError('INTERNAL', `${what}: the benchmark is stopping`);
  }

  /** Undoes everything: processes (SIGTERM, then SIGKILL of the group), closers, cgroups, temp dirs. Idempotent. */
  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      const errors: string[] = [];
      await Promise.all([...this.procs.values()].map((p) => p.stop('SIGTERM', 5000).catch((e) => errors.push(String(e)))));
      for (const [key, close] of [...this.closers].reverse()) {
        this.closers.delete(key);
        try {
          await close();
        } catch (e) {
          errors.push(`close ${key}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      errors.push(...this.removeAllSync());
      this.cleaning = undefined;
      if (errors.length) throw new TunerError('INTERNAL', `clean up after the benchmark: ${errors.join('; ')}`);
    })();
    return this.cleaning;
  }

  /** The part of cleanup that works synchronously, for the process 'exit' hook: kill, remove cgroups and temp dirs. */
  cleanupSync(): void {
    for (const p of this.procs.values()) p.kill('SIGKILL', true);
    this.removeAllSync();
  }

  private removeAllSync(): string[] {
    const errors: string[] = [];
    for (const [dir, mount] of [...this.cgroups]) {
      try {
        removeCgroupTree(dir, mount);
        this.cgroups.delete(dir);
      } catch (e) {
        errors.push(e instanceof Error ? e.message : String(e));
      }
    }
    for (const d of [...this.tempDirs]) {
      try {
        this.removeTempDir(d);
      } catch (e) {
        errors.push(`remove ${d}: ${String(e)}`);
      }
    }
    return errors;
  }

  private cpuControllerMount(): string {
    if (this.cpuMount) return this.cpuMount;
    const cpu = detectLayout().controllers.cpu;
    if (!cpu) throw new TunerError('CGROUP_UNSUPPORTED', 'create a bench cgroup: no hierarchy has the cpu controller — the agent needs one too');
    this.cpuMount = cpu.mount;
    return cpu.mount;
  }
}

function cgroupHandle(dir: string): BenchCgroup {
  return {
    path: dir,
    child(name: string): BenchCgroup {
      const d = path.join(dir, name);
      fs.mkdirSync(d);
      return cgroupHandle(d);
    },
    write(file: string, value: string): void {
      fs.writeFileSync(path.join(dir, file), value);
    },
    read(file: string): string {
      return fs.readFileSync(path.join(dir, file), 'utf8').trim();
    },
    has(file: string): boolean {
      return fs.existsSync(path.join(dir, file));
    },
  };
}
