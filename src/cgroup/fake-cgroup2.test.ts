import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFakeCgroup2, type FakeCgroup2 } from './fake-cgroup2.js';
import { cgroupVersionOf, detectLayout } from './layout.js';

let fake: FakeCgroup2 | undefined;
afterEach(() => {
  fake?.remove();
  fake = undefined;
});

const read = (dir: string, f: string): string => fs.readFileSync(path.join(dir, f), 'utf8');

describe('fake cgroup2 tree', () => {
  it('has a root with the kernel root files and formats', () => {
    fake = createFakeCgroup2();
    expect(read(fake.root, 'cgroup.controllers')).toBe('cpuset cpu io memory pids\n');
    expect(read(fake.root, 'cgroup.subtree_control')).toBe('cpuset cpu io memory pids\n');
    expect(read(fake.root, 'cpu.pressure')).toBe(
      'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n',
    );
    expect(read(fake.root, 'cpu.stat')).toBe('usage_usec 0\nuser_usec 0\nsystem_usec 0\nnice_usec 0\n');
    // A real root has no per-cgroup knobs.
    for (const f of ['cgroup.type', 'cpu.weight', 'cpu.max', 'memory.max', 'memory.current']) {
      expect(fs.existsSync(path.join(fake.root, f)), f).toBe(false);
    }
  });

  it('gives a child the files of the controllers its parent enabled, with default values', () => {
    fake = createFakeCgroup2();
    const a = fake.mkdir('a');
    expect(read(a, 'cgroup.controllers')).toBe('cpuset cpu io memory pids\n');
    expect(read(a, 'cgroup.subtree_control')).toBe('\n');
    expect(read(a, 'cgroup.type')).toBe('domain\n');
    expect(read(a, 'cgroup.procs')).toBe('');
    expect(read(a, 'cpu.weight')).toBe('100\n');
    expect(read(a, 'cpu.weight.nice')).toBe('0\n');
    expect(read(a, 'cpu.max')).toBe('max 100000\n');
    expect(read(a, 'cpu.stat')).toMatch(
      /^usage_usec 0\nuser_usec 0\nsystem_usec 0\nnice_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n$/,
    );
    expect(read(a, 'memory.current')).toBe('0\n');
    expect(read(a, 'memory.max')).toBe('max\n');
    expect(read(a, 'cpuset.cpus')).toBe('\n');
    expect(read(a, 'cpuset.cpus.effective')).toMatch(/^0(-\d+)?\n$/);
    expect(read(a, 'cpuset.mems')).toBe('\n');
    expect(read(a, 'io.stat')).toBe('');
    expect(read(a, 'io.pressure')).toMatch(/^some avg10=0\.00 .*\nfull avg10=0\.00 .* total=0\n$/);
    // Without subtree_control, a grandchild has no controller files at all; pressure and cpu.stat are core.
    const b = fake.mkdir('a/b');
    expect(read(b, 'cgroup.controllers')).toBe('\n');
    expect(fs.existsSync(path.join(b, 'cpu.weight'))).toBe(false);
    expect(read(b, 'cpu.stat')).toBe('usage_usec 0\nuser_usec 0\nsystem_usec 0\nnice_usec 0\n');
    expect(fs.existsSync(path.join(b, 'memory.pressure'))).toBe(true);
  });

  it('honours subtree_control, creates missing parents with everything enabled, and counts descendants', () => {
    fake = createFakeCgroup2();
    fake.mkdir('s', { subtreeControl: ['memory', 'cpu'] });
    expect(read(fake.path('s'), 'cgroup.subtree_control')).toBe('cpu memory\n');
    expect(read(fake.mkdir('s/x'), 'cgroup.controllers')).toBe('cpu memory\n');
    const deep = fake.mkdir('p/q/r', { procs: [7] });
    expect(read(deep, 'cpu.weight')).toBe('100\n');
    expect(read(deep, 'cgroup.procs')).toBe('7\n');
    expect(read(deep, 'cgroup.events')).toBe('populated 1\nfrozen 0\n');
    expect(read(fake.root, 'cgroup.stat')).toBe('nr_descendants 5\nnr_dying_descendants 0\n');
    fake.rmdir('p/q');
    expect(fs.existsSync(deep)).toBe(false);
    expect(read(fake.root, 'cgroup.stat')).toBe('nr_descendants 3\nnr_dying_descendants 0\n');
    expect(() => fake!.mkdir('s/x')).toThrow(/EEXIST/);
    expect(() => fake!.mkdir('../escape')).toThrow(/outside/);
  });

  it('is seen as a cgroup2 mount through its probe', () => {
    fake = createFakeCgroup2({ controllers: ['cpu', 'memory'] });
    const l = detectLayout(fake.probe);
    expect(l).toEqual(fake.layout);
    expect(l.mode).toBe('v2');
    expect(Object.keys(l.controllers)).toEqual(['cpu', 'memory']);
    expect(cgroupVersionOf(fake.mkdir('a'), fake.probe)).toBe(2);
  });

  it('remove() deletes the tree and is idempotent', () => {
    fake = createFakeCgroup2();
    fake.mkdir('a/b');
    fake.remove();
    expect(fs.existsSync(fake.root)).toBe(false);
    fake.remove();
  });
});
