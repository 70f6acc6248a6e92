import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DeviceScope, deviceNameOf, deviceProblems, resolveDevices } from './devices.js';

/**
 * A fake of the sysfs block layout (unit tests only; the kernel e2e test uses real loop devices): /sys/block holds
 * disks, /sys/class/block disks and partitions, /sys/dev/block links by number, and a partition's directory sits in
 * its disk's with a `partition` file.
 */
let sys: string;
let paths: { sysBlock: string; sysClassBlock: string; sysDevBlock: string };

function addDisk(name: string, dev: string, parts: [string, string][] = []): string {
  const dir = path.join(sys, 'devices/pci0/block', name);
  fs.mkdirSync(path.join(dir, 'queue'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'dev'), `${dev}\n`);
  fs.symlinkSync(dir, path.join(paths.sysBlock, name));
  fs.symlinkSync(dir, path.join(paths.sysClassBlock, name));
  fs.symlinkSync(dir, path.join(paths.sysDevBlock, dev));
  for (const [p, pdev] of parts) {
    fs.mkdirSync(path.join(dir, p));
    fs.writeFileSync(path.join(dir, p, 'dev'), `${pdev}\n`);
    fs.writeFileSync(path.join(dir, p, 'partition'), '1\n');
    fs.symlinkSync(path.join(dir, p), path.join(paths.sysClassBlock, p));
    fs.symlinkSync(path.join(dir, p), path.join(paths.sysDevBlock, pdev));
  }
  return dir;
}

beforeEach(() => {
  sys = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-fake-sysfs-')));
  paths = { sysBlock: path.join(sys, 'block'), sysClassBlock: path.join(sys, 'class/block'), sysDevBlock: path.join(sys, 'dev/block') };
  for (const d of Object.values(paths)) fs.mkdirSync(d, { recursive: true });
});
afterEach(() => fs.rmSync(sys, { recursive: true, force: true }));

describe('resolveDevices', () => {
  it('resolves names and numbers to whole disks, once each', () => {
    const sda = addDisk('sda', '8:0', [['sda1', '8:1']]);
    const nvme = addDisk('nvme0n1', '259:0');
    expect(resolveDevices(['sda', '259:0', '8:0'], paths)).toEqual([
      { name: 'sda', dev: '8:0', sysfs: sda },
      { name: 'nvme0n1', dev: '259:0', sysfs: nvme },
    ]);
    expect(resolveDevices([], paths)).toEqual([]);
  });

  it('refuses an unknown device, naming it and the disks that exist', () => {
    addDisk('sda', '8:0');
    addDisk('vda', '254:0');
    expect(() => resolveDevices(['sda', 'sdz'], paths)).toThrow(
      expect.objectContaining({
        code: 'CONFIG_INVALID',
        message: 'resolve devices[1] "sdz": no block device is named sdz — fix: name a disk this host has (sda, vda), as sda, /dev/sda or 8:0',
      }),
    );
    expect(() => resolveDevices(['9:9'], paths)).toThrow(/devices\[0\] "9:9": no block device has the numbers 9:9 — fix: name a disk this host has \(sda, vda\)/);
    expect(() => resolveDevices(['/dev/ebpf-tuner-no-such-disk'], paths)).toThrow(/\/dev\/ebpf-tuner-no-such-disk does not exist — fix/);
    expect(() => resolveDevices(['/dev/null'], paths)).toThrow(/\/dev\/null is not a block device — fix/);
  });

  it('refuses a partition, naming its disk as the fix', () => {
    addDisk('sda', '8:0', [['sda1', '8:1']]);
    for (const spec of ['sda1', '8:1']) {
      expect(() => resolveDevices([spec], paths)).toThrow(
        `resolve devices[0] "${spec}": sda1 is a partition of sda, and its queue knobs (read_ahead_kb) belong to the whole disk, shared by all its partitions — fix: list the disk, sda, to let the agent change it`,
      );
    }
  });
});

describe('deviceProblems', () => {
  it('lists every entry resolveDevices would refuse, with its own index, where resolveDevices stops at the first', () => {
    addDisk('sda', '8:0', [['sda1', '8:1']]);
    const problems = deviceProblems(['sdz', 'sda', 'sda1', '9:9'], paths, 'c.yaml');
    expect(problems.map((p) => p.index)).toEqual([0, 2, 3]);
    expect(problems.map((p) => p.error.message)).toEqual([
      'resolve devices[0] "sdz" in c.yaml: no block device is named sdz — fix: name a disk this host has (sda), as sda, /dev/sda or 8:0',
      'resolve devices[2] "sda1" in c.yaml: sda1 is a partition of sda, and its queue knobs (read_ahead_kb) belong to the whole disk, shared by all its partitions — fix: list the disk, sda, to let the agent change it',
      'resolve devices[3] "9:9" in c.yaml: no block device has the numbers 9:9 — fix: name a disk this host has (sda), as sda, /dev/sda or 8:0',
    ]);
    expect(() => resolveDevices(['sdz', 'sda', 'sda1'], paths, 'c.yaml')).toThrow(problems[0]!.error.message);
    expect(deviceProblems(['sda', '8:0'], paths)).toEqual([]);
  });
});

describe('DeviceScope', () => {
  it('answers by number, counting a partition as its disk', () => {
    const sda = addDisk('sda', '8:0', [['sda1', '8:1']]);
    addDisk('sdb', '8:16');
    const scope = new DeviceScope(resolveDevices(['sda'], paths), paths.sysDevBlock);
    expect(scope.of('8:0')?.name).toBe('sda');
    expect(scope.of('8:1')?.name).toBe('sda');
    expect(scope.of('8:16')).toBeUndefined();
    expect(scope.of('9:9')).toBeUndefined();
    expect(scope.holding(path.join(sda, 'queue/read_ahead_kb'))?.name).toBe('sda');
    expect(scope.nameOf('8:16')).toBe('sdb');
    expect(scope.describe()).toBe('sda');
    expect(new DeviceScope([]).describe()).toBe('none listed');
    expect(deviceNameOf(path.join(sda, 'queue/read_ahead_kb'))).toBe('sda');
  });
});
