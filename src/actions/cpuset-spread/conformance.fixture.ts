/** cpuset_spread in the action conformance suite (src/testing/conformance.ts). */
import type { ConformanceCase } from '../../testing/conformance.js';
import { cpusetSpread } from './cpuset-spread.js';

export const conformance: ConformanceCase = { action: cpusetSpread, changing: { cpuset: 1 } };
