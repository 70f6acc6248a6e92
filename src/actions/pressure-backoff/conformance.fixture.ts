/** pressure_backoff in the action conformance suite (src/testing/conformance.ts). */
import type { ConformanceCase } from '../../testing/conformance.js';
import { pressureBackoff } from './pressure-backoff.js';

export const conformance: ConformanceCase = { action: pressureBackoff, changing: { quotaCpus: 0.5 } };
