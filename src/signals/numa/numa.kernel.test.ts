/**
 * The NUMA signal's readers against the real kernel of this one-node host: the real node topology, real numa_maps
 * of a real process, and the signal itself, which on one node reads nothing and reports nothing.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target, TargetSignals } from '../../core/types.js';
import { toolPath } from '../../bpf/paths.js';
import { onlineCpus, readTaskStat } from '../placement/procfs.js';
import { cleanupAll, killAndWait, spawnTracked } from '../../testing/cgroups.js';
import { NumaSignal, parseNumaMaps, readTopology, sampleNuma } from './numa.js';

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('kernel tests read other processes\' numa_maps: run them as root');
  if (!fs.existsSync('/sys/devices/system/node/node0')) throw new Error('this kernel has no NUMA sysfs (CONFIG_NUMA off): nothing real to read');
});
afterAll(async () => {
  await cleanupAll();
});

describe('NUMA readers on the real kernel', () => {
  it("weighs each thread by its own CPU time, not its process's", async () => {
    // /proc/<tid>/stat of any thread reports the whole process's utime and stime; the weights need each thread's.
    const p = spawnTracked(toolPath('numa-touch'), ['--mib', '8']);
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const tids = fs.readdirSync(`/proc/${p.pid}/task`).map(Number);
      const leader = readTaskStat(p.pid)!;
      const toucher = readTaskStat(tids.find((t) => t !== p.pid)!)!;
      // The leader only waits for a signal; the toucher spins.
      expect(toucher.cpuTicks).toBeGreaterThan(50);
      expect(leader.cpuTicks).toBeLessThan(toucher.cpuTicks / 4);
    } finally {
      await killAndWait(p);
    }
  });

  it('reads the topology, and a real process as all local on node 0', async () => {
    const topo = readTopology();
    expect(topo.nodes.flatMap((n) => n.cpus).sort((a, b) => a - b)).toEqual(onlineCpus());
    const p = spawnTracked(process.execPath, ['-e', 'const b = Buffer.alloc(16 << 20, 1); setInterval(() => b[0]++, 1000)']);
    try {
      // Wait for the 16 MiB to be touched.
      for (let i = 0; i < 200; i++) {
        const kb = [...parseNumaMaps(fs.readFileSync(`/proc/${p.pid}/numa_maps`, 'utf8')).kb.values()].reduce((a, b) => a + b, 0);
        if (kb > 16 << 10) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const t: Target = { name: 'db', role: 'protect', slot: 0, scope: { kind: 'pids', pids: [p.pid] } };
      const s = sampleNuma(t, topo, {});
      expect(s.totalKb).toBeGreaterThan(16 << 10);
      if (topo.nodes.length === 1) expect(s).toMatchObject({ nodes: 1, memNode: topo.nodes[0]!.id, memShare: 1, remoteFraction: 0 });

      const n = 50;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) sampleNuma(t, topo, {});
      const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
      console.log(`numa sample: ${us.toFixed(0)} µs for one process of ${Math.round(s.totalKb / 1024)} MiB mapped (numa_maps + thread stats)`);

      const sig = new NumaSignal({ everyTicks: 1 });
      sig.start({ log: silentLogger, targets: [t], cgroupVersion: 1 });
      const out: Record<string, TargetSignals> = {};
      sig.collect(Date.now(), out);
      // One node: nothing is read and nothing reported; on more nodes the sample is there.
      expect(out.db?.numa === undefined).toBe(topo.nodes.length < 2);
      sig.close();
    } finally {
      await killAndWait(p);
    }
  });
});
