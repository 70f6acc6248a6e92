/**
 * cgstat on this hybrid host through `top --once --json`: a target named in the v1 cpu hierarchy reads CPU usage
 * from the cgroup at the same relative path under the cpuacct mount and memory from the memory mount, checked
 * against those cgroups' own cpuacct.usage and memory.usage_in_bytes. A target with no cgroup in those hierarchies
 * says so, naming the missing directory and the fix, instead of a failed file read.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import { detectLayout } from '../../src/cgroup/layout.js';
import { errnoCode } from '../../src/core/errors.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, spawnTracked, type SpawnedProcess } from '../../src/testing/cgroups.js';
import { runCli, tempDir } from './helpers.js';

const layout = detectLayout();

afterAll(async () => {
  await cleanupAll();
});

/** `rel` under a v1 controller's mount, created with its parents; removed deepest first (after its tasks ended). */
function twin(controller: string, rel: string): { path: string; remove(): void } {
  const c = layout.controllers[controller];
  if (!c || c.version !== 1) throw new Error(`this host has no v1 ${controller} hierarchy, which this test needs`);
  const dir = path.join(c.mount, rel);
  fs.mkdirSync(dir, { recursive: true });
  return {
    path: dir,
    remove(): void {
      for (let d = dir; d !== c.mount; d = path.dirname(d)) {
        for (let i = 0; ; i++) {
          try {
            fs.rmdirSync(d);
            break;
          } catch (e) {
            if (errnoCode(e) === 'ENOENT') break;
            if (errnoCode(e) !== 'EBUSY' || i > 200) throw e;
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
          }
        }
      }
    },
  };
}

type Cgstat = { cpuUsageUs: number; memoryBytes?: number; unavailable?: string[] };

describe('cgstat through the CLI on a hybrid host', () => {
  it('reads cpuacct and memory at the cpu cgroup\'s relative path, and names what is missing', async () => {
    const base = makeTestCgroup('cpu');
    const web = base.child('web');
    const lonely = base.child('lonely');
    const rel = path.relative(layout.controllers.cpu!.mount, web.path);
    const acct = twin('cpuacct', rel);
    const mem = twin('memory', rel);
    const dir = tempDir();
    const procs: SpawnedProcess[] = [];
    try {
      const hog = await spawnInCgroup(web.path, toolPath('hog'), ['--threads', '1']);
      procs.push(hog);
      fs.writeFileSync(path.join(acct.path, 'cgroup.procs'), String(hog.pid));
      // 32 MiB touched and held, charged to the memory twin.
      const holder = spawnTracked('/bin/sh', [
        '-c',
        'echo $$ > "$0" && exec "$1" -e "const b = Buffer.alloc(32 << 20, 1); setInterval(() => b[0]++, 1000)"',
        path.join(mem.path, 'cgroup.procs'),
        process.execPath,
      ]);
      procs.push(holder);
      for (let i = 0; i < 200 && Number(fs.readFileSync(path.join(mem.path, 'memory.usage_in_bytes'), 'utf8')) < 32 << 20; i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      const config = dir.file('c.yaml', `targets:\n  - {name: web, cgroup: ${web.path}, role: protect}\n  - {name: lonely, cgroup: ${lonely.path}, role: noisy}\n`);
      const usage = () => Number(fs.readFileSync(path.join(acct.path, 'cpuacct.usage'), 'utf8')) / 1000;
      const before = usage();
      const r = runCli(['top', '--once', '--json', '--config', config]);
      const kernelUs = usage() - before;
      const memNow = Number(fs.readFileSync(path.join(mem.path, 'memory.usage_in_bytes'), 'utf8'));
      expect(r.code, r.stderr).toBe(0);
      const snap = JSON.parse(r.stdout.trim().split('\n')[0]!) as { targets: Record<string, { cgstat: Cgstat }> };

      const w = snap.targets.web!.cgstat;
      expect(w.unavailable, JSON.stringify(w.unavailable)).toBeUndefined();
      // The window lies inside the interval cpuacct.usage was read over, and the hog ran through all of it.
      expect(w.cpuUsageUs).toBeGreaterThan(0);
      expect(w.cpuUsageUs).toBeLessThanOrEqual(kernelUs * 1.02);
      // Memory as read at the end of the window; the holder keeps it steady (10% for page-cache and stack noise).
      expect(w.memoryBytes).toBeGreaterThan(32 << 20);
      expect(Math.abs(w.memoryBytes! - memNow) / memNow).toBeLessThan(0.1);

      const l = snap.targets.lonely!.cgstat;
      const lonelyRel = path.relative(layout.controllers.cpu!.mount, lonely.path);
      expect(l.unavailable).toEqual([
        `cpuacct: the target has no cgroup in the cpuacct hierarchy (${path.join(layout.controllers.cpuacct!.mount, lonelyRel)} does not exist) — fix: create it and move the target's tasks into it too, or mount cpuacct together with cpu`,
        `memory: the target has no cgroup in the memory hierarchy (${path.join(layout.controllers.memory!.mount, lonelyRel)} does not exist) — fix: create it and move the target's tasks into it too, or mount memory together with cpu`,
      ]);
    } finally {
      for (const p of procs) await killAndWait(p);
      acct.remove();
      mem.remove();
      base.remove();
      dir.remove();
    }
  });
});
