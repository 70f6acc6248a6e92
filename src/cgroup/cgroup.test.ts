import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFakeCgroup2, type FakeCgroup2 } from './fake-cgroup2.js';
import {
  cgroupOfPid,
  knobFileError,
  listProcs,
  listThreads,
  normalizeKnobValue,
  parseProcCgroup,
  readKnob,
  writeKnob,
} from './cgroup.js';
import { TMPFS_MAGIC, CGROUP_SUPER_MAGIC, detectLayout } from './layout.js';

let fake: FakeCgroup2 | undefined;
const tmpDirs: string[] = [];
afterEach(() => {
  fake?.remove();
  fake = undefined;
  for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-cgroup-test-'));
  tmpDirs.push(d);
  return d;
}

function errno(code: string): NodeJS.ErrnoException {
  const e = new Error(code) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

describe('readKnob / writeKnob', () => {
  it('reads without the trailing newline and writes one line, as echo does', () => {
    fake = createFakeCgroup2();
    const f = path.join(fake.mkdir('a'), 'cpu.weight');
    expect(readKnob(f)).toBe('100');
    writeKnob(f, '50');
    expect(fs.readFileSync(f, 'utf8')).toBe('50\n');
    writeKnob(f, '7\n');
    expect(fs.readFileSync(f, 'utf8')).toBe('7\n');
    expect(readKnob(path.join(fake.path('a'), 'cpu.max'))).toBe('max 100000');
  });

  it('never creates a missing knob: ENOENT becomes CGROUP_NOT_FOUND', () => {
    fake = createFakeCgroup2();
    const f = path.join(fake.mkdir('a'), 'cpu.nope');
    expect(() => writeKnob(f, '1')).toThrow(expect.objectContaining({ code: 'CGROUP_NOT_FOUND' }));
    expect(fs.existsSync(f)).toBe(false);
    expect(() => readKnob(f)).toThrow(expect.objectContaining({ code: 'CGROUP_NOT_FOUND' }));
  });

  it('maps errno to codes with "verb object: cause — fix" messages', () => {
    const p = '/sys/fs/cgroup/cpu/x/cpu.shares';
    const perm = knobFileError('write', p, errno('EACCES'), '5');
    expect(perm.code).toBe('ACTION_EPERM');
    expect(perm.message).toBe(`write ${p} = "5": permission denied (EACCES) — run the agent as root (or with CAP_SYS_ADMIN and write access to the cgroup)`);
    expect(knobFileError('write', p, errno('EPERM'), '5').code).toBe('ACTION_EPERM');
    const inval = knobFileError('write', p, errno('EINVAL'), 'abc');
    expect(inval.code).toBe('ACTION_FAILED');
    expect(inval.message).toMatch(/^write .* = "abc": the kernel rejected the value \(EINVAL\) — the value "abc" is not valid/);
    expect(knobFileError('write', p, errno('ERANGE'), '0').message).toMatch(/out of range \(ERANGE\) — the value "0"/);
    expect(knobFileError('read', p, errno('ENOENT')).code).toBe('CGROUP_NOT_FOUND');
    expect(knobFileError('read', p, errno('ENODEV')).code).toBe('CGROUP_NOT_FOUND');
    expect(knobFileError('write', p, errno('EBUSY'), '1').code).toBe('ACTION_FAILED');
    expect(knobFileError('read', p, errno('EIO')).cause).toBeInstanceOf(Error);
  });

  it('a write to a directory fails with ACTION_FAILED, not a crash', () => {
    fake = createFakeCgroup2();
    expect(() => writeKnob(fake!.mkdir('a'), '1')).toThrow(expect.objectContaining({ code: 'ACTION_FAILED' }));
  });
});

describe('normalizeKnobValue', () => {
  it('trims and collapses whitespace', () => {
    expect(normalizeKnobValue(' max\t 100000\n')).toBe('max 100000');
    expect(normalizeKnobValue('100\n')).toBe('100');
  });
});

describe('listProcs / listThreads', () => {
  it('parses cgroup.procs and cgroup.threads of a v2 cgroup', () => {
    fake = createFakeCgroup2();
    const dir = fake.mkdir('a', { procs: [12, 34] });
    expect(listProcs(dir)).toEqual([12, 34]);
    expect(listThreads(dir)).toEqual([12, 34]);
    expect(listProcs(fake.mkdir('empty'))).toEqual([]);
  });

  it('uses `tasks` on a v1 cgroup', () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), '10\n');
    fs.writeFileSync(path.join(dir, 'tasks'), '10\n11\n12\n');
    expect(listProcs(dir)).toEqual([10]);
    expect(listThreads(dir)).toEqual([10, 11, 12]);
  });

  it('rejects garbage and missing cgroups', () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), '10\nxyz\n');
    expect(() => listProcs(dir)).toThrow(/is not a pid/);
    expect(() => listProcs(path.join(dir, 'gone'))).toThrow(expect.objectContaining({ code: 'CGROUP_NOT_FOUND' }));
  });
});

describe('cgroupOfPid', () => {
  const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
33 31 0:32 /docker /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
`;
  const layout = detectLayout({
    mountinfo: HYBRID,
    statfsType: (p) => (p === '/sys/fs/cgroup' ? TMPFS_MAGIC : CGROUP_SUPER_MAGIC),
  });

  function proc(pid: number, text: string): string {
    const root = tmp();
    fs.mkdirSync(path.join(root, String(pid)));
    fs.writeFileSync(path.join(root, String(pid), 'cgroup'), text);
    return root;
  }

  it('picks the v1 line of the controller and maps it under the mount', () => {
    const procRoot = proc(42, '3:memory:/docker/abc\n2:cpu:/web/a:b\n0::/user.slice\n');
    expect(cgroupOfPid(42, 'cpu', layout, { procRoot })).toBe('/sys/fs/cgroup/cpu/web/a:b');
    // The memory hierarchy is mounted from /docker, so /docker/abc is at <mount>/abc.
    expect(cgroupOfPid(42, 'memory', layout, { procRoot })).toBe('/sys/fs/cgroup/memory/abc');
  });

  it('uses the 0:: line for v2 controllers', () => {
    fake = createFakeCgroup2();
    const procRoot = proc(42, '1:cpu:/\n0::/app.slice/x.service\n');
    expect(cgroupOfPid(42, 'cpu', fake.layout, { procRoot })).toBe(path.join(fake.root, 'app.slice/x.service'));
  });

  it('PID_NOT_FOUND for a gone process, CGROUP_UNSUPPORTED for an unmounted controller', () => {
    const procRoot = tmp();
    expect(() => cgroupOfPid(42, 'cpu', layout, { procRoot })).toThrow(expect.objectContaining({ code: 'PID_NOT_FOUND' }));
    expect(() => cgroupOfPid(42, 'rdma', layout, { procRoot })).toThrow(expect.objectContaining({ code: 'CGROUP_UNSUPPORTED' }));
  });

  it('parses /proc/<pid>/cgroup lines', () => {
    expect(parseProcCgroup('9:name=systemd:/\n1:cpu,cpuacct:/a\n0::/\n')).toEqual([
      { hierarchy: 9, controllers: ['name=systemd'], path: '/' },
      { hierarchy: 1, controllers: ['cpu', 'cpuacct'], path: '/a' },
      { hierarchy: 0, controllers: [], path: '/' },
    ]);
  });
});
