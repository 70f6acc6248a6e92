/** `ebpf-tuner demo` end to end: three phases measured, and nothing left behind — no cgroup, process or BPF program. */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';

function tracingPrograms(): number {
  const progs = JSON.parse(execFileSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8' })) as { type: string }[];
  return progs.filter((p) => ['tracing', 'raw_tracepoint', 'tracepoint'].includes(p.type)).length;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('demo', () => {
  it('runs the three phases and cleans up after itself', async () => {
    const progsBefore = tracingPrograms();
    const r = runCli(['demo', '--seconds', '3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { phases: { phase: string; p99Us: number; samples: number }[]; pids: number[] };
    expect(out.phases.map((p) => p.phase)).toEqual(['1. victim alone', '2. beside a noisy neighbour', '3. beside it, with ebpf-tuner']);
    for (const p of out.phases) {
      expect(p.samples).toBeGreaterThan(0);
      expect(p.p99Us).toBeGreaterThan(0);
    }
    console.log(out.phases.map((p) => `${p.phase}: p99 ${(p.p99Us / 1000).toFixed(2)} ms`).join('; '));
    expect(readdirSync('/sys/fs/cgroup/cpu').filter((n) => n.startsWith('ebpf-tuner-demo-'))).toEqual([]);
    expect(out.pids.length).toBeGreaterThanOrEqual(2);
    expect(out.pids.filter(alive)).toEqual([]);
    // The kernel frees a program a little after its last fd closes (seen: up to a second): wait for it.
    for (let i = 0; i < 100 && tracingPrograms() > progsBefore; i++) await new Promise((r) => setTimeout(r, 100));
    expect(tracingPrograms()).toBe(progsBefore);
  });
});
