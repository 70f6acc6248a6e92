/**
 * The `signals` section through the real agent: each signal's `enabled` switch, the attach variant pinned by
 * `attach`, `runqlat.per_thread` and `ewma_alpha`. What the agent loaded is read from the kernel, not from the agent:
 * the BPF programs behind the agent's own file descriptors (/proc/<pid>/fdinfo prog_id, then `bpftool prog show`),
 * and the per-thread detail is checked against the target process's threads in /proc/<pid>/task.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess } from '../../src/testing/cgroups.js';
import { startAgent, tempDir, type AgentProcess } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterAll(async () => {
  await cleanupAll();
});

/** A free TCP port on the loopback. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** The kernel's view of the BPF programs `pid` holds: each program's type and name. */
function heldPrograms(pid: number): { type: string; name: string }[] {
  const ids = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    if (link !== 'anon_inode:bpf-prog') continue;
    const id = /^prog_id:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
    if (id) ids.add(Number(id[1]));
  }
  return [...ids].map((id) => {
    const p = JSON.parse(execFileSync('bpftool', ['prog', 'show', 'id', String(id), '--json'], { encoding: 'utf8' })) as { type: string; name: string };
    return { type: p.type, name: p.name };
  });
}

type Snap = {
  targets: Record<string, { runqlat?: { p99: number; p99Ewma: number; count: number; threads?: { tid: number; tgid: number }[] }; cgstat?: unknown; psi?: unknown; futex?: unknown; blkio?: unknown; net?: unknown }>;
  host?: Record<string, unknown>;
};

async function signals(port: number): Promise<{ last: Snap; history: Snap[] }> {
  const res = await fetch(`http://127.0.0.1:${port}/api/signals`);
  return (await res.json()) as { last: Snap; history: Snap[] };
}

const RULES_OFF = `policy:
  noisy_neighbor: {enabled: false}
  cpuset_spread: {enabled: false}
  numa_rebalance: {enabled: false}
  pressure_backoff: {enabled: false}
  io_prefetch: {enabled: false}
`;

describe('signal switches and settings through the agent', () => {
  it('attaches exactly the pinned variants, keeps per-thread detail, and leaves switched-off signals out', async () => {
    const state = tempDir();
    const cg = makeTestCgroup('cpu');
    const procs: (SpawnedProcess | AgentProcess)[] = [];
    try {
      const hog = await spawnInCgroup(cg.path, toolPath('hog'), ['--threads', '2']);
      procs.push(hog);
      const port = await freePort();
      const config = state.file(
        'c.yaml',
        `tick: 500ms
ewma_alpha: 1
signals:
  runqlat: {enabled: true, per_thread: true, attach: raw_tp}
  psi: {enabled: false}
  cgstat: {enabled: false}
  net: {enabled: true, attach: raw_tp}
  futex: {enabled: true, attach: tracepoint}
  blkio: {enabled: true, attach: raw_tp}
${RULES_OFF}targets:
  - {name: app, cgroup: ${cg.path}, role: protect}
`,
      );
      const agent = startAgent(['--config', config, '--state-dir', `${state.path}/state`, '--dry-run', '--listen', `127.0.0.1:${port}`]);
      procs.push(agent);
      for (const [s, kind] of [['runqlat', 'raw_tp'], ['net', 'raw_tp'], ['futex', 'tracepoint'], ['blkio', 'raw_tp']]) {
        expect((await agent.waitFor((l) => l.msg === `${s} attached`, 30_000)).attach, s).toBe(kind);
      }
      await agent.waitFor((l) => l.msg === 'agent running', 30_000);
      // No program of the tp_btf kind (BPF_PROG_TYPE_TRACING): every signal took the pinned variant.
      const progs = heldPrograms(agent.pid);
      const types = new Set(progs.map((p) => p.type));
      expect(types, JSON.stringify(progs)).not.toContain('tracing');
      expect(types, JSON.stringify(progs)).toContain('raw_tracepoint');
      expect(types, JSON.stringify(progs)).toContain('tracepoint');

      await sleep(3000); // several ticks
      const { last, history } = await signals(port);
      const app = last.targets.app!;
      expect(app.runqlat!.count).toBeGreaterThan(0);
      // per_thread: the top threads are the hog's own threads, as the kernel lists them.
      const tids = new Set(readdirSync(`/proc/${hog.pid}/task`).map(Number));
      expect(app.runqlat!.threads?.length).toBeGreaterThan(0);
      for (const t of app.runqlat!.threads!) expect(tids.has(t.tid), JSON.stringify(app.runqlat!.threads)).toBe(true);
      // ewma_alpha 1: the EWMA is the newest tick's p99 on every tick (the default 0.3 lags behind it).
      expect(history.length).toBeGreaterThan(2);
      for (const h of history) {
        const r = h.targets.app?.runqlat;
        if (r) expect(r.p99Ewma).toBe(r.p99);
      }
      expect(app.cgstat).toBeUndefined();
      expect(app.psi).toBeUndefined();
      expect(last.host?.psi).toBeUndefined();
    } finally {
      for (const p of procs.reverse()) await killAndWait(p, 'SIGTERM');
      cg.remove();
      await cleanupAll();
      state.remove();
    }
  });

  it('with every eBPF signal switched off holds no BPF program, and the file-read signals still report', async () => {
    const state = tempDir();
    const cg = makeTestCgroup('cpu');
    const procs: (SpawnedProcess | AgentProcess)[] = [];
    try {
      const hog = await spawnInCgroup(cg.path, toolPath('hog'), ['--threads', '1']);
      procs.push(hog);
      const port = await freePort();
      const config = state.file(
        'c.yaml',
        `tick: 500ms
signals:
  runqlat: {enabled: false}
  psi: {enabled: true}
  cgstat: {enabled: true}
  net: {enabled: false}
  futex: {enabled: false}
  blkio: {enabled: false}
${RULES_OFF}targets:
  - {name: app, cgroup: ${cg.path}, role: protect}
`,
      );
      const agent = startAgent(['--config', config, '--state-dir', `${state.path}/state`, '--dry-run', '--listen', `127.0.0.1:${port}`]);
      procs.push(agent);
      await agent.waitFor((l) => l.msg === 'agent running', 30_000);
      await sleep(1500);
      expect(heldPrograms(agent.pid)).toEqual([]);
      const { last } = await signals(port);
      const app = last.targets.app!;
      for (const s of ['runqlat', 'net', 'futex', 'blkio'] as const) expect(app[s], s).toBeUndefined();
      expect(app.cgstat).toBeDefined();
      expect(last.host?.psi).toBeDefined();
      expect(agent.lines.some((l) => /attached$/.test(String(l.msg)))).toBe(false);
    } finally {
      for (const p of procs.reverse()) await killAndWait(p, 'SIGTERM');
      cg.remove();
      await cleanupAll();
      state.remove();
    }
  });
});
