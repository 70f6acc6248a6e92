import { describe, expect, it } from 'vitest';
import type { Target } from '../core/types.js';
import { sharedMembership } from './membership.js';

const cg = (name: string, path: string, slot: number): Target => ({ name, role: 'noisy', slot, scope: { kind: 'cgroup', path, version: 1, id: BigInt(slot) } });
const ps = (name: string, pids: number[], slot: number): Target => ({ name, role: 'protect', slot, scope: { kind: 'pids', pids } });

describe('sharedMembership', () => {
  it('names nested cgroup targets and processes in two process targets, whatever the order', () => {
    const targets = [cg('child', '/sys/fs/cgroup/cpu/app/web', 0), cg('app', '/sys/fs/cgroup/cpu/app', 1), ps('a', [10, 11], 2), ps('b', [11], 3)];
    expect(sharedMembership(targets)).toEqual([
      'app does not count the tasks of /sys/fs/cgroup/cpu/app/web: they are counted by child, the deeper cgroup target',
      'b does not count process 11: it is counted by a, the first process target that matches it',
    ]);
  });

  it('says nothing of a process in a process target and a cgroup target (both count it) or of siblings', () => {
    expect(sharedMembership([cg('x', '/sys/fs/cgroup/cpu/app', 0), cg('y', '/sys/fs/cgroup/cpu/apple', 1), ps('p', [10], 2)])).toEqual([]);
  });
});
