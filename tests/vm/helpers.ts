/**
 * Helpers for the VM suite: it runs only inside a VM that scripts/vm/test-vm.sh booted (pure cgroup v2 at
 * /sys/fs/cgroup, nothing mounted that a fresh host lacks), and fails — never skips — anywhere else.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { expect, onTestFailed } from 'vitest';
import { detectLayout } from '../../src/cgroup/layout.js';
import type { SpawnedProcess } from '../../src/testing/cgroups.js';
import { startAgent, type AgentProcess, type tempDir } from '../e2e/helpers.js';

export const CG = '/sys/fs/cgroup';
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Throws unless this is the test VM with a pure cgroup v2 hierarchy and the cpu controller. */
export function requireVm(): void {
  if (!process.env.EBPF_TUNER_VM) {
    throw new Error('the VM suite runs inside the test VM: npm run test:vm (scripts/vm/test-vm.sh boots it)');
  }
  const layout = detectLayout();
  if (layout.controllers.cpu?.version !== 2 || layout.controllers.cpu.mount !== CG) {
    throw new Error(`expected a pure cgroup v2 host with cpu at ${CG}, found ${JSON.stringify(layout.controllers)}`);
  }
}

/** NUMA nodes of this machine with their CPUs, from sysfs (none listed: a kernel without NUMA, one node). */
export function numaNodes(): Map<number, number[]> {
  const base = '/sys/devices/system/node';
  const out = new Map<number, number[]>();
  let names: string[] = [];
  try {
    names = readdirSync(base).filter((n) => /^node\d+$/.test(n));
  } catch {
    // no NUMA sysfs
  }
  for (const n of names) {
    const cpus = read(join(base, n, 'cpulist'))
      .split(',')
      .filter(Boolean)
      .flatMap((r) => {
        const [a, b] = r.split('-').map(Number);
        return Array.from({ length: (b ?? a!) - a! + 1 }, (_, i) => a! + i);
      });
    out.set(Number(n.slice(4)), cpus);
  }
  return new Map([...out].sort((a, b) => a[0] - b[0]));
}

/** Throws unless this is the test VM booted with two NUMA nodes (test-vm.sh --numa: node 0 = CPU 0, node 1 = CPU 1). */
export function requireNumaVm(): void {
  requireVm();
  const nodes = numaNodes();
  if (nodes.size !== 2 || nodes.get(0)?.join() !== '0' || nodes.get(1)?.join() !== '1') {
    throw new Error(
      `the NUMA VM tests need a guest with two nodes (node 0 = CPU 0, node 1 = CPU 1), found ${JSON.stringify([...nodes])} — run them with scripts/vm/test-vm.sh --numa (npm run test:vm boots such a guest for tests/vm/numa*.vm.test.ts)`,
    );
  }
}

export function read(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

/** Creates the directories of a cgroup path below /sys/fs/cgroup, enabling every controller on the way down. */
export function mkcg(rel: string): string {
  let dir = CG;
  for (const part of rel.split('/')) {
    const controllers = read(join(dir, 'cgroup.controllers')).split(/\s+/).filter(Boolean);
    for (const c of controllers) {
      try {
        writeFileSync(join(dir, 'cgroup.subtree_control'), `+${c}\n`);
      } catch {
        // not delegable from here (a threaded subtree takes only threaded controllers)
      }
    }
    dir = join(dir, part);
    if (!existsSync(dir)) mkdirSync(dir);
  }
  return dir;
}

export async function waitUntil(pred: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
  return Date.now() - t0;
}

/**
 * GET a JSON body, on a fresh connection: a kept-alive socket the agent closed while this process was blocked (a
 * spawnSync of the CLI) would be reused and fail with "socket hang up".
 */
export function getJson<T>(url: string): Promise<T> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as T);
        } catch (e) {
          reject(new Error(`GET ${url}: ${res.statusCode} ${body.slice(0, 200)} (${String(e)})`));
        }
      });
    }).on('error', reject);
  });
}

/** Records one fact for the harness to print after the run (e.g. which attach variant a signal chose). */
export function report(key: string, value: unknown): void {
  const out = process.env.EBPF_TUNER_VM_OUT;
  if (out) appendFileSync(join(out, 'facts.jsonl'), JSON.stringify({ kernel: kernelRelease(), key, value }) + '\n');
}

export function kernelRelease(): string {
  return execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
}

/** A free TCP port on loopback, for the agent's --listen. */
export function port(): number {
  return 20000 + Math.floor(Math.random() * 20000);
}

/**
 * Starts `ebpf-tuner run` with `config` (written into `state`) and the state directory `<state>/state`; it is added to
 * `procs` for the test's cleanup, and a failing test prints its last log lines.
 */
export function startVmAgent(state: ReturnType<typeof tempDir>, procs: SpawnedProcess[], config: string, extra: string[] = []): AgentProcess {
  const a = startAgent(['--config', state.file('config.yaml', config), '--state-dir', join(state.path, 'state'), ...extra]);
  procs.push(a);
  onTestFailed(() => console.log(`agent log (last 40 lines):\n${a.lines.slice(-40).map((l) => JSON.stringify(l)).join('\n')}\nstderr: ${a.stderr()}`));
  return a;
}

/** SIGTERM, and the agent exits 0 (having restored every original). */
export async function stopVmAgent(a: AgentProcess): Promise<void> {
  a.child.kill('SIGTERM');
  const exit = await a.exited;
  expect(exit.code, a.stderr()).toBe(0);
}
