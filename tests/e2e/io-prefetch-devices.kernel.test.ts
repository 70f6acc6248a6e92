/**
 * io_prefetch's device scope, through the real CLI: two loop devices the test makes (over sparse temp files, detached
 * afterwards), each read sequentially in 4 KiB O_DIRECT requests by dd in a target cgroup of its own. Only the first
 * device is listed under `devices:`. Its /sys/block/<dev>/queue/read_ahead_kb is raised and put back on exit; the
 * second's is never written, and the decision refused for it (DEVICE_NOT_IN_SCOPE) reads back through `log` and
 * `explain`. A config naming a device this host does not have exits 2 before anything starts, and a reload (SIGHUP)
 * to such a config is refused while the running config stays.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess } from '../../src/testing/cgroups.js';
import { runCli, startAgent, tempDir, type AgentProcess } from './helpers.js';

interface Loop {
  dev: string;
  name: string;
  /** read_ahead_kb when the test found the device, put back after. */
  original: string;
}

const work = tempDir('ebpf-tuner-e2e-iop-');
const loops: Loop[] = [];
const knob = (l: Loop): string => `/sys/block/${l.name}/queue/read_ahead_kb`;
const readAhead = (l: Loop): number => Number(readFileSync(knob(l), 'utf8'));

function makeLoop(): Loop {
  const file = join(work.path, `backing-${loops.length}.img`);
  execFileSync('truncate', ['-s', '4G', file]);
  // Direct I/O to the backing file: reading the device fills no page cache.
  const dev = execFileSync('losetup', ['--find', '--show', '--direct-io=on', file], { encoding: 'utf8' }).trim();
  const name = basename(dev);
  const l = { dev, name, original: readFileSync(`/sys/block/${name}/queue/read_ahead_kb`, 'utf8') };
  loops.push(l);
  // A new loop device inherits read-ahead from whatever its number last held; start both from the kernel's default.
  writeFileSync(knob(l), '128\n');
  return l;
}

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('this test creates cgroups and loop devices: run it as root');
  try {
    execFileSync('losetup', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('losetup is not installed: apt-get install util-linux');
  }
});
afterAll(async () => {
  for (const l of loops.splice(0)) {
    if (existsSync(knob(l))) writeFileSync(knob(l), l.original);
    execFileSync('losetup', ['-d', l.dev]);
  }
  await cleanupAll();
  work.remove();
});

describe('io_prefetch changes only the devices listed under devices:', () => {
  it('raises and restores read-ahead on a listed device, never writes an unlisted one, and says why', async () => {
    const inScope = makeLoop();
    const outOfScope = makeLoop();
    const base = makeTestCgroup('cpu');
    const state = tempDir();
    const procs: (SpawnedProcess | AgentProcess)[] = [];
    try {
      for (const [name, l] of [['listed', inScope], ['unlisted', outOfScope]] as const) {
        const cg = base.child(name);
        procs.push(await spawnInCgroup(cg.path, 'dd', [`if=${l.dev}`, 'of=/dev/null', 'bs=4k', 'iflag=direct', 'status=none']));
      }
      const body = (devices: string): string => `tick: 500ms
targets:
  - {name: listed, cgroup: ${base.path}/listed, role: protect}
  - {name: unlisted, cgroup: ${base.path}/unlisted, role: protect}
devices: ${devices}
policy:
  io_prefetch: {trigger_ticks: 2, calm_ticks: 1000}
  noisy_neighbor: {enabled: false}
  pressure_backoff: {enabled: false}
  cpuset_spread: {enabled: false}
  numa_rebalance: {enabled: false}
guardrails: {cooldown: 0s}
# O_DIRECT reads gain nothing from read-ahead; a window longer than the test keeps the raise from being judged.
closed_loop: {window_ticks: 1000}
`;
      const config = state.file('c.yaml', body(`[${inScope.dev}]`));
      const agent = startAgent(['--config', config, '--state-dir', state.path]);
      procs.push(agent);

      const scopeLine = await agent.waitFor((l) => l.msg === 'io_prefetch may change the read-ahead of these devices only');
      expect(scopeLine.devices).toEqual([`${inScope.name} (${readFileSync(`/sys/block/${inScope.name}/dev`, 'utf8').trim()})`]);
      const applied = await agent.waitFor((l) => l.decision !== undefined && l.action === 'io_prefetch' && l.kind === 'applied', 30_000);
      expect(applied.target).toBe('listed');
      expect(readAhead(inScope)).toBe(1024);
      const refused = await agent.waitFor((l) => l.decision !== undefined && l.target === 'unlisted' && l.kind === 'refused', 30_000);
      expect(refused.outcome).toMatch(
        new RegExp(`^DEVICE_NOT_IN_SCOPE: block device ${outOfScope.name} \\(\\d+:\\d+\\) is not among the configured devices \\(${inScope.name}\\), so io_prefetch only observes it — fix: add it to devices:`),
      );
      expect(readAhead(outOfScope)).toBe(128);

      // A reload to a config naming a device this host lacks is refused; the running config (and the raise) stays.
      writeFileSync(config, body('[ebpf-tuner-no-such-disk]'));
      agent.child.kill('SIGHUP');
      const reload = await agent.waitFor((l) => l.msg === 'config reload refused; the running config stays');
      expect(reload.err).toMatch(/devices\[0\] "ebpf-tuner-no-such-disk" in \S+c\.yaml: no block device is named ebpf-tuner-no-such-disk — fix: name a disk this host has \(.*\)/);
      expect(readAhead(inScope)).toBe(1024);

      agent.child.kill('SIGTERM');
      expect((await agent.exited).code, agent.stderr()).toBe(0);
      expect(readAhead(inScope)).toBe(128);
      expect(readAhead(outOfScope)).toBe(128);
      // Refused once, not once per tick.
      expect(agent.lines.filter((l) => l.decision !== undefined && l.target === 'unlisted' && l.kind === 'refused')).toHaveLength(1);
      expect(agent.lines.some((l) => l.decision !== undefined && l.target === 'unlisted' && l.kind === 'applied')).toBe(false);

      // The refusal is in the audit trail, with its reason, for `log` and `explain`.
      const log = runCli(['log', '--state-dir', state.path, '--target', 'unlisted', '--json']);
      expect(log.code, log.stderr).toBe(0);
      const rows = JSON.parse(log.stdout) as { id: string; kind: string; outcome?: string }[];
      expect(rows.map((r) => r.kind)).toEqual(['refused']);
      const explained = runCli(['explain', rows[0]!.id, '--state-dir', state.path]);
      expect(explained.code, explained.stderr).toBe(0);
      expect(explained.stdout).toContain(`block device ${outOfScope.name}`);
      expect(explained.stdout).toContain('fix: add it to devices:');
    } finally {
      for (const p of procs) await killAndWait(p);
      base.remove();
      state.remove();
    }
  }, 90_000);

  it('with no devices listed, says once at start that it only observes', async () => {
    const state = tempDir();
    try {
      const config = state.file('c.yaml', `tick: 500ms\ntargets:\n  - {name: me, pids: [${process.pid}], role: protect}\n`);
      const agent = startAgent(['--dry-run', '--duration', '2', '--config', config, '--state-dir', state.path]);
      expect((await agent.exited).code, agent.stderr()).toBe(0);
      const said = agent.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('io_prefetch only observes'));
      expect(said).toHaveLength(1);
      expect(said[0]!.msg).toMatch(/no devices are listed, so no read_ahead_kb is changed — fix: list the disks it may tune under devices:/);
    } finally {
      state.remove();
    }
  }, 30_000);

  it('exits 2 on a device the host does not have, naming it and the disks that exist, and starts nothing', () => {
    const state = tempDir();
    try {
      const stateDir = join(state.path, 'state');
      const config = state.file('c.yaml', 'devices: [sda9z]\n');
      const r = runCli(['run', '--config', config, '--state-dir', stateDir, '--duration', '1']);
      expect(r.code, r.stderr).toBe(2);
      const disks = execFileSync('ls', ['/sys/block'], { encoding: 'utf8' }).split('\n').filter(Boolean);
      expect(r.stderr).toMatch(/^ebpf-tuner run: resolve devices\[0\] "sda9z" in \S+c\.yaml: no block device is named sda9z — fix: name a disk this host has \((.*)\), as sda, \/dev\/sda or 8:0\n$/);
      expect(r.stderr).toContain(disks[0]!);
      expect(existsSync(stateDir)).toBe(false);
    } finally {
      state.remove();
    }
  });
});
