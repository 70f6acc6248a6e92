/**
 * Record on the real kernel, replay offline: the recording made by this test (a victim beside CPU hogs) replays to
 * the same decisions every time, proposes the cpu_weight nudge the live agent would make, and recording wrote no knob.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupAll, killAndWait, makeTestCgroup } from '../../src/testing/cgroups.js';
import { noisyNeighborConfig, runCli, spawnHogs, spawnVictim, tempDir } from './helpers.js';

afterAll(async () => {
  await cleanupAll();
});

describe('record and replay', () => {
  it('replays a recording made here deterministically, without touching the system', async () => {
    const base = makeTestCgroup('cpu');
    const web = base.child('web');
    const batch = base.child('batch');
    const dir = tempDir();
    const procs = [await spawnVictim(web.path), await spawnHogs(batch.path)];
    try {
      const config = dir.file('c.yaml', noisyNeighborConfig(web.path, batch.path));
      const out = join(dir.path, 'rec.jsonl.gz');
      const r = runCli(['record', '--out', out, '--config', config, '--duration', '6']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/recorded \d+ ticks/);
      expect(readFileSync(join(batch.path, 'cpu.shares'), 'utf8').trim()).toBe('1024');

      const a = runCli(['replay', out, '--json']);
      const b = runCli(['replay', out, '--json']);
      expect(a.code, a.stderr).toBe(0);
      expect(a.stdout).toBe(b.stdout);
      const decisions = a.stdout.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; action: string; target: string; to?: { weight: number } });
      const first = decisions.find((d) => d.kind === 'proposed');
      expect(first).toMatchObject({ action: 'cpu_weight', target: 'batch', to: { weight: 50 } });

      // Tuning offline: the same recording under a config whose threshold is never reached proposes nothing.
      const lax = dir.file('lax.yaml', readFileSync(config, 'utf8').replace('p99_threshold_us: 3000', 'p99_threshold_us: 10000000'));
      const c = runCli(['replay', out, '--config', lax]);
      expect(c.stdout).toMatch(/no decisions/);
    } finally {
      for (const p of procs) await killAndWait(p);
      base.remove();
      dir.remove();
    }
  });

  it('names a file that is not a recording', () => {
    const dir = tempDir();
    try {
      const f = dir.file('x.gz', 'not gzip');
      const r = runCli(['replay', f]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/^ebpf-tuner replay: read recording .*x\.gz/);
    } finally {
      dir.remove();
    }
  });
});
