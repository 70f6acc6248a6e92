/** cpu_weight in the action conformance suite (src/testing/conformance.ts). */
import type { ConformanceCase } from '../../testing/conformance.js';
import { cpuWeight } from './cpu-weight.js';

export const conformance: ConformanceCase = { action: cpuWeight, changing: { weight: 37 } };
