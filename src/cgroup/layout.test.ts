import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isTunerError } from '../core/errors.js';
import { createFakeCgroup2, type FakeCgroup2 } from './fake-cgroup2.js';
import {
  CGROUP2_SUPER_MAGIC,
  CGROUP_SUPER_MAGIC,
  TMPFS_MAGIC,
  cgroupId,
  cgroupVersionOf,
  controllerRootOf,
  detectLayout,
  parseMountinfo,
} from './layout.js';

// The mountinfo of a Debian 12 host booted hybrid (cpu bound alone, v2 tree without controllers).
const HYBRID = `24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334524k
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
`;

const tmpfsRoot = (p: string): number => (p === '/sys/fs/cgroup' ? TMPFS_MAGIC : CGROUP_SUPER_MAGIC);

let fake: FakeCgroup2 | undefined;
afterEach(() => {
  fake?.remove();
  fake = undefined;
});

describe('parseMountinfo', () => {
  it('unescapes octal in paths and skips optional fields', () => {
    const [m] = parseMountinfo('50 31 0:40 /a\\040b /mnt/x\\040y rw shared:1 master:2 - cgroup2 cgroup2 rw\n');
    expect(m).toEqual({ mountRoot: '/a b', mountPoint: '/mnt/x y', fsType: 'cgroup2', superOptions: ['rw'] });
  });
});

describe('detectLayout', () => {
  it('finds each v1 controller on its own mount and the unified tree on a hybrid host', () => {
    const l = detectLayout({ mountinfo: HYBRID, statfsType: tmpfsRoot });
    expect(l.mode).toBe('hybrid');
    expect(l.unified).toBe('/sys/fs/cgroup/unified');
    expect(l.controllers.cpu).toEqual({ version: 1, mount: '/sys/fs/cgroup/cpu', mountRoot: '/' });
    expect(l.controllers.blkio.mount).toBe('/sys/fs/cgroup/blkio');
    expect(l.controllers['name=systemd'].mount).toBe('/sys/fs/cgroup/systemd');
    expect(l.controllers.xattr).toBeUndefined();
    expect(l.mounts[0]).toMatchObject({ version: 2, mount: '/sys/fs/cgroup/unified' });
  });

  it('reports v1 when there is no cgroup2 mount, and co-mounted controllers share a mount', () => {
    const mi = `31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
`;
    const l = detectLayout({ mountinfo: mi, statfsType: tmpfsRoot });
    expect(l.mode).toBe('v1');
    expect(l.unified).toBeUndefined();
    expect(l.controllers.cpu.mount).toBe('/sys/fs/cgroup/cpu,cpuacct');
    expect(l.controllers.cpuacct.mount).toBe('/sys/fs/cgroup/cpu,cpuacct');
    expect(l.mounts).toHaveLength(1);
  });

  it('prefers the mount under the root when a hierarchy is mounted twice', () => {
    const mi = `70 1 0:29 / /elsewhere/cpu rw - cgroup cgroup rw,cpu
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
`;
    expect(detectLayout({ mountinfo: mi, statfsType: tmpfsRoot }).controllers.cpu.mount).toBe('/sys/fs/cgroup/cpu');
  });

  it('reads v2 controllers from cgroup.controllers of the unified root', () => {
    fake = createFakeCgroup2();
    const l = detectLayout(fake.probe);
    expect(l.mode).toBe('v2');
    expect(l.unified).toBe(fake.root);
    expect(Object.keys(l.controllers)).toEqual(['cpuset', 'cpu', 'io', 'memory', 'pids']);
    expect(l.controllers.cpu).toEqual({ version: 2, mount: fake.root, mountRoot: '/' });
  });

  it('fails with CGROUP_UNSUPPORTED when nothing is mounted', () => {
    expect(() => detectLayout({ mountinfo: '24 27 0:6 / /dev rw - devtmpfs devtmpfs rw\n' })).toThrow(
      expect.objectContaining({ code: 'CGROUP_UNSUPPORTED' }),
    );
  });
});

describe('cgroupVersionOf', () => {
  it('tells v1 from v2 by filesystem magic', () => {
    fake = createFakeCgroup2();
    const dir = fake.mkdir('a');
    expect(cgroupVersionOf(dir, fake.probe)).toBe(2);
    expect(cgroupVersionOf('/x', { statfsType: () => CGROUP_SUPER_MAGIC })).toBe(1);
    expect(cgroupVersionOf('/x', { statfsType: () => CGROUP2_SUPER_MAGIC })).toBe(2);
  });

  it('CGROUP_NOT_FOUND for a missing path, CGROUP_UNSUPPORTED for a non-cgroup one', () => {
    fake = createFakeCgroup2();
    expect(() => cgroupVersionOf(path.join(fake!.root, 'nope'), fake!.probe)).toThrow(
      expect.objectContaining({ code: 'CGROUP_NOT_FOUND' }),
    );
    try {
      cgroupVersionOf(os.tmpdir());
      expect.unreachable();
    } catch (e) {
      expect(isTunerError(e, 'CGROUP_UNSUPPORTED')).toBe(true);
      expect((e as Error).message).toMatch(/^inspect cgroup .*: not on a cgroup filesystem/);
    }
    expect(() => cgroupVersionOf('/sys/fs/cgroup', { statfsType: () => TMPFS_MAGIC })).toThrow(/tmpfs/);
  });
});

describe('cgroupId', () => {
  it('is the directory inode as a bigint', () => {
    fake = createFakeCgroup2();
    const dir = fake.mkdir('a');
    expect(cgroupId(dir)).toBe(fs.statSync(dir, { bigint: true }).ino);
    expect(cgroupId(dir)).not.toBe(cgroupId(fake.mkdir('b')));
  });

  it('refuses missing paths and files', () => {
    fake = createFakeCgroup2();
    expect(() => cgroupId(path.join(fake!.root, 'nope'))).toThrow(expect.objectContaining({ code: 'CGROUP_NOT_FOUND' }));
    expect(() => cgroupId(path.join(fake!.root, 'cgroup.procs'))).toThrow(expect.objectContaining({ code: 'CGROUP_UNSUPPORTED' }));
  });
});

describe('controllerRootOf', () => {
  it('returns the longest mount the path lies under', () => {
    const l = detectLayout({ mountinfo: HYBRID, statfsType: tmpfsRoot });
    expect(controllerRootOf('/sys/fs/cgroup/cpu/a/b', l)).toBe('/sys/fs/cgroup/cpu');
    expect(controllerRootOf('/sys/fs/cgroup/cpu', l)).toBe('/sys/fs/cgroup/cpu');
    expect(controllerRootOf('/sys/fs/cgroup/unified/x', l)).toBe('/sys/fs/cgroup/unified');
    // A sibling whose name merely starts with a mount's name is not under it.
    expect(() => controllerRootOf('/sys/fs/cgroup/cpuxyz/a', l)).toThrow(expect.objectContaining({ code: 'CGROUP_NOT_FOUND' }));
  });

  it('works against the fake tree', () => {
    fake = createFakeCgroup2();
    expect(controllerRootOf(fake.mkdir('a/b'), fake.layout)).toBe(fake.root);
  });
});
