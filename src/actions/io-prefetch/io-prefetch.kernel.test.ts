/**
 * io_prefetch against the real kernel: a loop device the test creates (on a sparse temp file, detached and deleted
 * afterwards) is read sequentially with 4 KiB O_DIRECT requests by dd inside a target cgroup. The default rule, fed
 * snapshots built from the device's /sys/block/<dev>/stat and the reader's file offset (the way the blkio signal
 * will), raises /sys/block/loopN/queue/read_ahead_kb through the real sysfs file, pre-reads a file another process
 * in the target streams (checked with fincore), and puts read-ahead back once the reads stop — or on a stop.
 */
import { execFileSync } from 'node:child_process';
import diagnostics_channel from 'node:diagnostics_channel';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../config/defaults.js';
import { silentLogger } from '../../core/log.js';
import type { Target, TargetSignals, TickSnapshot } from '../../core/types.js';
import { listProcs } from '../../cgroup/cgroup.js';
import { cgroupId, cgroupVersionOf, detectLayout } from '../../cgroup/layout.js';
import { ClosedLoop } from '../../engine/closed-loop.js';
import { DecisionEngine } from '../../engine/engine.js';
import { Guardrails } from '../../engine/guardrails.js';
import { IoPrefetchRule } from '../../engine/heuristic/io-prefetch.js';
import { Journal } from '../../journal/journal.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess, type TestCgroup } from '../../testing/cgroups.js';
import { KnobWriter } from '../knob-writer.js';
import { DeviceScope, resolveDevices } from '../../block/devices.js';
import { ioPrefetch, prefetchChannel, type PrefetchEvent } from './io-prefetch.js';
import { blkioDevice, blkioWindow } from '../../signals/windows.js';
import { ACTION_BOUNDS } from '../index.js';

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('kernel tests create cgroups and loop devices: run them as root');
  for (const tool of ['losetup', 'fincore', 'dd']) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is not installed: apt-get install util-linux coreutils`);
    }
  }
});
afterAll(async () => {
  await cleanupAll();
});

interface Loop {
  dev: string;
  name: string;
  /** "major:minor" */
  numbers: string;
  file: string;
}

let cg: TestCgroup;
let dir: string;
let stateDir: string;
let journal: Journal;
const loops: Loop[] = [];
const procs: SpawnedProcess[] = [];

/** A loop device over a sparse file, with direct I/O to the file so reading it fills no page cache. */
function makeLoop(size: string): Loop {
  const file = path.join(dir, `backing-${loops.length}.img`);
  execFileSync('truncate', ['-s', size, file]);
  const dev = execFileSync('losetup', ['--find', '--show', '--direct-io=on', file], { encoding: 'utf8' }).trim();
  const name = path.basename(dev);
  const l = { dev, name, numbers: fs.readFileSync(`/sys/block/${name}/dev`, 'utf8').trim(), file };
  loops.push(l);
  // A new loop device inherits read-ahead from whatever its number last held; start from the kernel's own default.
  fs.writeFileSync(`/sys/block/${name}/queue/read_ahead_kb`, '128\n');
  return l;
}

beforeEach(() => {
  cg = makeTestCgroup('cpu');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-iop-kernel-'));
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-iop-state-'));
  journal = Journal.open(stateDir, silentLogger);
});
afterEach(async () => {
  for (const p of procs.splice(0)) await killAndWait(p);
  for (const l of loops.splice(0)) execFileSync('losetup', ['-d', l.dev]);
  journal.close();
  cg.remove();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(stateDir, { recursive: true, force: true });
});

function target(d: string, name: string): Target {
  return { name, role: 'protect', slot: 0, scope: { kind: 'cgroup', path: d, version: cgroupVersionOf(d), id: cgroupId(d) } };
}

const readAhead = (l: Loop): number => Number(fs.readFileSync(`/sys/block/${l.name}/queue/read_ahead_kb`, 'utf8'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads completed and bytes read so far on a block device, from /sys/block/<name>/stat. */
function devStat(l: Loop): { ios: number; bytes: number } {
  const f = fs.readFileSync(`/sys/block/${l.name}/stat`, 'utf8').trim().split(/\s+/).map(Number);
  return { ios: f[0]!, bytes: f[2]! * 512 };
}

/** Sum of the file offsets at which processes in the cgroup hold the device open. */
function offsetOn(cgroupDir: string, l: Loop): number {
  let sum = 0;
  for (const pid of listProcs(cgroupDir)) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) !== l.dev) continue;
        sum += Number(/^pos:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1] ?? 0);
      } catch {
        // closed meanwhile
      }
    }
  }
  return sum;
}

/** Until a process in the cgroup holds the device open (the shell that spawned it must exec first). */
async function waitOpen(cgroupDir: string, l: Loop): Promise<void> {
  for (let i = 0; i < 200; i++) {
    for (const pid of listProcs(cgroupDir)) {
      try {
        if (fs.readdirSync(`/proc/${pid}/fd`).some((fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === l.dev)) return;
      } catch {
        // exited or closing
      }
    }
    await sleep(10);
  }
  throw new Error(`no process in ${cgroupDir} opened ${l.dev}`);
}

function residentBytes(file: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());
}

/**
 * Snapshots as the blkio signal will give them, from what the kernel shows: requests and bytes from the device's
 * stat, sequential share from how far the reader's offset moved against the bytes the device served.
 */
class BlkioFromKernel {
  #stat: { ios: number; bytes: number };
  #pos: number;
  #last = Date.now();
  constructor(
    private readonly l: Loop,
    private readonly cgroupDir: string,
    private readonly name: string,
  ) {
    this.#stat = devStat(l);
    this.#pos = offsetOn(cgroupDir, l);
  }
  snapshot(): TickSnapshot {
    const now = Date.now();
    const st = devStat(this.l);
    const pos = offsetOn(this.cgroupDir, this.l);
    const ios = st.ios - this.#stat.ios;
    const readBytes = st.bytes - this.#stat.bytes;
    const seqRatio = readBytes > 0 ? Math.max(0, Math.min(1, (pos - this.#pos) / readBytes)) : 0;
    const t: TargetSignals = { name: this.name, role: 'protect', blkio: blkioWindow({ seqRatio, ios, readBytes, devices: [blkioDevice({ dev: this.l.numbers, ios, readBytes })] }) };
    const s: TickSnapshot = { time: now, windowMs: now - this.#last, targets: { [this.name]: t } };
    this.#stat = st;
    this.#pos = pos;
    this.#last = now;
    return s;
  }
}

describe('io_prefetch on a real loop device', () => {
  it('raises read_ahead_kb for small sequential O_DIRECT reads, pre-reads a streamed file, and restores it when the reads stop', async () => {
    const loop = makeLoop('8G');
    const original = readAhead(loop);
    const readerCg = cg.child('reader');
    const t = target(readerCg.path, 'reader');
    const dd = await spawnInCgroup(readerCg.path, 'dd', [`if=${loop.dev}`, 'of=/dev/null', 'bs=4k', 'iflag=direct', 'status=none']);
    procs.push(dd);

    // A second process in the target streams a regular file slowly, through the page cache.
    const streamed = path.join(dir, 'streamed.dat');
    const wfd = fs.openSync(streamed, 'w');
    fs.writeSync(wfd, Buffer.alloc(64 << 20, 1));
    // Clean pages only: dirty ones cannot be dropped from the cache.
    fs.fsyncSync(wfd);
    fs.closeSync(wfd);
    execFileSync('dd', [`if=${streamed}`, 'iflag=nocache', 'count=0', 'status=none']);
    const slow = `const fs=require('fs');const fd=fs.openSync(process.argv[1],'r');const b=Buffer.alloc(4096);setInterval(()=>fs.readSync(fd,b,0,4096,null),10)`;
    procs.push(await spawnInCgroup(readerCg.path, process.execPath, ['-e', slow, streamed]));

    const devices = new DeviceScope(resolveDevices([loop.dev]));
    const writer = new KnobWriter({ journal, log: silentLogger, scope: [cg.path], layout: detectLayout(), devices: devices.devices });
    const loopJudge = new ClosedLoop({ windowTicks: 1000, margin: 0.1, penaltyMs: 0, significance: 0.05, warmupTicks: 0 });
    const policy = { ...DEFAULTS.policy.ioPrefetch, triggerTicks: 2, calmTicks: 3, prefetchMb: 16 };
    const engine = new DecisionEngine({
      strategies: [new IoPrefetchRule(policy)],
      guardrails: new Guardrails({ cooldownMs: 0, maxChangesPerMinute: 1000, denyCgroups: [] }, ACTION_BOUNDS, { penalties: loopJudge, devices }),
      closedLoop: loopJudge,
    });
    const blkio = new BlkioFromKernel(loop, readerCg.path, 'reader');
    const log: string[] = [];
    let residentBefore = 0;
    const prefetched: PrefetchEvent[] = [];
    const onPrefetch = (m: unknown): void => void prefetched.push(m as PrefetchEvent);
    diagnostics_channel.subscribe(prefetchChannel.name, onPrefetch);

    const tick = (): boolean => {
      const snapshot = blkio.snapshot();
      let acted = false;
      for (const d of engine.tick({
        now: snapshot.time,
        snapshot,
        targets: [t],
        current: (_n, a) => {
          if (a !== ioPrefetch.name) return undefined;
          try {
            return ioPrefetch.read(t);
          } catch {
            return undefined;
          }
        },
        changed: () => ioPrefetch.knobs(t).some((k) => journal.get(k.id)?.state === 'active'),
      })) {
        if (d.kind !== 'proposed') continue;
        const from = ioPrefetch.read(t);
        if (d.nudge.kind === 'restore') ioPrefetch.revert(t, writer);
        else {
          residentBefore = residentBytes(streamed);
          ioPrefetch.apply(ioPrefetch.plan(t, d.nudge.desired), writer);
        }
        engine.applied(d.id, from, ioPrefetch.read(t), snapshot.time);
        const b = snapshot.targets.reader!.blkio as { ios: number; readBytes: number; seqRatio: number };
        log.push(`${d.nudge.reason}  [window: ${b.ios} reads, ${b.readBytes} bytes, seq ${b.seqRatio.toFixed(2)}]`);
        acted = true;
      }
      return acted;
    };

    for (let i = 0; i < 30 && readAhead(loop) === original; i++) {
      await sleep(300);
      tick();
    }
    expect(readAhead(loop), log.join('\n')).toBe(policy.readAheadKb);
    expect(journal.active()).toMatchObject([{ path: fs.realpathSync(`/sys/block/${loop.name}/queue/read_ahead_kb`), original: String(original) }]);

    diagnostics_channel.unsubscribe(prefetchChannel.name, onPrefetch);
    expect(prefetched).toMatchObject([{ target: 'reader', files: 1, bytes: 16 << 20, failed: 0 }]);
    // posix_fadvise(WILLNEED) starts the reads; give them a moment to land.
    let gained = 0;
    for (let i = 0; i < 30 && gained < 12 << 20; i++) {
      await sleep(100);
      gained = residentBytes(streamed) - residentBefore;
    }
    log.push(`streamed file: ${(residentBefore / 1048576).toFixed(1)} MiB cached before the raise, +${(gained / 1048576).toFixed(1)} MiB after pre-reading`);
    expect(gained).toBeGreaterThanOrEqual(12 << 20);

    for (const p of procs.splice(0)) await killAndWait(p);
    for (let i = 0; i < 15 && readAhead(loop) !== original; i++) {
      await sleep(300);
      tick();
    }
    console.log(log.join('\n'));
    expect(readAhead(loop)).toBe(original);
    expect(journal.active()).toEqual([]);
  });

  it("refuses a device the target does no I/O on, even one in the device scope, and a stop restores through the journal", async () => {
    const read = makeLoop('1G');
    const idle = makeLoop('1G');
    const [ra, ri] = [readAhead(read), readAhead(idle)];
    const readerCg = cg.child('reader2');
    const t = target(readerCg.path, 'reader2');
    procs.push(await spawnInCgroup(readerCg.path, 'dd', [`if=${read.dev}`, 'of=/dev/null', 'bs=4k', 'iflag=direct', 'status=none']));
    await waitOpen(readerCg.path, read);
    // Both devices are in the configured scope: the refusal below is the target-I/O condition alone.
    const writer = new KnobWriter({ journal, log: silentLogger, scope: [cg.path], layout: detectLayout(), devices: resolveDevices([read.name, idle.dev]) });
    const [imaj, imin] = idle.numbers.split(':').map(Number);
    expect(() => ioPrefetch.apply(ioPrefetch.plan(t, { readAheadKb: 2048, major: imaj!, minor: imin! }), writer)).toThrow(
      expect.objectContaining({ code: 'OUT_OF_SCOPE' }),
    );
    expect(readAhead(idle)).toBe(ri);

    const N = 50;
    let t0 = performance.now();
    for (let i = 0; i < N; i++) ioPrefetch.knobs({ ...t, name: `cost-${i}` });
    const scanUs = ((performance.now() - t0) * 1000) / N;
    t0 = performance.now();
    ioPrefetch.apply(ioPrefetch.plan(t, { readAheadKb: 512 }), writer);
    const applyUs = (performance.now() - t0) * 1000;
    console.log(`io_prefetch: evidence scan of a 1-process cgroup ${scanUs.toFixed(0)} µs, plan+apply (journaled sysfs write) ${applyUs.toFixed(0)} µs`);
    expect(readAhead(read)).toBe(512);
    expect(writer.restoreAll().restored).toHaveLength(1);
    expect(readAhead(read)).toBe(ra);
  });
});
