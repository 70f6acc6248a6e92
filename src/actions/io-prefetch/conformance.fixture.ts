/**
 * io_prefetch in the action conformance suite (src/testing/conformance.ts). Its knob is a device's read_ahead_kb in
 * sysfs, outside the cgroup tree: the suite runs an instance bound to a faithful fake sysfs with one loop device
 * (7:0) that only the target has open.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConformanceCase } from '../../testing/conformance.js';
import { createIoPrefetchAction, ioPrefetch } from './io-prefetch.js';

export const conformance: ConformanceCase = {
  action: ioPrefetch,
  changing: { readAheadKb: 1024, major: 7, minor: 0 },
  outside: (target) => {
    const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-fake-sysfs-')));
    const disk = path.join(root, 'devices/virtual/block/loop0');
    fs.mkdirSync(path.join(disk, 'queue'), { recursive: true });
    fs.writeFileSync(path.join(disk, 'dev'), '7:0\n');
    fs.writeFileSync(path.join(disk, 'queue/read_ahead_kb'), '128\n');
    fs.mkdirSync(path.join(root, 'dev/block'), { recursive: true });
    fs.symlinkSync(disk, path.join(root, 'dev/block/7:0'));
    const action = createIoPrefetchAction({
      sysDevBlock: path.join(root, 'dev/block'),
      evidence: (t) => ({ devices: t.name === target.name ? ['7:0'] : [], streams: [] }),
    });
    return {
      action,
      roots: [root],
      devices: [{ name: 'loop0', dev: '7:0', sysfs: disk }],
      remove: () => fs.rmSync(root, { recursive: true, force: true }),
    };
  },
};
