/**
 * io_prefetch's device scope and settings, through the real CLI, on loop devices the test makes (over sparse temp
 * files, detached afterwards). Each device is read by a process in a target cgroup of its own.
 *
 * Scope: only the first of two 4 KiB O_DIRECT sequential readers' devices is listed under `devices:`. Its
 * /sys/block/<dev>/queue/read_ahead_kb is raised and put back on exit; the second's is never written, and the decision
 * refused for it (DEVICE_NOT_IN_SCOPE) reads back through `log` and `explain`. A config naming a device this host does
 * not have exits 2 before anything starts, and a reload (SIGHUP) to such a config is refused while the running config
 * stays.
 *
 * Settings: the five thresholds written under `policy.io_prefetch` decide which of four readers, all on listed
 * devices, gets its read-ahead raised — checked against each device's read_ahead_kb and /sys/block/<dev>/stat — and
 * how much of a file the raised target streams is pre-read, checked against the sectors read on the loop device under
 * that file's ext4 and the file's page-cache residency (fincore).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess } from '../../src/testing/cgroups.js';
import { runCli, startAgent, tempDir, type AgentProcess } from './helpers.js';

interface Loop {
  dev: string;
  name: string;
  /** "major:minor" */
  numbers: string;
  /** read_ahead_kb when the test found the device, put back after. */
  original: string;
}

const work = tempDir('ebpf-tuner-e2e-iop-');
const loops: Loop[] = [];
let loopSeq = 0;
/** Mount points the test made, unmounted before their loop devices are detached. */
const mounts: string[] = [];
const knob = (l: Loop): string => `/sys/block/${l.name}/queue/read_ahead_kb`;
const readAhead = (l: Loop): number => Number(readFileSync(knob(l), 'utf8'));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits for udev to finish with the loop devices just attached or detached; hosts without udev have nothing to wait for. */
function settle(): void {
  try {
    execFileSync('udevadm', ['settle', '--timeout=30'], { stdio: 'ignore' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

function makeLoop(size = '4G'): Loop {
  const file = join(work.path, `backing-${loopSeq++}.img`);
  execFileSync('truncate', ['-s', size, file]);
  // Direct I/O to the backing file: reading the device fills no page cache.
  const dev = execFileSync('losetup', ['--find', '--show', '--direct-io=on', file], { encoding: 'utf8' }).trim();
  const l: Loop = { dev, name: basename(dev), numbers: '', original: '' };
  // Tracked before anything else can fail, so it is detached whatever happens next.
  loops.push(l);
  settle();
  l.numbers = readFileSync(`/sys/block/${l.name}/dev`, 'utf8').trim();
  l.original = readFileSync(knob(l), 'utf8');
  if (!existsSync(dev)) throw new Error(`losetup attached ${dev} but the device file did not appear`);
  // A new loop device inherits read-ahead from whatever its number last held; start from the kernel's default.
  writeFileSync(knob(l), '128\n');
  return l;
}

function mount(dev: string, dir: string): void {
  execFileSync('mount', ['-o', 'noatime', dev, dir]);
  mounts.push(dir);
}

function umount(dir: string): void {
  execFileSync('umount', [dir]);
  mounts.splice(mounts.indexOf(dir), 1);
}

/** Unmounts and detaches everything the test made, carrying on past a failure so one stuck device leaves no others. */
function detachAll(): void {
  const errors: unknown[] = [];
  for (const dir of mounts.splice(0).reverse()) {
    try {
      execFileSync('umount', [dir]);
    } catch (e) {
      errors.push(e);
    }
  }
  for (const l of loops.splice(0)) {
    try {
      if (l.original !== '' && existsSync(knob(l))) writeFileSync(knob(l), l.original);
      execFileSync('losetup', ['-d', l.dev]);
    } catch (e) {
      errors.push(e);
    }
  }
  settle();
  if (errors.length > 0) throw errors[0];
}

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('this test creates cgroups and loop devices: run it as root');
  try {
    execFileSync('losetup', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('losetup is not installed: apt-get install util-linux');
  }
});
afterEach(() => detachAll());
afterAll(async () => {
  try {
    detachAll();
    await cleanupAll();
  } finally {
    work.remove();
  }
  // None of the test's backing files is still attached.
  expect(execFileSync('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'], { encoding: 'utf8' })).not.toContain(work.path);
});

/**
 * What follows the io_prefetch settings in every config here: the other rules off, no cooldown, and a closed-loop
 * window longer than the test, as O_DIRECT reads gain nothing from read-ahead and the raise must not be judged.
 */
const AFTER_IO_PREFETCH = `  noisy_neighbor: {enabled: false}
  pressure_backoff: {enabled: false}
  cpuset_spread: {enabled: false}
  numa_rebalance: {enabled: false}
guardrails: {cooldown: 0s}
closed_loop: {window_ticks: 1000}
`;

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
${AFTER_IO_PREFETCH}`;
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

/** Reads completed and bytes read so far on a block device, from /sys/block/<name>/stat. */
function devStat(l: Loop): { ios: number; bytes: number } {
  const f = readFileSync(`/sys/block/${l.name}/stat`, 'utf8').trim().split(/\s+/).map(Number);
  return { ios: f[0]!, bytes: f[2]! * 512 };
}

/** The file offset at which process `pid` holds `file` open, from /proc/<pid>/fdinfo. */
function offsetOf(pid: number, file: string): number | undefined {
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== file) continue;
      return Number(/^pos:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1]);
    } catch {
      // closed meanwhile
    }
  }
  return undefined;
}

function residentBytes(file: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());
}

async function waitUntil<T>(what: string, probe: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(200);
  }
}

/**
 * 4 KiB (or `bs`) O_DIRECT reads of a block device: `seq` from the start on, or `rand` at uniformly random offsets,
 * with `gap` seconds between reads. The mmap'd buffer is page-aligned, as O_DIRECT needs.
 */
const READER = `import mmap, os, random, sys, time
dev, bs, mode, gap = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, bs)
n = os.lseek(fd, 0, os.SEEK_END) // bs
i = 0
while True:
    os.preadv(fd, [buf], (random.randrange(n) if mode == 'rand' else i % n) * bs)
    i += 1
    if gap > 0:
        time.sleep(gap)
`;
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

describe('policy.io_prefetch settings, checked against the kernel', () => {
  it('raises read_ahead_kb to read_ahead_kb only for a small, frequent, sequential reader, pre-reads prefetch_mb, and restores on SIGTERM', async () => {
    for (const [tool, pkg] of [['mkfs.ext4', 'e2fsprogs'], ['fincore', 'util-linux'], [PYTHON, 'python3']] as const) {
      try {
        execFileSync(tool, ['-V'], { stdio: 'ignore' });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${tool} is not installed: apt-get install ${pkg}`);
      }
    }
    // Values other than the defaults (0.8, 64, 50, 1024, 0), so each check tells the configured value from the default.
    const P = { seqRatio: 0.5, maxRequestKb: 32, minIosPerS: 100, readAheadKb: 1536, prefetchMb: 24 };
    const MiB = 1 << 20;

    const small = makeLoop();
    const large = makeLoop();
    const rare = makeLoop();
    const random = makeLoop();
    // The raised target also streams a file through the page cache, on an ext4 of its own loop device: the sectors
    // read on that device are the kernel's count of what was pre-read.
    const fsLoop = makeLoop('256M');
    // A distinctive original, so the restore is seen to put back this value and not a default.
    writeFileSync(knob(small), '192\n');
    const before = { small: readAhead(small), large: readAhead(large), rare: readAhead(rare), random: readAhead(random), fs: readAhead(fsLoop) };
    expect(before).toEqual({ small: 192, large: 128, rare: 128, random: 128, fs: 128 });

    execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', fsLoop.dev]);
    const mnt = join(work.path, 'mnt');
    mkdirSync(mnt);
    mount(fsLoop.dev, mnt);
    const streamed = join(mnt, 'streamed.dat');
    writeFileSync(streamed, Buffer.alloc(96 * MiB, 1));
    // Unmounting writes it back and drops its pages: after mounting again, none of it is cached.
    umount(mnt);
    mount(fsLoop.dev, mnt);
    expect(residentBytes(streamed)).toBe(0);

    const base = makeTestCgroup('cpu');
    const state = tempDir();
    const procs: (SpawnedProcess | AgentProcess)[] = [];
    try {
      const cgs = Object.fromEntries(['small', 'large', 'rare', 'random'].map((n) => [n, base.child(n).path]));
      const cg = (name: string): string => cgs[name]!;
      // Readers pause 0.5 ms after each request, so they keep going for the whole test (wrapping at the end of the
      // device) at a pace well above min_ios_per_s without taking a CPU of a shared host.
      // small: 4 KiB sequential O_DIRECT reads — a stream of small requests.
      procs.push(await spawnInCgroup(cg('small'), PYTHON, ['-c', READER, small.dev, '4096', 'seq', '0.0005']));
      // ... and, in the same target, a slow reader of the file (4 KiB every 10 ms through the page cache).
      const slow = `const fs=require('fs');const fd=fs.openSync(process.argv[1],'r');const b=Buffer.alloc(4096);setInterval(()=>fs.readSync(fd,b,0,4096,null),10)`;
      const slowReader = await spawnInCgroup(cg('small'), process.execPath, ['-e', slow, streamed]);
      procs.push(slowReader);
      // large: sequential and frequent, but 64 KiB requests: above max_request_kb (yet within the default 64).
      procs.push(await spawnInCgroup(cg('large'), PYTHON, ['-c', READER, large.dev, '65536', 'seq', '0.0005']));
      // rare: small and sequential, at most 50 requests/s (a 20 ms pause after each): below min_ios_per_s.
      procs.push(await spawnInCgroup(cg('rare'), PYTHON, ['-c', READER, rare.dev, '4096', 'seq', '0.02']));
      // random: small and frequent, at random offsets: a sequential share near 0, below seq_ratio_threshold.
      procs.push(await spawnInCgroup(cg('random'), PYTHON, ['-c', READER, random.dev, '4096', 'rand', '0.0005']));

      const pos0 = await waitUntil('the slow reader is part-way into the file', () => {
        const p = offsetOf(slowReader.pid, streamed);
        return p !== undefined && p > 0 ? p : undefined;
      });
      const fs0 = devStat(fsLoop).bytes;

      const config = state.file(
        'c.yaml',
        `tick: 500ms
targets:
  - {name: small, cgroup: ${base.path}/small, role: protect}
  - {name: large, cgroup: ${base.path}/large, role: protect}
  - {name: rare, cgroup: ${base.path}/rare, role: protect}
  - {name: random, cgroup: ${base.path}/random, role: protect}
devices: [${small.dev}, ${large.dev}, ${rare.dev}, ${random.dev}]
policy:
  io_prefetch:
    seq_ratio_threshold: ${P.seqRatio}
    max_request_kb: ${P.maxRequestKb}
    min_ios_per_s: ${P.minIosPerS}
    read_ahead_kb: ${P.readAheadKb}
    prefetch_mb: ${P.prefetchMb}
    trigger_ticks: 2
    calm_ticks: 1000
${AFTER_IO_PREFETCH}`,
      );
      const agent = startAgent(['--config', config, '--state-dir', state.path, '--log-level', 'debug']);
      procs.push(agent);
      const decisions = (): Record<string, unknown>[] => agent.lines.filter((l) => l.decision !== undefined && l.action === 'io_prefetch');
      /**
       * One raise, for small, and nothing at all for the others. The raise may first be held while the closed loop
       * gathers the baseline it judges the change against (BASELINE), which is not a decision about the thresholds.
       */
      const expectOnlyTheRaise = (ds: Record<string, unknown>[]): void => {
        const what = JSON.stringify(ds);
        const waits = ds.filter((d) => d.kind === 'refused');
        for (const d of waits) expect(`${String(d.target)} ${String(d.outcome)}`, what).toMatch(/^small BASELINE: /);
        expect(ds.filter((d) => d.kind !== 'refused').map((d) => `${String(d.target)} ${String(d.kind)}`), what).toEqual(['small applied']);
      };

      // read_ahead_kb: the small stream's device is raised to the configured value.
      const applied = await agent.waitFor((l) => l.decision !== undefined && l.action === 'io_prefetch' && l.kind === 'applied', 60_000);
      const posAtRaise = offsetOf(slowReader.pid, streamed)!;
      expect(applied.target).toBe('small');
      expect(readAhead(small)).toBe(P.readAheadKb);
      const reason = String(applied.msg);
      expect(reason).toContain(`in small requests (mean `);
      expect(reason).toMatch(new RegExp(`mean [\\d.]+ KiB ≤ ${P.maxRequestKb} KiB\\)`));
      expect(reason).toContain(`read_ahead_kb of ${small.numbers} 192 → ${P.readAheadKb}, pre-reading up to ${P.prefetchMb} MiB of the files it streams`);
      const [, seqPct, perS] = /\((\d+)% sequential, (\d+) requests\/s\)/.exec(reason)!;
      expect(Number(seqPct)).toBeGreaterThanOrEqual(P.seqRatio * 100);
      expect(Number(perS)).toBeGreaterThanOrEqual(P.minIosPerS);

      // prefetch_mb: the device under the streamed file serves about that much beyond what the slow reader itself read.
      const preRead = (): number => devStat(fsLoop).bytes - fs0 - (posAtRaise - pos0);
      await waitUntil(`${P.prefetchMb} MiB are read from ${fsLoop.name} (so far ${(preRead() / MiB).toFixed(1)} MiB)`, () => preRead() >= 0.8 * P.prefetchMb * MiB, 30_000);
      // Let the last pieces land: until two looks a second apart read the same.
      let last = -1;
      await waitUntil('the pre-reading is done', () => {
        const now = devStat(fsLoop).bytes;
        const done = now === last;
        last = now;
        return done;
      });
      const preReadBytes = preRead();
      const resident = residentBytes(streamed);
      const note = `pre-read ${(preReadBytes / MiB).toFixed(1)} MiB from ${fsLoop.name}; ${(resident / MiB).toFixed(1)} MiB of the file cached, reader at ${(posAtRaise / MiB).toFixed(1)} MiB`;
      expect(preReadBytes, note).toBeGreaterThanOrEqual(0.8 * P.prefetchMb * MiB);
      expect(preReadBytes, note).toBeLessThanOrEqual((P.prefetchMb + 4) * MiB);
      expect(resident - posAtRaise, note).toBeGreaterThanOrEqual(0.8 * P.prefetchMb * MiB);
      expect(resident - posAtRaise, note).toBeLessThanOrEqual((P.prefetchMb + 4) * MiB);
      // The device under the file is not listed, and not the stream's: its read-ahead is never written.
      expect(readAhead(fsLoop)).toBe(128);

      // max_request_kb, min_ios_per_s, seq_ratio_threshold: the other three readers, each failing one of them, are
      // left alone for many more ticks than trigger_ticks. What the kernel saw of each over those ticks says which.
      const tickNow = (): number => Math.max(0, ...agent.lines.filter((l) => l.msg === 'tick').map((l) => Number(l.tick)));
      const fromTick = tickNow();
      const t0 = performance.now();
      const s0 = { large: devStat(large), rare: devStat(rare), random: devStat(random) };
      await agent.waitFor((l) => l.msg === 'tick' && Number(l.tick) >= fromTick + 10, 60_000);
      const seconds = (performance.now() - t0) / 1000;
      const seen = (l: Loop, s: { ios: number; bytes: number }): { perS: number; meanKb: number } => {
        const d = devStat(l);
        return { perS: (d.ios - s.ios) / seconds, meanKb: (d.bytes - s.bytes) / (d.ios - s.ios) / 1024 };
      };
      const kernel = { large: seen(large, s0.large), rare: seen(rare, s0.rare), random: seen(random, s0.random) };
      const what = JSON.stringify(kernel);
      // large: frequent, but its requests exceed max_request_kb.
      expect(kernel.large.meanKb, what).toBeGreaterThan(P.maxRequestKb);
      expect(kernel.large.perS, what).toBeGreaterThanOrEqual(P.minIosPerS);
      // rare: small requests, but fewer per second than min_ios_per_s.
      expect(kernel.rare.meanKb, what).toBeLessThanOrEqual(P.maxRequestKb);
      expect(kernel.rare.perS, what).toBeGreaterThan(0);
      expect(kernel.rare.perS, what).toBeLessThan(P.minIosPerS);
      // random: small and frequent; only its sequential share (near 0 at random offsets) is below the threshold.
      expect(kernel.random.meanKb, what).toBeLessThanOrEqual(P.maxRequestKb);
      expect(kernel.random.perS, what).toBeGreaterThanOrEqual(P.minIosPerS);
      expect({ large: readAhead(large), rare: readAhead(rare), random: readAhead(random) }).toEqual({ large: 128, rare: 128, random: 128 });
      expectOnlyTheRaise(decisions());
      expect(readAhead(small)).toBe(P.readAheadKb);

      // Restore on SIGTERM: the raised device is back at its original, nothing else was touched.
      agent.child.kill('SIGTERM');
      expect((await agent.exited).code, agent.stderr()).toBe(0);
      expect({ small: readAhead(small), large: readAhead(large), rare: readAhead(rare), random: readAhead(random), fs: readAhead(fsLoop) }).toEqual(before);
      expectOnlyTheRaise(decisions());

      // The audit trail holds the one raise, with the configured numbers in its reason, and nothing for the others.
      const log = runCli(['log', '--state-dir', state.path, '--json']);
      expect(log.code, log.stderr).toBe(0);
      const rows = JSON.parse(log.stdout) as { id: string; kind: string; target: string; action: string; outcome?: string }[];
      expectOnlyTheRaise(rows.filter((r) => r.action === 'io_prefetch'));
      for (const name of ['large', 'rare', 'random']) {
        const r = runCli(['log', '--state-dir', state.path, '--target', name, '--json']);
        expect(r.code, r.stderr).toBe(0);
        expect(JSON.parse(r.stdout), name).toEqual([]);
      }
      const explained = runCli(['explain', rows.find((r) => r.action === 'io_prefetch' && r.kind === 'applied')!.id, '--state-dir', state.path]);
      expect(explained.code, explained.stderr).toBe(0);
      expect(explained.stdout).toContain(`≤ ${P.maxRequestKb} KiB`);
      expect(explained.stdout).toContain(`${small.numbers} 192 → ${P.readAheadKb}`);
      expect(explained.stdout).toContain(`pre-reading up to ${P.prefetchMb} MiB`);
      console.log(`${reason}\n${note}\nkernel view of the readers left alone: ${what}`);
    } finally {
      for (const p of procs) await killAndWait(p);
      base.remove();
      state.remove();
    }
  }, 180_000);
});
