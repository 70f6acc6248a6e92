/**
 * `ebpf-tuner config check FILE` through the real CLI: a config that `run` would accept on this host passes (exit 0,
 * one line); one with several independent problems gets every one of them, each with its key path and the fix
 * (exit 2); a missing file is named (exit 2). Whatever the verdict, nothing is created or changed: no state
 * directory, no BPF program, no knob claim, and the target cgroup's own files read the same before and after.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { listDisks } from '../../src/block/devices.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnTracked, type SpawnedProcess, type TestCgroup } from '../../src/testing/cgroups.js';
import { runCli, tempDir } from './helpers.js';

/** `run`'s default --state-dir; `config check` has no state directory and must never create this one. */
const DEFAULT_STATE_DIR = '/var/lib/ebpf-tuner';
const procs: SpawnedProcess[] = [];
const cgroups: TestCgroup[] = [];
let dir: ReturnType<typeof tempDir> | undefined;

afterEach(async () => {
  for (const p of procs.splice(0)) await killAndWait(p);
  for (const c of cgroups.splice(0)) c.remove();
  dir?.remove();
  dir = undefined;
});

afterAll(async () => {
  await cleanupAll();
});

function bpfPrograms(): number {
  return (JSON.parse(execFileSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8' })) as unknown[]).length;
}

function listing(path: string): string[] | undefined {
  try {
    return readdirSync(path).sort();
  } catch {
    return undefined;
  }
}

/** What `config check` must leave exactly as it found it. */
function hostState(cgroup: TestCgroup): Record<string, unknown> {
  const files = ['cpu.shares', 'cpu.cfs_quota_us', 'cpu.cfs_period_us', 'cgroup.procs', 'tasks'];
  return {
    stateDir: existsSync(DEFAULT_STATE_DIR),
    stateDirFiles: listing(DEFAULT_STATE_DIR),
    knobClaims: listing('/run/ebpf-tuner/knobs'),
    cgroupChildren: listing(cgroup.path)?.filter((n) => !n.includes('.')),
    cgroupFiles: Object.fromEntries(files.filter((f) => existsSync(join(cgroup.path, f))).map((f) => [f, readFileSync(join(cgroup.path, f), 'utf8')])),
  };
}

/** A whole disk of this host (not a loop or zram device when there is one). */
function aDisk(): string {
  const disks = listDisks();
  const real = disks.find((d) => !/^(loop|zram|ram)\d/.test(d)) ?? disks[0];
  if (real === undefined) throw new Error('this host has no block device to name in devices:');
  return real;
}

interface Report {
  ok: boolean;
  source: string;
  hostChecked: boolean;
  issues: { path: string; message: string; line?: number; column?: number }[];
  summary?: { targets: number; targetKinds: Record<string, number>; devices: number; rules: string[]; ruleCount: number };
}

describe('ebpf-tuner config check', () => {
  it('a valid config passes in one line, and nothing on the host changes', async () => {
    dir = tempDir();
    const cg = makeTestCgroup('cpu');
    cgroups.push(cg);
    const svc = spawnTracked('sleep', ['600']);
    procs.push(svc);
    const pidfile = dir.file('svc.pid', `${svc.pid}\n`);
    const disk = aDisk();
    const file = dir.file(
      'ok.yaml',
      `tick: 1s
targets:
  - name: web
    role: protect
    cgroup: ${cg.path}
  - name: svc
    role: noisy
    pidfile: ${pidfile}
  - {name: me, role: noisy, pids: [${process.pid}]}
devices: [${disk}]
policy:
  numa_rebalance: {enabled: false}
`,
    );
    const before = hostState(cg);
    const programs = bpfPrograms();

    const r = runCli(['config', 'check', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const out = r.stdout.trim().split('\n');
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(new RegExp(`^ebpf-tuner config check: ${file}: OK — 3 targets \\(1 cgroup, 1 pidfile, 1 pids\\), 1 device, .*, 4 of 5 rules on, .*checked against this host$`));

    const j = runCli(['config', 'check', '--json', file]);
    expect(j.code, j.stderr).toBe(0);
    const report = JSON.parse(j.stdout) as Report;
    expect(report).toMatchObject({ ok: true, source: file, hostChecked: true, issues: [] });
    expect(report.summary).toMatchObject({ targets: 3, targetKinds: { cgroup: 1, pidfile: 1, pids: 1 }, devices: 1 });
    // The rules on, as the file names them, out of every rule the policy section has.
    expect(report.summary).toMatchObject({ rules: ['noisy_neighbor', 'cpuset_spread', 'pressure_backoff', 'io_prefetch'], ruleCount: 5 });

    expect(hostState(cg)).toEqual(before);
    expect(bpfPrograms()).toBeLessThanOrEqual(programs);
    expect(listing(dir.path)).toEqual(['ok.yaml', 'svc.pid']);
  });

  it('three independent schema errors: all three reported with key path and fix, exit 2', () => {
    dir = tempDir();
    const file = dir.file(
      'bad.yaml',
      `tick: 5ms
targets:
  - name: web
    role: protector
    pids: [1]
policy:
  noisy_neighbour: {enabled: true}
`,
    );
    const stateBefore = existsSync(DEFAULT_STATE_DIR);
    const r = runCli(['config', 'check', file]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^ebpf-tuner config check: ${file}: 3 problems, first: tick: .+ — fix: .+$`));
    const issues = lines.slice(1);
    expect(issues).toHaveLength(3);
    expect(issues[0]).toMatch(/^ {2}line 1, column 1: tick: .*"5ms".* — fix: .+/);
    expect(issues[1]).toMatch(/^ {2}line 4, column 5: targets\[0\]\.role: .*"protector".* — fix: .+/);
    expect(issues[2]).toMatch(/^ {2}line 7, column 3: policy\.noisy_neighbour: unknown key — fix: did you mean "noisy_neighbor"\?/);
    expect(r.stderr).not.toMatch(/\n\s+at |Unhandled/);

    const j = runCli(['config', 'check', '--json', file]);
    expect(j.code).toBe(2);
    const report = JSON.parse(j.stdout) as Report;
    expect(report.ok).toBe(false);
    expect(report.issues.map((i) => i.path)).toEqual(['tick', 'targets[0].role', 'policy.noisy_neighbour']);
    for (const i of report.issues) expect(i.message).toContain(' — fix: ');

    // `run` on the same file refuses it too, naming the first problem and counting the rest.
    const run = runCli(['run', '-c', file, '--state-dir', join(dir.path, 'state'), '--duration', '1']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('tick: ');
    expect(run.stderr).toContain('(and 2 more issues)');
    expect(existsSync(join(dir.path, 'state'))).toBe(false);
    expect(existsSync(DEFAULT_STATE_DIR)).toBe(stateBefore);
  });

  it('problems with this host are all reported too (run stops at the first); --schema-only skips them', () => {
    dir = tempDir();
    const gone = exitedPid();
    const pidfile = dir.file('dead.pid', `${gone}\n`);
    const file = dir.file(
      'host.yaml',
      `targets:
  - {name: web, role: protect, cgroup: /sys/fs/cgroup/cpu/ebpf-tuner-test-absent-${process.pid}}
  - {name: svc, role: noisy, pidfile: ${pidfile}}
devices: [no-such-disk-${process.pid}]
`,
    );
    const r = runCli(['config', 'check', '--json', file]);
    expect(r.code, r.stderr).toBe(2);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.hostChecked).toBe(true);
    expect(report.issues.map((i) => [i.path, i.line])).toEqual([
      ['targets[0].cgroup', 2],
      ['targets[1].pidfile', 3],
      ['devices[0]', 4],
    ]);
    expect(report.issues[0]!.message).toMatch(/does not exist — fix: /);
    expect(report.issues[1]!.message).toMatch(new RegExp(`names process ${gone}, which is not running — fix: `));
    expect(report.issues[2]!.message).toMatch(/no block device is named .* — fix: name a disk this host has/);

    const schemaOnly = runCli(['config', 'check', '--schema-only', file]);
    expect(schemaOnly.code, schemaOnly.stderr).toBe(0);
    expect(schemaOnly.stdout).toContain('not checked against this host (--schema-only)');
  });

  it('a missing file: exit 2, naming the file', () => {
    dir = tempDir();
    const missing = join(dir.path, 'missing.yaml');
    const stateBefore = existsSync(DEFAULT_STATE_DIR);
    const r = runCli(['config', 'check', missing]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')[0]).toBe(`ebpf-tuner config check: ${missing}: 1 problem, first: file not found — fix: check the path`);
    const j = runCli(['config', 'check', '--json', missing]);
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, source: missing, issues: [{ path: '', message: 'file not found — fix: check the path' }] });
    expect(existsSync(DEFAULT_STATE_DIR)).toBe(stateBefore);
    expect(listing(dir.path)).toEqual([]);
  });
});

/** The pid of a process that has exited (and been reaped): a pidfile naming it names nothing running. */
function exitedPid(): number {
  const pid = Number(execFileSync('/bin/sh', ['-c', 'echo $$'], { encoding: 'utf8' }).trim());
  expect(existsSync(`/proc/${pid}`)).toBe(false);
  return pid;
}
