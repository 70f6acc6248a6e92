/**
 * Config reload through the real CLI: SIGHUP or the file changing. A bad config is refused in full and the running
 * one stays; a good one replaces it (targets included) without restarting the process.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupAll, killAndWait, makeTestCgroup } from '../../src/testing/cgroups.js';
import { startAgent, tempDir } from './helpers.js';

afterAll(async () => {
  await cleanupAll();
});

describe('config reload', () => {
  it('refuses a bad config, keeps running, and takes a good one on SIGHUP and on a file change', async () => {
    const base = makeTestCgroup('cpu');
    const a = base.child('a');
    const b = base.child('b');
    const dir = tempDir();
    const file = dir.file('c.yaml', `targets:\n  - {name: first, cgroup: ${a.path}, role: protect}\n`);
    const agent = startAgent(['--config', file, '--state-dir', dir.path + '/state']);
    try {
      // A SIGHUP while the agent is still starting (its first log line, before any program is attached) waits for the
      // start instead of ending the process.
      await agent.waitFor(() => true);
      agent.child.kill('SIGHUP');
      await agent.waitFor((l) => l.msg === 'agent running');
      const early = await agent.waitFor((l) => l.msg === 'config unchanged');
      expect(early.why).toBe('SIGHUP');

      writeFileSync(file, `tickk: 1s\ntargets:\n  - {name: first, cgroup: ${a.path}, role: protect}\n`);
      agent.child.kill('SIGHUP');
      const refused = await agent.waitFor((l) => l.msg === 'config reload refused; the running config stays');
      expect(String(refused.err)).toMatch(/tickk/);
      expect(agent.child.exitCode).toBeNull();

      writeFileSync(file, `targets:\n  - {name: second, cgroup: ${b.path}, role: protect}\n`);
      agent.child.kill('SIGHUP');
      const reloaded = await agent.waitFor((l) => l.msg === 'config reloaded');
      expect(reloaded.targets).toEqual(['second']);

      // No signal: the file changing is enough (polled every 2 s).
      writeFileSync(file, `targets:\n  - {name: third, cgroup: ${a.path}, role: protect}\n`);
      const changed = await agent.waitFor((l) => l.msg === 'config reloaded' && (l.targets as string[])[0] === 'third', 10_000);
      expect(String(changed.why)).toMatch(/changed/);

      agent.child.kill('SIGTERM');
      expect((await agent.exited).code).toBe(0);
    } finally {
      await killAndWait(agent);
      base.remove();
      dir.remove();
    }
  });
});
