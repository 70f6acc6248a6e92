/** Running the real CLI (bin/ebpf-tuner → dist/) as a child process, for end-to-end tests. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { projectRoot, toolPath } from '../../src/bpf/paths.js';
import { afterAll, afterEach, beforeEach } from 'vitest';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, spawnTracked, type SpawnedProcess, type TestCgroup } from '../../src/testing/cgroups.js';

export const CLI = join(projectRoot, 'bin', 'ebpf-tuner');

export interface AgentProcess extends SpawnedProcess {
  /** Every JSON log line so far. */
  lines: Record<string, unknown>[];
  /** Resolves with the first log line `pred` accepts. */
  waitFor(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stderr(): string;
}

/** `ebpf-tuner run ARGS`; with `nodeFlags`, as `node FLAGS bin/ebpf-tuner run ARGS` (e.g. a profiler's). */
export function startAgent(args: string[], nodeFlags: string[] = []): AgentProcess {
  const p =
    nodeFlags.length === 0
      ? spawnTracked(CLI, ['run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawnTracked(process.execPath, [...nodeFlags, CLI, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  let err = '';
  createInterface({ input: p.child.stdout! }).on('line', (line) => {
    try {
      const l = JSON.parse(line) as Record<string, unknown>;
      lines.push(l);
      for (const w of waiters.slice()) if (w.pred(l)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(l));
    } catch {
      // not a log line
    }
  });
  p.child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return Object.assign(p, {
    lines,
    stderr: () => err,
    waitFor(pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000) {
      const hit = lines.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise<Record<string, unknown>>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${err}; last lines: ${JSON.stringify(lines.slice(-5))}`)), timeoutMs);
        waiters.push({ pred, resolve: (l) => (clearTimeout(t), resolve(l)) });
        void p.exited.then(() => setTimeout(() => reject(new Error(`agent exited; stderr: ${err}`)), 50));
      });
    },
  });
}

export function runCli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(CLI, args, { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function tempDir(prefix = 'ebpf-tuner-e2e-'): { path: string; file(name: string, text: string): string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    file(name, text) {
      const f = join(path, name);
      writeFileSync(f, text);
      return f;
    },
    remove: () => rmSync(path, { recursive: true, force: true }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `pred` until it holds; resolves with the ms that took, rejects after `timeoutMs` naming `what`. */
export async function waitUntil(pred: () => boolean, timeoutMs: number, what: string | (() => string) = 'condition', pollMs = 50): Promise<number> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${typeof what === 'string' ? what : what()}: not within ${timeoutMs} ms`);
    await sleep(pollMs);
  }
  return Date.now() - t0;
}

/*
 * The contention most end-to-end tests answer. The victim and the hogs share CPU 1: the same contention on any
 * machine, whatever else runs on the other CPU. The victim needs 60% of the CPU, more than its group's equal share
 * beside a busy sibling: under EEVDF a victim well within its share is woken almost at once whatever its neighbour
 * does, and there is nothing for the agent to fix.
 */

/** The latency victim on CPU 1, in `cgroup`. */
export function spawnVictim(cgroup: string): Promise<SpawnedProcess> {
  return spawnInCgroup(cgroup, 'taskset', ['-c', '1', toolPath('victim'), '--period-us', '4000', '--work-us', '2400', '--quiet']);
}

/** Four spinning threads on `cpus`, in `cgroup`. */
export function spawnHogs(cgroup: string, cpus = '1'): Promise<SpawnedProcess> {
  return spawnInCgroup(cgroup, 'taskset', ['-c', cpus, toolPath('hog'), '--threads', '4']);
}

/**
 * A config with the noisy-neighbour rule (cpu_weight) alone, for `web` (protect) and `batch` (noisy): the other
 * rules (quota under host pressure, spreading...) would also answer this contention and are tested on their own.
 * `extra` is appended (closed_loop settings and the like).
 */
export function noisyNeighborConfig(web: string, batch: string, extra = ''): string {
  return `tick: 1s
policy:
  noisy_neighbor: {p99_threshold_us: 3000}
  pressure_backoff: {enabled: false}
  cpuset_spread: {enabled: false}
  numa_rebalance: {enabled: false}
  io_prefetch: {enabled: false}
targets:
  - {name: web, cgroup: ${web}, role: protect}
  - {name: batch, cgroup: ${batch}, role: noisy}
${extra}`;
}

export interface NoisyNeighborScene {
  /** The test cgroup (v1 cpu) that holds `web` and `batch`. */
  base: TestCgroup;
  web: TestCgroup;
  batch: TestCgroup;
  state: ReturnType<typeof tempDir>;
  /** The latency victim in `web`. */
  victim: SpawnedProcess;
  /** Every process to end after the test, the victim and hogs first: a test adds its agents. */
  procs: SpawnedProcess[];
}

/**
 * Sets up the noisy-neighbour scene before each test of the file that calls it: `web` and `batch` in a fresh cpu
 * test cgroup, a state directory, the victim in `web` and, unless `hogs` is false, the hogs in `batch`. After each
 * test the processes are ended, last started first, and the cgroups and directory removed. The fields are replaced
 * for every test: read them inside the test, not when the file loads.
 */
export function noisyNeighborScene(opts: { hogs?: boolean } = {}): NoisyNeighborScene {
  const scene = { procs: [] as SpawnedProcess[] } as NoisyNeighborScene;
  beforeEach(async () => {
    scene.base = makeTestCgroup('cpu');
    scene.web = scene.base.child('web');
    scene.batch = scene.base.child('batch');
    scene.state = tempDir();
    scene.victim = await spawnVictim(scene.web.path);
    scene.procs.push(scene.victim);
    if (opts.hogs !== false) scene.procs.push(await spawnHogs(scene.batch.path));
  });
  afterEach(async () => {
    for (const p of scene.procs.splice(0).reverse()) await killAndWait(p);
    scene.base.remove();
    scene.state.remove();
  });
  afterAll(async () => {
    await cleanupAll();
  });
  return scene;
}
