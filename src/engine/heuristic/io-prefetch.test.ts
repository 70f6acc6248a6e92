import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DeviceScope, resolveDevices } from '../../block/devices.js';
import { parseConfig } from '../../config/load.js';
import { DEFAULTS } from '../../config/defaults.js';
import type { IoPrefetchPolicy } from '../../config/types.js';
import type { TargetSignals, TickSnapshot } from '../../core/types.js';
import { Guardrails } from '../guardrails.js';
import { type DecideInput, type StrategyNudge, type StrategyTarget } from '../strategy.js';
import { IO_PREFETCH_ACTION, IoPrefetchRule, blkioOf, isSmallStream, isStream, mainDevice } from './io-prefetch.js';
import { blkioDevice, blkioWindow } from '../../signals/windows.js';
import type { BlkioWindow } from '../../signals/blkio/blkio.js';
import { ACTION_BOUNDS } from '../../actions/index.js';

// The defaults, with a short calm streak.
const policy: IoPrefetchPolicy = { ...DEFAULTS.policy.ioPrefetch, calmTicks: 4 };

const targets: StrategyTarget[] = [
  { name: 'reader', role: 'protect' },
  { name: 'batch', role: 'noisy' },
];

interface Io {
  seq: number;
  ios: number;
  /** Mean request size, bytes. */
  req: number;
  devs?: { dev: string; readBytes?: number; ios?: number }[];
}
/** 4 KiB sequential reads at 2000/s on 7:0: the pattern read-ahead is for. */
const SMALL: Io = { seq: 0.98, ios: 2000, req: 4096 };
/** The same stream once read-ahead makes its requests large. */
const LARGE: Io = { seq: 0.98, ios: 60, req: 512 * 1024 };
const RANDOM: Io = { seq: 0.1, ios: 2000, req: 4096 };
const IDLE: Io = { seq: 0, ios: 0, req: 0 };

function snapshot(i: number, per: Record<string, Io | null>): TickSnapshot {
  const out: Record<string, TargetSignals> = {};
  for (const [name, io] of Object.entries(per)) {
    const role = targets.find((t) => t.name === name)?.role ?? 'noisy';
    out[name] = { name, role };
    if (io !== null) {
      out[name]!.blkio = blkioWindow({
        seqRatio: io.seq,
        ios: io.ios,
        readBytes: io.ios * io.req,
        devices: (io.devs ?? [{ dev: '7:0', readBytes: io.ios * io.req, ios: io.ios }]).map(blkioDevice),
      });
    }
  }
  return { time: 1_000 * (i + 1), windowMs: 1_000, targets: out };
}

/**
 * Devices' read-ahead as the action reads it for each target (its main device), with nudges applied as the agent
 * would. Like the action, a device belongs to the target whose nudge changed it.
 */
class SimulatedDevices {
  kb = new Map<string, number>([['7:0', 128], ['8:0', 4096]]);
  original = new Map<string, { kb: number; owner: string }>();
  mainOf: Record<string, string | undefined> = { reader: '7:0', batch: '7:0' };
  current(t: string): Record<string, number> | undefined {
    const dev = this.mainOf[t];
    if (dev === undefined) return undefined;
    const [major, minor] = dev.split(':').map(Number);
    return { readAheadKb: this.kb.get(dev)!, major: major!, minor: minor! };
  }
  apply(n: StrategyNudge): void {
    if (n.kind === 'restore') {
      for (const [dev, o] of this.original) {
        if (o.owner !== n.target) continue;
        this.kb.set(dev, o.kb);
        this.original.delete(dev);
      }
      return;
    }
    const dev = `${n.desired.major}:${n.desired.minor}`;
    if (!this.original.has(dev)) this.original.set(dev, { kb: this.kb.get(dev)!, owner: n.target });
    this.kb.set(dev, n.desired.readAheadKb as number);
  }
  input(snap: TickSnapshot, history: TickSnapshot[]): DecideInput {
    return {
      now: snap.time,
      snapshot: snap,
      history,
      targets,
      current: (t, a) => (a === IO_PREFETCH_ACTION ? this.current(t) : undefined),
      changed: (t) => [...this.original.values()].some((o) => o.owner === t),
    };
  }
}

function run(ticks: Record<string, Io | null>[], devs = new SimulatedDevices(), p = policy): StrategyNudge[][] {
  const rule = new IoPrefetchRule(p);
  const snaps = ticks.map((t, i) => snapshot(i, t));
  return snaps.map((s, i) => {
    const nudges = rule.decide(devs.input(s, snaps.slice(0, i).slice(-rule.historyTicks).map((h) => rule.recall(h))));
    for (const n of nudges) devs.apply(n);
    return nudges;
  });
}

const r = (io: Io | null) => ({ reader: io });

describe('stream classification', () => {
  it.each<[string, Io, boolean, boolean]>([
    ['small sequential', SMALL, true, true],
    ['large sequential', LARGE, true, false],
    ['random', RANDOM, false, false],
    ['too few requests', { seq: 1, ios: 49, req: 4096 }, false, false],
    ['exactly 64 KiB is small', { seq: 0.8, ios: 50, req: 64 * 1024 }, true, true],
    ['idle', IDLE, false, false],
  ])('%s: stream %s, small stream %s', (_n, io, stream, small) => {
    const b = blkioOf(snapshot(0, r(io)), 'reader');
    expect(isStream(b, 1000, policy)).toBe(stream);
    expect(isSmallStream(b, 1000, policy)).toBe(small);
  });

  it('ignores a malformed blkio block and picks the busiest device', () => {
    const s = snapshot(0, r(SMALL));
    // As a recording from another version might hold it.
    s.targets.reader!.blkio = { seqRatio: 'x', ios: 1, readBytes: 1, devices: [] } as unknown as BlkioWindow;
    expect(blkioOf(s, 'reader')).toBeUndefined();
    const b = blkioOf(snapshot(0, r({ ...SMALL, devs: [{ dev: '8:0', readBytes: 10 }, { dev: 'junk' }, { dev: '7:0', readBytes: 99 }] })), 'reader')!;
    expect(b.devices.map((d) => d.dev)).toEqual(['8:0', '7:0']);
    expect(mainDevice(b)).toMatchObject({ dev: '7:0', major: 7, minor: 0 });
  });
});

describe('IoPrefetchRule', () => {
  it('raises read-ahead after trigger_ticks of small sequential reads, explaining why', () => {
    const out = run([r(SMALL), r(SMALL), r(SMALL)]);
    expect(out.slice(0, 2).flat()).toEqual([]);
    const [n] = out[2]!;
    expect(n).toMatchObject({ action: 'io_prefetch', target: 'reader', rule: 'io-prefetch', desired: { readAheadKb: 1024, major: 7, minor: 0 } });
    expect(n!.reason).toBe(
      'reader reads 7:0 sequentially (98% sequential, 2000 requests/s) in small requests (mean 4 KiB ≤ 64 KiB) for 3 ticks; read_ahead_kb of 7:0 128 → 1024',
    );
    expect(n!.evidence).toMatchObject({ seqRatio: 0.98, iosPerS: 2000, meanRequestBytes: 4096, hotTicks: 3, fromKb: 128, toKb: 1024 });
    expect(n!.objective).toEqual({ targets: ['reader'], metric: 'blkio.ios', better: 'lower', baselineTicks: 3 });
  });

  it.each<[string, (Io | null)[]]>([
    ['a random tick breaks the streak', [SMALL, RANDOM, SMALL, SMALL]],
    ['a tick without blkio breaks the streak', [SMALL, SMALL, null, SMALL, SMALL]],
    ['large requests are not the pattern', [LARGE, LARGE, LARGE]],
  ])('%s', (_n, seq) => {
    expect(run(seq.map(r)).flat()).toEqual([]);
  });

  it('keeps the raise while the stream goes on with the larger requests it caused, and restores once it ends', () => {
    const devs = new SimulatedDevices();
    const out = run([SMALL, SMALL, SMALL, LARGE, LARGE, LARGE, LARGE, LARGE, IDLE, IDLE, IDLE, IDLE].map(r), devs);
    expect(out.map((ns) => ns.map((n) => (n.kind === 'restore' ? 'restore' : n.desired.readAheadKb)))).toEqual([
      [],
      [],
      [1024],
      [],
      [],
      [],
      [],
      [],
      [],
      [],
      [],
      ['restore'],
    ]);
    expect(devs.kb.get('7:0')).toBe(128);
    expect(out[11]![0]!.reason).toBe("reader has not streamed sequential reads for 4 ticks; restoring the read-ahead it was given");
  });

  it('never lowers a device, and leaves a device it cannot read alone', () => {
    const devs = new SimulatedDevices();
    devs.kb.set('7:0', 2048);
    expect(run([SMALL, SMALL, SMALL].map(r), devs).flat()).toEqual([]);
    // The stream is on 8:0, but the action sees the target's main device as 7:0: no value to compare with.
    const other = new SimulatedDevices();
    expect(run([1, 2, 3].map(() => r({ ...SMALL, devs: [{ dev: '8:0' }] })), other).flat()).toEqual([]);
    const unknown = new SimulatedDevices();
    unknown.mainOf.reader = undefined;
    expect(run([SMALL, SMALL, SMALL].map(r), unknown).flat()).toEqual([]);
  });

  it('asks for pre-reading when configured, and does nothing when disabled', () => {
    expect(run([SMALL, SMALL, SMALL].map(r), new SimulatedDevices(), { ...policy, prefetchMb: 32 })[2]![0]!.desired).toEqual({
      readAheadKb: 1024,
      major: 7,
      minor: 0,
      prefetchMb: 32,
    });
    expect(run([SMALL, SMALL, SMALL].map(r), new SimulatedDevices(), { ...policy, enabled: false }).flat()).toEqual([]);
  });

  it('treats each target on its own', () => {
    const out = run([0, 1, 2].map(() => ({ reader: SMALL, batch: SMALL })));
    expect(out[2]!.map((n) => n.target)).toEqual(['batch', 'reader']);
  });

  it('a calm neighbour on the same device does not undo the raise', () => {
    const devs = new SimulatedDevices();
    const out = run([0, 1, 2, 3, 4, 5, 6, 7].map(() => ({ reader: SMALL, batch: IDLE })), devs);
    expect(out.flat().map((n) => [n.target, n.desired])).toEqual([['reader', { readAheadKb: 1024, major: 7, minor: 0 }]]);
    expect(devs.kb.get('7:0')).toBe(1024);
  });
});

describe('io_prefetch and guardrails', () => {
  it('accepts the nudges of the default policy; refuses values out of bounds', () => {
    // A fake of sysfs with one disk, loop0 (7:0), configured as `devices: [loop0]`.
    const sys = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-fake-sysfs-')));
    const disk = path.join(sys, 'devices/virtual/block/loop0');
    fs.mkdirSync(path.join(disk, 'queue'), { recursive: true });
    fs.writeFileSync(path.join(disk, 'dev'), '7:0\n');
    for (const d of ['block', 'class/block', 'dev/block']) fs.mkdirSync(path.join(sys, d), { recursive: true });
    fs.symlinkSync(disk, path.join(sys, 'block/loop0'));
    fs.symlinkSync(disk, path.join(sys, 'class/block/loop0'));
    fs.symlinkSync(disk, path.join(sys, 'dev/block/7:0'));
    const paths = { sysBlock: path.join(sys, 'block'), sysClassBlock: path.join(sys, 'class/block'), sysDevBlock: path.join(sys, 'dev/block') };
    const scope = (names: string[]) => new DeviceScope(resolveDevices(names, paths), paths.sysDevBlock);
    const g = new Guardrails({ cooldownMs: 0, maxChangesPerMinute: 1000, denyCgroups: [] }, ACTION_BOUNDS, { devices: scope(['loop0']) });
    const devs = new SimulatedDevices();
    const [n] = run([SMALL, SMALL, SMALL].map(r), devs, { ...DEFAULTS.policy.ioPrefetch, prefetchMb: 64 })[2]!;
    expect(g.check(n!, 0, { current: { readAheadKb: 128, major: 7, minor: 0 } })).toEqual({ ok: true });
    // Not listed: refused, naming the device and the fix.
    const none = new Guardrails({ cooldownMs: 0, maxChangesPerMinute: 1000, denyCgroups: [] }, ACTION_BOUNDS, { devices: scope([]) });
    expect(none.check(n!, 0, { current: { readAheadKb: 128, major: 7, minor: 0 } })).toEqual({
      ok: false,
      code: 'DEVICE_NOT_IN_SCOPE',
      reason: 'block device loop0 (7:0) is not among the configured devices (none listed), so io_prefetch only observes it — fix: add it to devices: in the config to let the agent change it',
    });
    // Restores are always allowed: they put back what was changed while the device was in scope.
    expect(none.check({ kind: 'restore', action: n!.action, target: n!.target, reason: 'calm', rule: n!.rule, evidence: {} }, 0)).toEqual({ ok: true });
    fs.rmSync(sys, { recursive: true, force: true });
    expect(g.check({ ...n!, desired: { ...n!.desired, readAheadKb: 100_000 } }, 0)).toMatchObject({ code: 'OUT_OF_BOUNDS' });
    expect(g.check({ ...n!, desired: { ...n!.desired, minor: -1 } }, 0)).toMatchObject({ code: 'OUT_OF_BOUNDS' });
  });
});

describe('policy.io_prefetch config', () => {
  it('parses every key and fills in the rest', () => {
    const c = parseConfig(
      'policy:\n  io_prefetch:\n    enabled: false\n    seq_ratio_threshold: 0.9\n    max_request_kb: 32\n    min_ios_per_s: 10\n' +
        '    trigger_ticks: 2\n    calm_ticks: 20\n    read_ahead_kb: 2048\n    prefetch_mb: 16\n',
      'f.yaml',
    );
    expect(c.policy.ioPrefetch).toEqual({
      enabled: false,
      seqRatioThreshold: 0.9,
      maxRequestKb: 32,
      minIosPerS: 10,
      triggerTicks: 2,
      calmTicks: 20,
      readAheadKb: 2048,
      prefetchMb: 16,
    });
    expect(parseConfig('', 'f.yaml').policy.ioPrefetch).toEqual(DEFAULTS.policy.ioPrefetch);
  });

  it.each<[string, RegExp]>([
    ['read_ahead_kb: 0', /from 1 to 16384/],
    ['read_ahead_kb: 20000', /from 1 to 16384/],
    ['seq_ratio_threshold: 1.5', /greater than 0 and at most 1/],
    ['max_request_kb: 1.5', /whole number of KiB/],
    ['prefetch_mb: -1', /from 0 to 1024/],
    ['min_ios_per_s: 0', /greater than 0/],
    ['readahead_kb: 10', /did you mean "read_ahead_kb"/],
  ])('%s is refused with advice', (line, message) => {
    expect(() => parseConfig(`policy:\n  io_prefetch:\n    ${line}\n`, 'f.yaml')).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(message) }),
    );
  });
});
