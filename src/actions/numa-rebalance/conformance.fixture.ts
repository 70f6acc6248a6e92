/** numa_rebalance in the action conformance suite (src/testing/conformance.ts). */
import fs from 'node:fs';
import path from 'node:path';
import type { ConformanceCase } from '../../testing/conformance.js';
import { numaRebalance } from './numa-rebalance.js';

export const conformance: ConformanceCase = {
  action: numaRebalance,
  changing: { cpusNode: 0 },
  // On a one-node host node 0 holds every CPU, so homing a cgroup to it changes something only when its cpuset does
  // not already hold them all: give both cgroups only the last CPU.
  prepare: ({ dirs, rootCpus }) => {
    for (const dir of dirs) fs.writeFileSync(path.join(dir, 'cpuset.cpus'), `${rootCpus.split(/[,-]/).at(-1)}\n`);
  },
};
