/**
 * `ebpf-tuner bench --policy` through the CLI: a policy the config schema refuses stops the bench before anything
 * runs (exit 2, the key and the fix named, a syntax error at its line in the option, no output directory); a valid
 * one reaches the agents of the servers section. With `min_weight: 100` the rule's first cpu_weight step is cpu.idle (the defaults would halve the weight
 * first), which the bench sees in the neighbour's own cgroup file (cpu.shares 3 while idle, read by the bench, not
 * the agent) and in the agent's logged decisions.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, tempDir } from './helpers.js';

const dir = tempDir('ebpf-tuner-bench-policy-');
afterAll(() => dir.remove());

function bench(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(CLI, ['bench', ...args], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface ServerRun {
  pair: string;
  condition: string;
  neighbourWeightEnd: number;
  decisions?: { kind: string; action: string; from?: string; to?: string }[];
}

describe('bench --policy', () => {
  it('refuses a policy the config schema refuses, before anything runs', () => {
    const out = join(dir.path, 'bad');
    const r = bench(['--quick', '--sections', 'servers', '--out', out, '--policy', 'noisy_neighbor: {min_weight: 0}']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--policy: policy\.noisy_neighbor\.min_weight: expected a whole number from 1 to 10000 .* fix: write e\.g\. min_weight: 10/);
    expect(existsSync(out)).toBe(false);
    const typo = bench(['--quick', '--sections', 'servers', '--out', out, '--policy', 'noisy_neigbor: {min_weight: 100}']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('did you mean "noisy_neighbor"?');
    // A syntax error is placed in the option's own text: its second line, where the bracket opens.
    const unclosed = bench(['--quick', '--sections', 'servers', '--out', out, '--policy', 'noisy_neighbor:\n  min_weight: [1']);
    expect(unclosed.code).toBe(2);
    expect(unclosed.stderr).toMatch(/--policy: line 2, column 17: .* fix: close the \[ with \]/);
    expect(existsSync(out)).toBe(false);
  });

  it('runs the servers section with the policy laid over the defaults', { timeout: 320_000 }, () => {
    const out = join(dir.path, 'ok');
    const policy = 'noisy_neighbor: {min_weight: 100, wait_share_threshold: 0.1}';
    const r = bench(['--quick', '--sections', 'servers', '--out', out, '--policy', policy]);
    expect(r.code, r.stderr).toBe(0);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
      command: string;
      sections: { servers: { status: string; notes: string[]; data: { runs: ServerRun[] } } };
    };
    expect(results.command).toContain(`--policy '${policy}'`);
    const s = results.sections.servers;
    expect(s.status).toBe('ok');
    expect(s.notes.some((n) => n.includes('`{ noisy_neighbor: { min_weight: 100, wait_share_threshold: 0.1 } }` laid over'))).toBe(true);
    const withAgent = s.data.runs.filter((x) => x.condition === 'agent');
    const steps = withAgent.flatMap((x) => (x.decisions ?? []).filter((d) => d.kind === 'applied' && d.action === 'cpu_weight'));
    expect(steps.length, JSON.stringify(withAgent)).toBeGreaterThan(0);
    // The first step of each run is cpu.idle straight from the default weight: min_weight 100 was in force.
    expect(steps.every((d) => d.to?.includes('idle=1')), JSON.stringify(steps)).toBe(true);
    expect(withAgent.some((x) => x.neighbourWeightEnd === 3)).toBe(true);
  });
});
