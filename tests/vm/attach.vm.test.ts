/**
 * Every attach variant of every eBPF signal, pinned through the config (`signals.<name>.attach`) and proven on the
 * kernels of the matrix: the agent attaches the pinned variant, and the signal still counts what it should (run-queue
 * events and futex waits of a target, and the host's drops of refused loopback connections with their reason). With `auto` the variant each kernel gets is
 * recorded for the README's kernel × signal table; futex must take sched_switch there (every kernel of the matrix
 * has bpf_task_pt_regs, v5.15). A variant never creates maps only another variant uses: with every raw_tp fallback
 * pinned, the agent holds no task-storage map (a map type older kernels lack).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import { MapType } from '../../src/bpf/libbpf.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess, type TestCgroup } from '../../src/testing/cgroups.js';
import { startAgent, tempDir, type AgentProcess } from '../e2e/helpers.js';
import { getJson, port, report, requireVm, sleep } from './helpers.js';

const SLOW = 60_000;
const SIGNALS = ['runqlat', 'futex', 'blkio', 'net'] as const;
type Pins = Partial<Record<(typeof SIGNALS)[number], string>>;

let cg: TestCgroup;
let state: ReturnType<typeof tempDir>;
const procs: SpawnedProcess[] = [];

beforeAll(async () => {
  requireVm();
  cg = makeTestCgroup('cpu');
  state = tempDir();
  // One target with a CPU-bound thread pair (run-queue events) and mutex contention (futex waits).
  procs.push(await spawnInCgroup(cg.path, toolPath('futex-contend'), ['--threads', '4', '--duration-s', '3600']));
});
afterAll(async () => {
  for (const p of procs.splice(0)) await killAndWait(p);
  cg.remove();
  state.remove();
  await cleanupAll();
});

/** Map types held by a process, from /proc/<pid>/fdinfo ("map_type:" lines). */
function mapTypes(pid: number): number[] {
  const out: number[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    try {
      const m = /^map_type:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) out.push(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

type Snap = {
  last: {
    targets: Record<string, { runqlat?: { count: number; oncpuUs: number }; futex?: { count: number } }>;
    host?: { net?: { drops: number; dropReasons: Record<string, number> } };
  };
};

/** SYNs to a closed loopback port: the kernel answers each with a reset and frees the SYN as NO_SOCKET. */
async function refusedConnections(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await new Promise<void>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: 9 });
      s.on('error', () => resolve());
      s.on('connect', () => (s.destroy(), resolve()));
    });
  }
}

async function runPinned(pins: Pins): Promise<{ agent: AgentProcess; attached: Record<string, string>; http: number }> {
  const http = port();
  const pin = (s: (typeof SIGNALS)[number]) => pins[s] ?? 'auto';
  const config = state.file(
    `config-${Object.values(pins).join('-') || 'auto'}.yaml`,
    `tick: 1s
signals:
  runqlat: {attach: ${pin('runqlat')}}
  futex: {attach: ${pin('futex')}}
  blkio: {attach: ${pin('blkio')}}
  net: {attach: ${pin('net')}}
policy:
  noisy_neighbor: {enabled: false}
  pressure_backoff: {enabled: false}
  cpuset_spread: {enabled: false}
  numa_rebalance: {enabled: false}
  io_prefetch: {enabled: false}
targets:
  - {name: app, cgroup: ${cg.path}, role: protect}
`,
  );
  const agent = startAgent(['--config', config, '--state-dir', join(state.path, 'state'), '--listen', `127.0.0.1:${http}`]);
  procs.push(agent);
  await agent.waitFor((l) => l.msg === 'http listening', SLOW);
  // The server is bound before the agent starts (/readyz says 503 until then).
  await agent.waitFor((l) => l.msg === 'agent running', SLOW);
  const attached: Record<string, string> = {};
  for (const s of SIGNALS) attached[s] = String((await agent.waitFor((l) => l.msg === `${s} attached`, SLOW)).attach);
  return { agent, attached, http };
}

/**
 * Waits for the ticks that show the target's run-queue events and futex waits, and the host's drops of refused
 * loopback connections made meanwhile (with their reason).
 */
async function countsEvents(http: number): Promise<{ runqlat: number; futex: number; noSocketDrops: number }> {
  const last = { runqlat: 0, futex: 0, noSocketDrops: 0 };
  for (let i = 0; i < 20; i++) {
    await refusedConnections(20);
    await sleep(1000);
    const snap = (await getJson<Snap>(`http://127.0.0.1:${http}/api/signals`)).last;
    const t = snap?.targets.app;
    last.runqlat = Math.max(last.runqlat, t?.runqlat?.count ?? 0);
    last.futex = Math.max(last.futex, t?.futex?.count ?? 0);
    last.noSocketDrops = Math.max(last.noSocketDrops, snap?.host?.net?.dropReasons.NO_SOCKET ?? 0);
    if (last.runqlat > 0 && last.futex > 0 && last.noSocketDrops > 0) return last;
  }
  return last;
}

async function stop(agent: AgentProcess): Promise<void> {
  agent.child.kill('SIGTERM');
  expect((await agent.exited).code, agent.stderr()).toBe(0);
}

describe('attach variants on this kernel', () => {
  it('auto: each signal takes the cheapest variant this kernel has (recorded for the matrix)', async () => {
    const { agent, attached, http } = await runPinned({});
    report('auto', attached);
    console.log(`auto on ${process.env.EBPF_TUNER_VM}: ${JSON.stringify(attached)}`);
    expect(attached.futex).toBe('sched_switch');
    const c = await countsEvents(http);
    expect(c.runqlat).toBeGreaterThan(0);
    expect(c.futex).toBeGreaterThan(0);
    expect(c.noSocketDrops).toBeGreaterThan(0);
    await stop(agent);
  });

  const pinned: Pins[] = [
    { runqlat: 'raw_tp', futex: 'raw_tp', blkio: 'raw_tp', net: 'raw_tp' },
    { runqlat: 'raw_tp', futex: 'sched_switch_raw', blkio: 'raw_tp', net: 'raw_tp' },
    { runqlat: 'tp_btf', futex: 'tracepoint', blkio: 'tp_btf', net: 'tp_btf' },
    { futex: 'tp_btf' },
  ];
  for (const pins of pinned) {
    it(`pinned ${JSON.stringify(pins)}: attaches exactly that and still counts`, async () => {
      const { agent, attached, http } = await runPinned(pins);
      for (const [s, kind] of Object.entries(pins)) expect(attached[s], s).toBe(kind);
      const c = await countsEvents(http);
      expect(c.runqlat).toBeGreaterThan(0);
      expect(c.futex).toBeGreaterThan(0);
      expect(c.noSocketDrops).toBeGreaterThan(0);
      if (pins.runqlat === 'raw_tp' && (pins.futex === 'raw_tp' || pins.futex === 'sched_switch_raw')) {
        // The raw_tp fallbacks are for kernels without task storage: they must not create such a map.
        expect(mapTypes(agent.pid)).not.toContain(MapType.TASK_STORAGE);
      }
      report('pinned', { pins, attached, counts: c });
      await stop(agent);
    });
  }
});
