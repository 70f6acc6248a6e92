import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { runCli } from '../e2e/helpers.js';

describe('vm smoke', () => {
  it('boots with pure cgroup v2 and passes check', () => {
    expect(readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8')).toMatch(/cpu/);
    const r = runCli(['check', '--json']);
    console.log(r.stdout.slice(0, 3000), r.stderr);
    expect(r.code).toBe(0);
  });
});
