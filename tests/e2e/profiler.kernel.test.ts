/**
 * The agent under Node's CPU profiler, through the CLI: `--cpu-prof` sends the main thread SIGPROF every millisecond,
 * and a verifier that finds a signal pending gives up with EAGAIN — the agent used to fail to load its BPF objects.
 * It must start, hold its programs (counted from its own /proc/PID/fd, not from its log), stop cleanly and leave the
 * profile it was asked for.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killAndWait } from '../../src/testing/cgroups.js';
import { startAgent, tempDir, type AgentProcess } from './helpers.js';

const dir = tempDir('ebpf-tuner-profiler-');
const procs: AgentProcess[] = [];
afterAll(async () => {
  for (const p of procs) await killAndWait(p);
  dir.remove();
});

/** BPF programs and links the process holds open, by its fd table. */
function bpfFds(pid: number): { progs: number; links: number } {
  const kinds = readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '';
    }
  });
  return { progs: kinds.filter((k) => k === 'anon_inode:bpf-prog').length, links: kinds.filter((k) => k === 'anon_inode:bpf_link').length };
}

describe('the agent under node --cpu-prof', () => {
  it('loads and attaches its programs, runs, and writes the profile', { timeout: 60_000 }, async () => {
    const profiles = join(dir.path, 'profiles');
    const agent = startAgent(['--state-dir', join(dir.path, 'state')], ['--cpu-prof', `--cpu-prof-dir=${profiles}`]);
    procs.push(agent);
    await agent.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('agent running'), 30_000);
    const held = bpfFds(agent.pid);
    expect(held.progs, JSON.stringify(held)).toBeGreaterThan(0);
    expect(held.links, JSON.stringify(held)).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 2000));
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code, agent.stderr()).toBe(0);
    const files = readdirSync(profiles).filter((f) => f.endsWith('.cpuprofile'));
    expect(files).toHaveLength(1);
    const profile = JSON.parse(readFileSync(join(profiles, files[0]!), 'utf8')) as { nodes: unknown[]; samples: unknown[] };
    expect(profile.nodes.length).toBeGreaterThan(0);
    expect(profile.samples.length).toBeGreaterThan(0);
  });
});
