import diagnostics_channel from 'node:diagnostics_channel';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target } from '../../core/types.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../../cgroup/fake-cgroup2.js';
import { Journal } from '../../journal/journal.js';
import { KnobWriter } from '../knob-writer.js';
import { EvidenceScanner, decodeDev, parseFdinfo, resolveDisk, type Evidence, type Stream } from './evidence.js';
import { createIoPrefetchAction, prefetchChannel, READ_AHEAD_KB, type PrefetchEvent } from './io-prefetch.js';
import { fadvisePrefetch, type Prefetcher } from './prefetch.js';

let sys: string;
let fake: FakeCgroup2;
let stateDir: string;
let journal: Journal;
const temps: string[] = [];

/**
 * A faithful fake of the sysfs block layout: /sys/dev/block/<maj:min> links to the device directory, a partition's
 * directory sits inside its disk's and holds a `partition` file, and only a disk has queue/read_ahead_kb.
 */
function addDisk(name: string, dev: string, kb = 128, parts: [string, string][] = []): string {
  const dir = path.join(sys, 'devices/virtual/block', name);
  fs.mkdirSync(path.join(dir, 'queue'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'dev'), `${dev}\n`);
  fs.writeFileSync(path.join(dir, 'queue/read_ahead_kb'), `${kb}\n`);
  fs.symlinkSync(dir, path.join(sys, 'dev/block', dev));
  for (const [pname, pdev] of parts) {
    fs.mkdirSync(path.join(dir, pname));
    fs.writeFileSync(path.join(dir, pname, 'dev'), `${pdev}\n`);
    fs.writeFileSync(path.join(dir, pname, 'partition'), '1\n');
    fs.symlinkSync(path.join(dir, pname), path.join(sys, 'dev/block', pdev));
  }
  return path.join(dir, 'queue/read_ahead_kb');
}

beforeEach(() => {
  sys = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-fake-sysfs-')));
  fs.mkdirSync(path.join(sys, 'dev/block'), { recursive: true });
  fake = createFakeCgroup2();
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-iop-test-'));
  journal = Journal.open(stateDir, silentLogger);
});
afterEach(() => {
  journal.close();
  fake.remove();
  for (const d of [sys, stateDir, ...temps.splice(0)]) fs.rmSync(d, { recursive: true, force: true });
});

const target = (name = 'reader'): Target => ({ name, role: 'protect', slot: 0, scope: { kind: 'pids', pids: [1234] } });
/** The writer is configured with every disk of the fake sysfs, as `devices: [...]` would list them. */
const writer = (dryRun = false) => {
  const disks = path.join(sys, 'devices/virtual/block');
  const devices = (fs.existsSync(disks) ? fs.readdirSync(disks) : []).map((name) => ({
    name,
    dev: fs.readFileSync(path.join(disks, name, 'dev'), 'utf8').trim(),
    sysfs: path.join(disks, name),
  }));
  return new KnobWriter({ journal, log: silentLogger, scope: [], dryRun, layout: fake.layout, devices });
};
const read = (p: string): string => fs.readFileSync(p, 'utf8');

describe('block device evidence', () => {
  it.each<[bigint, string]>([
    [0x0700n, '7:0'],
    [0xfe00n, '254:0'],
    // new_encode_dev(MKDEV(259, 300)): minor's low byte, major, then the minor's high bits above bit 20.
    [(300n & 0xffn) | (259n << 8n) | ((300n & ~0xffn) << 12n), '259:300'],
  ])('decodeDev(%i) = %s', (dev, want) => {
    expect(decodeDev(dev)).toBe(want);
  });

  it('parses fdinfo', () => {
    expect(parseFdinfo('pos:\t4096\nflags:\t0100000\nmnt_id:\t24\n')).toEqual({ pos: 4096, flags: 0o100000 });
    expect(parseFdinfo('garbage')).toBeUndefined();
  });

  it('resolves a disk and a partition to the disk that owns the queue', () => {
    const knob = addDisk('sda', '8:0', 128, [['sda1', '8:1']]);
    const sysDevBlock = path.join(sys, 'dev/block');
    expect(resolveDisk('8:0', sysDevBlock)).toEqual({ dev: '8:0', name: 'sda', knob });
    expect(resolveDisk('8:1', sysDevBlock)).toEqual({ dev: '8:0', name: 'sda', knob });
    expect(resolveDisk('9:9', sysDevBlock)).toBeUndefined();
  });

  it("finds this process's open file, its device, and that it is being read forward", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-stream-'));
    temps.push(dir);
    const file = path.join(dir, 'data');
    fs.writeFileSync(file, Buffer.alloc(1 << 20));
    const fd = fs.openSync(file, 'r');
    try {
      const me: Target = { name: 'me', role: 'protect', slot: 0, scope: { kind: 'pids', pids: [process.pid] } };
      const scanner = new EvidenceScanner();
      // Reads through the fd's own offset (position null), as a streaming reader does.
      fs.readSync(fd, Buffer.alloc(4096), 0, 4096, null);
      const first = scanner.scan(me);
      fs.readSync(fd, Buffer.alloc(65536), 0, 65536, null);
      const t0 = performance.now();
      const second = scanner.scan(me);
      const us = (performance.now() - t0) * 1000;
      const dev = decodeDev(fs.statSync(file, { bigint: true }).dev);
      if (!dev.startsWith('0:')) expect(second.devices).toContain(dev);
      // A first look has nothing to compare offsets with: part-way into the file is what it can see.
      expect(first.streams.find((x) => fs.realpathSync(x.fdPath) === file)).toMatchObject({ pos: 4096, advanced: 0 });
      const s = second.streams.find((x) => fs.realpathSync(x.fdPath) === file);
      expect(s).toMatchObject({ pos: 4096 + 65536, size: 1 << 20, advanced: 65536 });
      console.log(`evidence scan of this process (${fs.readdirSync('/proc/self/fd').length} fds): ${us.toFixed(0)} µs`);
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('io_prefetch', () => {
  function action(ev: (t: Target) => Evidence, prefetch?: Prefetcher) {
    return createIoPrefetchAction({ sysDevBlock: path.join(sys, 'dev/block'), evidence: ev, ...(prefetch ? { prefetch } : {}) });
  }

  it("reads and raises the target's main device, and reverts it", () => {
    const knob = addDisk('loop0', '7:0');
    addDisk('vda', '254:0', 256, [['vda1', '254:1']]);
    const a = action(() => ({ devices: ['7:0', '254:1'], streams: [] }));
    const t = target();
    expect(a.knobs(t).map((k) => k.id)).toEqual([`io_prefetch:${knob}`, `io_prefetch:${path.join(sys, 'devices/virtual/block/vda/queue/read_ahead_kb')}`]);
    expect(a.read(t)).toEqual({ readAheadKb: 128, major: 7, minor: 0 });
    const w = writer();
    const plan = a.plan(t, { readAheadKb: 1024 });
    expect(plan.desired).toEqual({ readAheadKb: 1024, major: 7, minor: 0 });
    expect(a.apply(plan, w).changed).toBe(true);
    expect(read(knob)).toBe('1024\n');
    expect(a.revert(t, w)).toMatchObject([{ outcome: 'restored', wrote: true }]);
    expect(read(knob)).toBe('128\n');
  });

  it('names a partition by its disk', () => {
    addDisk('vda', '254:0', 256, [['vda1', '254:1']]);
    const a = action(() => ({ devices: ['254:1'], streams: [] }));
    expect(a.plan(target(), { readAheadKb: 512, major: 254, minor: 1 }).desired).toEqual({ readAheadKb: 512, major: 254, minor: 0 });
  });

  it('lets the writer refuse a device the target has no I/O on', () => {
    addDisk('loop0', '7:0');
    const other = addDisk('loop1', '7:1');
    const a = action(() => ({ devices: ['7:0'], streams: [] }));
    expect(() => a.apply(a.plan(target(), { readAheadKb: 1024, major: 7, minor: 1 }), writer())).toThrow(
      expect.objectContaining({ code: 'OUT_OF_SCOPE' }),
    );
    expect(read(other)).toBe('128\n');
    expect(journal.all()).toEqual([]);
  });

  it('keeps the devices it changed, so they can be written back after the reader is gone', () => {
    const knob = addDisk('loop0', '7:0');
    let devices = ['7:0'];
    const a = action(() => ({ devices, streams: [] }));
    const t = target();
    const w = writer();
    a.apply(a.plan(t, { readAheadKb: 1024 }), w);
    devices = [];
    expect(a.knobs(t).map((k) => k.path)).toEqual([knob]);
    expect(a.read(t)).toEqual({ readAheadKb: 1024, major: 7, minor: 0 });
    // A closed-loop revert is a plan back to the old value, after the evidence is gone.
    a.apply(a.plan(t, { readAheadKb: 128, major: 7, minor: 0 }), w);
    expect(read(knob)).toBe('128\n');
    a.revert(t, w);
    expect(journal.active()).toEqual([]);
  });

  it('counts a shared device as the change of the target that raised it only', () => {
    const knob = addDisk('vda', '254:0');
    const a = action(() => ({ devices: ['254:0'], streams: [] }));
    const w = writer();
    a.apply(a.plan(target('reader'), { readAheadKb: 1024 }), w);
    expect(a.knobs(target('reader')).map((k) => k.path)).toEqual([knob]);
    expect(a.knobs(target('logger'))).toEqual([]);
    expect(a.revert(target('logger'), w)).toEqual([]);
    expect(read(knob)).toBe('1024\n');
    // The other target may still write it: it has I/O on the device too.
    expect(a.apply(a.plan(target('logger'), { readAheadKb: 2048, major: 254, minor: 0 }), w).changed).toBe(true);
    a.revert(target('reader'), w);
    expect(read(knob)).toBe('128\n');
  });

  it('clamps to its range and refuses what it cannot plan', () => {
    addDisk('loop0', '7:0');
    const a = action(() => ({ devices: ['7:0'], streams: [] }));
    const plan = a.plan(target(), { readAheadKb: 10_000_000 });
    expect(plan.desired.readAheadKb).toBe(READ_AHEAD_KB.max);
    expect(plan.notes[0]).toMatch(/adjusted to 65536/);
    expect(() => a.plan(target(), { readAheadKb: 'x' })).toThrow(/desired.readAheadKb must be a finite number/);
    expect(() => a.plan(target(), { readAheadKb: 1, major: 9, minor: 9 })).toThrow(/block device 9:9 has no queue\/read_ahead_kb/);
    const none = action(() => ({ devices: [], streams: [] }));
    expect(() => none.read(target())).toThrow(/none of its processes has a block device open/);
  });

  it('pre-reads the streams within the budget after a write, and not in dry-run', () => {
    addDisk('loop0', '7:0');
    const streams: Stream[] = [{ fdPath: '/proc/1/fd/3', pos: 0, size: 1 << 30, advanced: 4096 }];
    const calls: [readonly Stream[], number][] = [];
    const a = action(
      () => ({ devices: ['7:0'], streams }),
      (s, budget) => {
        calls.push([s, budget]);
        return { files: 1, bytes: budget, failed: 0 };
      },
    );
    const seen: PrefetchEvent[] = [];
    const on = (m: unknown): void => void seen.push(m as PrefetchEvent);
    diagnostics_channel.subscribe(prefetchChannel.name, on);
    try {
      a.apply(a.plan(target(), { readAheadKb: 1024, prefetchMb: 8 }), writer(true));
      expect(calls).toEqual([]);
      a.apply(a.plan(target(), { readAheadKb: 1024, prefetchMb: 8 }), writer());
      expect(calls).toEqual([[streams, 8 << 20]]);
      expect(seen).toMatchObject([{ target: 'reader', files: 1, bytes: 8 << 20, failed: 0 }]);
    } finally {
      diagnostics_channel.unsubscribe(prefetchChannel.name, on);
    }
  });
});

describe('fadvisePrefetch', () => {
  it('asks for the range ahead of each stream, fastest first, within the budget', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-fadvise-'));
    temps.push(dir);
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    fs.writeFileSync(a, Buffer.alloc(1 << 20));
    fs.writeFileSync(b, Buffer.alloc(1 << 20));
    const streams: Stream[] = [
      { fdPath: a, pos: 1 << 19, size: 1 << 20, advanced: 10 },
      { fdPath: b, pos: 0, size: 1 << 20, advanced: 1000 },
      { fdPath: path.join(dir, 'gone'), pos: 0, size: 100, advanced: 1 },
    ];
    expect(fadvisePrefetch(streams, 1 << 20)).toEqual({ files: 1, bytes: 1 << 20, failed: 0 });
    expect(fadvisePrefetch(streams, 3 << 20)).toEqual({ files: 2, bytes: (1 << 20) + (1 << 19), failed: 1 });
    expect(fadvisePrefetch(streams, 0)).toEqual({ files: 0, bytes: 0, failed: 0 });
  });
});
