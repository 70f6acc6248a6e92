/** `top --once --json`: one snapshot after one window, every target by its configured name. */
import { afterAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup } from '../../src/testing/cgroups.js';
import { runCli, tempDir } from './helpers.js';

afterAll(async () => {
  await cleanupAll();
});

describe('top', () => {
  it('--once --json prints one snapshot with each target by name', async () => {
    const cg = makeTestCgroup('cpu');
    const dir = tempDir();
    const victim = await spawnInCgroup(cg.path, toolPath('victim'), ['--period-us', '2000', '--work-us', '200', '--quiet']);
    try {
      const config = dir.file('c.yaml', `targets:\n  - {name: svc, cgroup: ${cg.path}, role: protect}\n`);
      const r = runCli(['top', '--once', '--json', '--config', config]);
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(1);
      const snap = JSON.parse(lines[0]) as { windowMs: number; targets: Record<string, { role: string; runqlat: { count: number; oncpuRatio: number } }> };
      expect(Object.keys(snap.targets)).toEqual(['svc']);
      expect(snap.targets.svc.role).toBe('protect');
      expect(snap.targets.svc.runqlat.count).toBeGreaterThan(100);
      expect(snap.targets.svc.runqlat.oncpuRatio).toBeGreaterThan(0);
      expect(snap.targets.svc.runqlat.oncpuRatio).toBeLessThanOrEqual(1);
      const table = runCli(['top', '--once', '--config', config]);
      expect(table.stdout).toMatch(/svc\s+protect/);
    } finally {
      await killAndWait(victim);
      cg.remove();
      dir.remove();
    }
  });
});
