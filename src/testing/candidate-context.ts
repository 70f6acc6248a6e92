/**
 * A learner's view of one hot tick, for unit tests of the arms the actions declare: web (protect) hot at 9 ms,
 * batch (noisy) busy, idle (noisy) not running; knob readings and changed knobs as the test gives them.
 */
import type { TargetSignals, TickSnapshot } from '../core/types.js';
import type { CandidateContext } from '../engine/learned/candidates.js';
import type { DecideInput, KnobValues } from '../engine/strategy.js';
import type { PlacementStats } from '../signals/placement/placement.js';
import { placementStats, runqlatWindow } from '../signals/windows.js';

function lat(p99: number, oncpuUs: number): TargetSignals['runqlat'] {
  return runqlatWindow({ count: 100, p50: 0, p90: 0, p99, mean: 0, p99Ewma: p99, waitUs: 0, oncpuUs });
}

/** `knobs` and `changed` are keyed `<target>/<action>`; `placement` is web's. */
export function candidateContext(
  knobs: Record<string, KnobValues>,
  changed: string[] = [],
  placement?: Partial<PlacementStats>,
): CandidateContext {
  const snapshot: TickSnapshot = {
    time: 1000,
    windowMs: 1000,
    targets: {
      web: { name: 'web', role: 'protect', runqlat: lat(9000, 300_000), ...(placement ? { placement: placementStats(placement) } : {}) },
      batch: { name: 'batch', role: 'noisy', runqlat: lat(200, 1_600_000) },
      idle: { name: 'idle', role: 'noisy', runqlat: lat(0, 0) },
    },
  };
  const input: DecideInput = {
    now: 1000,
    snapshot,
    history: [],
    targets: Object.values(snapshot.targets).map((t) => ({ name: t.name, role: t.role })),
    current: (t, a) => knobs[`${t}/${a}`],
    changed: (t, a) => changed.includes(`${t}/${a}`),
  };
  return {
    input,
    hot: [{ name: 'web', p99: 9000 }],
    protect: input.targets.filter((t) => t.role === 'protect'),
    noisy: input.targets.filter((t) => t.role === 'noisy'),
  };
}
