/**
 * Process targets (`comm`, `pidfile`, `children`) through the real CLI: each must find its process and see its
 * context switches in `top --once --json`, checked against the kernel's own per-thread counters
 * (/proc/<pid>/task/<tid>/schedstat: on-CPU ns, run-queue wait ns, timeslices). A pidfile that names nothing is refused
 * at start with exit 2, naming the file and the fix.
 */
import { copyFileSync, readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import { cleanupAll, killAndWait, spawnTracked, type SpawnedProcess } from '../../src/testing/cgroups.js';
import { runCli, tempDir, waitUntil } from './helpers.js';

afterAll(async () => {
  await cleanupAll();
});

/** Timeslices run (schedstat's third field) by every thread of `pid` and of its children. */
function slices(pids: number[]): number {
  let n = 0;
  for (const pid of pids) {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) n += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[2]);
    } catch {
      // exited
    }
  }
  return n;
}

function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
}

function safeChildren(pid: number): number[] {
  try {
    return childrenOf(pid);
  } catch {
    return [];
  }
}

type Snap = { targets: Record<string, { runqlat: { count: number; switchesOut: number } }> };

/** `top --once --json` over `config`; the run-queue counts of each target, and the kernel's slices over the same call. */
function top(config: string, watched: () => number[]): { snap: Snap; kernelSlices: number } {
  const before = slices(watched());
  const r = runCli(['top', '--once', '--json', '--config', config]);
  const after = slices(watched());
  expect(r.code, r.stderr).toBe(0);
  return { snap: JSON.parse(r.stdout.trim().split('\n')[0]!) as Snap, kernelSlices: after - before };
}

/** A victim binary under a name of our own, so `comm` matches it and nothing else on the host. */
function uniqueVictim(dir: ReturnType<typeof tempDir>): { path: string; comm: string } {
  const comm = `tgt${randomBytes(4).toString('hex')}`;
  const path = join(dir.path, comm);
  copyFileSync(toolPath('victim'), path);
  return { path, comm };
}

const VICTIM_ARGS = ['--period-us', '2000', '--work-us', '200', '--quiet'];

describe('process targets through the CLI', () => {
  it('comm, pidfile and children each find their process and count its switches', async () => {
    const dir = tempDir();
    const procs: SpawnedProcess[] = [];
    try {
      const v = uniqueVictim(dir);
      const byComm = spawnTracked(v.path, VICTIM_ARGS);
      const byFile = spawnTracked(toolPath('victim'), VICTIM_ARGS);
      // The shell only waits; the work happens in its child, which only `children: true` reaches.
      const parent = spawnTracked('/bin/sh', ['-c', `"$0" "$@"; true`, toolPath('victim'), ...VICTIM_ARGS]);
      procs.push(byComm, byFile, parent);
      await waitUntil(() => childrenOf(parent.pid).length === 1, 10_000, `the child of ${parent.pid}`);
      const pidfile = dir.file('svc.pid', `${byFile.pid}\n`);
      const config = dir.file(
        'c.yaml',
        `targets:
  - {name: by-comm, comm: ${v.comm}, role: protect}
  - {name: by-pidfile, pidfile: ${pidfile}, role: protect}
  - {name: by-children, pids: [${parent.pid}], children: true, role: noisy}
`,
      );
      const watched = () => [byComm.pid, byFile.pid, parent.pid, ...childrenOf(parent.pid)];
      const { snap, kernelSlices } = top(config, watched);
      // Each victim wakes 500 times a second; one window of about a second sees hundreds of switch-ins. Before the
      // fix every count was 0: the scopes never reached the process finder.
      for (const name of ['by-comm', 'by-pidfile', 'by-children']) {
        expect(snap.targets[name]!.runqlat.count, name).toBeGreaterThan(50);
      }
      // The three windows together can never hold more switch-ins than the kernel counted over the whole call
      // (5% for the schedstat read racing the last switch).
      const seen = ['by-comm', 'by-pidfile', 'by-children'].reduce((n, k) => n + snap.targets[k]!.runqlat.count, 0);
      expect(seen).toBeLessThanOrEqual(kernelSlices * 1.05);
    } finally {
      // The shell's child first, by pid: killing the shell alone would leave it running.
      for (const p of procs) {
        for (const child of safeChildren(p.pid)) await killAndWait(child);
        await killAndWait(p);
      }
      dir.remove();
    }
  });

  it('refuses a pidfile that names nothing, exit 2, naming the file and the fix', () => {
    const dir = tempDir();
    try {
      const missing = join(dir.path, 'nope.pid');
      const config = dir.file('c.yaml', `targets:\n  - {name: svc, pidfile: ${missing}, role: protect}\n`);
      for (const args of [['run', '--dry-run', '--duration', '1', '--config', config], ['top', '--once', '--config', config]]) {
        const r = runCli(args);
        expect(r.code, `${args[0]}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toContain(missing);
        expect(r.stderr).toMatch(/does not exist — fix: /);
      }
      const stale = dir.file('stale.pid', '4194304\n');
      const r = runCli(['run', '--dry-run', '--duration', '1', '--config', dir.file('s.yaml', `targets:\n  - {name: svc, pidfile: ${stale}, role: protect}\n`)]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/names process 4194304, which is not running — fix: /);
    } finally {
      dir.remove();
    }
  });
});
