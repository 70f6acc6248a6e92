/**
 * The action conformance suite (src/testing/conformance.ts) on real cgroup v2, inside a freshly booted VM: every
 * registered action writes cpu.weight, cpu.max and cpuset.cpus of a real v2 cgroup with the controllers enabled,
 * journals the originals and restores them byte for byte, refuses a cgroup outside its scope, writes nothing in a
 * dry run, and leaves alone a knob another writer took.
 */
import { afterAll, beforeAll } from 'vitest';
import { ACTIONS } from '../../src/actions/index.js';
import { cleanupAll } from '../../src/testing/cgroups.js';
import { conformanceSuite, realConformanceTree } from '../../src/testing/conformance.js';
import { requireVm } from './helpers.js';

beforeAll(() => requireVm());
afterAll(async () => {
  await cleanupAll();
});

conformanceSuite(ACTIONS, realConformanceTree);
