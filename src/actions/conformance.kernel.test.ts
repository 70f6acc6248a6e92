/**
 * The action conformance suite (src/testing/conformance.ts) on the host's real cgroup hierarchy: every registered
 * action writes, journals and restores real cgroup files. On a v1 or hybrid host a target is a cgroup in the cpu
 * hierarchy with its twin (the same path) in the cpuset hierarchy, as the agent finds it; io_prefetch's sysfs stays a
 * faithful fake (a real device's read-ahead is tested in io-prefetch.kernel.test.ts).
 */
import { afterAll, beforeAll } from 'vitest';
import { conformanceSuite, realConformanceTree } from '../testing/conformance.js';
import { cleanupAll } from '../testing/cgroups.js';
import { ACTIONS } from './index.js';

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('kernel tests create cgroups under /sys/fs/cgroup: run them as root');
});
afterAll(async () => {
  await cleanupAll();
});

conformanceSuite(ACTIONS, realConformanceTree);
