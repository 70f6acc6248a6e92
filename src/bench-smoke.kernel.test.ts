/**
 * `ebpf-tuner bench --quick` end to end on the real kernel: every section runs with real programs, cgroups,
 * workloads and agents; results.json, summary.md and the PNG charts exist and parse; and the run leaves nothing
 * behind — no cgroups, no processes, no BPF programs, no BPF stats fd, no temporary directories. The numbers are
 * printed (on stderr, by the bench's progress display), never asserted.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { detectLayout } from './cgroup/layout.js';
import { bpftoolProgs, holdersOf, progIdsOf, TRACING_TYPES } from './bench/bpf-progs.js';
import { runBench, SECTION_IDS } from './bench/index.js';
import { BENCH_CGROUP_PREFIX } from './bench/resources.js';

const out = mkdtempSync(path.join(tmpdir(), 'ebpf-tuner-bench-smoke-'));

afterAll(() => {
  rmSync(out, { recursive: true, force: true });
});

interface Results {
  quick: boolean;
  sections: Record<string, { status: string; reason?: string; chart: string | null; tables: unknown[]; goals: { goal: string; measured: string }[] }>;
  created: { processes: { pid: number; name: string }[]; cgroups: string[]; tempDirs: string[] };
}

/** Clock ticks since boot now, to tell a leftover process from an unrelated one that reused its pid. */
function ticksSinceBoot(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 100;
}

function startTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return undefined;
  }
}

function pngSize(file: string): { width: number; height: number } {
  const b = readFileSync(file);
  expect(b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  expect(b.toString('latin1', 12, 16)).toBe('IHDR');
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

describe('bench --quick on the real kernel', () => {
  it('runs every section, writes parseable results and charts, and leaves nothing behind', { timeout: 600_000 }, async () => {
    if (process.geteuid?.() !== 0) throw new Error('this test needs root: the bench loads BPF programs and creates cgroups');
    const before = bpftoolProgs();
    const t0 = Date.now();

    await runBench({ quick: true, out });

    const endTicks = ticksSinceBoot();
    process.stderr.write(`bench --quick took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);

    // Outputs exist and parse.
    const results = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8')) as Results;
    expect(results.quick).toBe(true);
    const expected = SECTION_IDS;
    for (const id of expected) {
      const s = results.sections[id];
      expect(s, `section ${id}`).toBeDefined();
      expect(s!.status, `${id}: ${s!.reason}`).toBe('ok');
      expect(s!.tables.length).toBeGreaterThan(0);
      expect(s!.chart).toBe(`${id}.png`);
      const { width, height } = pngSize(path.join(out, s!.chart!));
      expect(width).toBeGreaterThan(0);
      expect(height).toBeGreaterThan(0);
      for (const g of s!.goals) process.stderr.write(`  ${id}: ${g.goal} — ${g.measured}\n`);
    }
    const summary = readFileSync(path.join(out, 'summary.md'), 'utf8');
    expect(summary).toMatch(/^# ebpf-tuner benchmarks/);
    expect(summary).toContain('## Machine');
    for (const id of expected) expect(summary).toContain(`](${id}.png)`);

    // Nothing left behind: cgroups.
    for (const m of detectLayout().mounts) {
      const mine = readdirSync(m.mount).filter((n) => n.startsWith(`${BENCH_CGROUP_PREFIX}${process.pid}-`));
      expect(mine, `cgroups left under ${m.mount}`).toEqual([]);
    }
    expect(results.created.cgroups.length).toBeGreaterThan(0);
    for (const c of results.created.cgroups) expect(existsSync(c), c).toBe(false);

    // Processes: every pid the bench started is gone (or now belongs to a process started after the bench ended).
    expect(results.created.processes.length).toBeGreaterThan(0);
    for (const p of results.created.processes) {
      const started = startTicks(p.pid);
      expect(started === undefined || started > endTicks, `process ${p.pid} (${p.name}) still running`).toBe(true);
    }

    // Temporary directories.
    for (const d of results.created.tempDirs) expect(existsSync(d), d).toBe(false);

    // BPF: no tracing program that appeared during the run is left unless a live process outside the bench holds it
    // (other tests on this host load their own), and this process holds none and no BPF stats fd.
    // The kernel frees a program some time after its last fd closes (RCU): wait for the unheld ones to go first.
    let after = bpftoolProgs();
    let fresh: number[] = [];
    let holders = new Map<number, number[]>();
    for (let i = 0; i < 100; i++) {
      after = bpftoolProgs();
      fresh = [...after.values()].filter((p) => !before.has(p.id) && TRACING_TYPES.has(p.type)).map((p) => p.id);
      holders = holdersOf(fresh);
      if (fresh.every((id) => (holders.get(id) ?? []).length > 0)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const ours = new Set(results.created.processes.map((p) => p.pid));
    for (const id of fresh) {
      const h = holders.get(id) ?? [];
      expect(h.length, `BPF program ${id} (${after.get(id)?.name}) has no holder: leaked`).toBeGreaterThan(0);
      expect(h.filter((pid) => ours.has(pid) || pid === process.pid), `BPF program ${id} held by the bench`).toEqual([]);
    }
    expect(progIdsOf(process.pid).filter((id) => !before.has(id))).toEqual([]);
    const statsFds = readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:bpf-stats';
      } catch {
        return false;
      }
    });
    expect(statsFds).toEqual([]);
  });
});
