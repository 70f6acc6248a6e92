/** A change held on purpose, as noisy_neighbor reports one while the neighbour still wants the CPU: for tests. */
import type { Hold } from '../engine/holds.js';

/** batch's cpu_weight held for being busy, since `since`, last reported 65 s later. */
export function busyHold(since: number): Hold {
  return {
    action: 'cpu_weight',
    target: 'batch',
    rule: 'noisy-neighbor',
    cause: 'noisy-busy',
    reason: 'protect targets calm for 5 ticks (calm_ticks), but batch still wants 1.91 CPU ≥ release_below_cpus 0.1',
    evidence: { demandCpus: 1.91 },
    since,
    time: since + 65_000,
  };
}
