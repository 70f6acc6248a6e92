/**
 * Every signal the agent can run, and the metrics each feeds. Adding one is its folder plus its line in each list
 * here (the second only if it has metrics); the agent never branches on a name, and the HTTP server writes
 * whatever SIGNAL_METRICS holds.
 */
import type { Signal } from '../core/types.js';
import type { Config } from '../config/types.js';
import { attachOrder } from '../bpf/probe.js';
import { BLKIO_HOOK_ORDER, BlkioSignal } from './blkio/blkio.js';
import { BLKIO_METRICS } from './blkio/metrics.js';
import { CgstatSignal } from './cgstat/cgstat.js';
import { CGSTAT_METRICS } from './cgstat/metrics.js';
import { FUTEX_HOOK_ORDER, FutexSignal } from './futex/futex.js';
import { FUTEX_METRICS } from './futex/metrics.js';
import type { MetricDecl } from './metrics.js';
import { NET_HOOK_ORDER, NetSignal } from './net/net.js';
import { NET_METRICS } from './net/metrics.js';
import { NumaSignal } from './numa/numa.js';
import { NUMA_METRICS } from './numa/metrics.js';
import { PlacementSignal } from './placement/placement.js';
import { PLACEMENT_METRICS } from './placement/metrics.js';
import { PsiSignal } from './psi/psi.js';
import { PSI_METRICS } from './psi/metrics.js';
import { RUNQLAT_WAKE_DEFAULTS, RunqlatSignal } from './runqlat/runqlat.js';
import { RUNQLAT_METRICS } from './runqlat/metrics.js';

export function createSignals(config: Config, observeHost: boolean): Signal[] {
  const out: Signal[] = [];
  if (config.signals.runqlat.enabled) {
    const nn = config.policy.noisyNeighbor;
    out.push(
      new RunqlatSignal({
        perThread: config.signals.runqlat.perThread,
        host: observeHost,
        ewmaAlpha: config.ewmaAlpha,
        attach: config.signals.runqlat.attach,
        ...(nn.enabled && nn.eventDriven ? { wake: { aboveUs: nn.p99ThresholdUs, ...RUNQLAT_WAKE_DEFAULTS } } : {}),
      }),
    );
  }
  if (config.signals.psi.enabled) out.push(new PsiSignal({ triggers: config.signals.psi.triggers }));
  if (config.signals.cgstat.enabled) out.push(new CgstatSignal());
  if (config.signals.net.enabled) out.push(new NetSignal({ host: true, hooks: attachOrder(config.signals.net.attach, NET_HOOK_ORDER) }));
  if (config.signals.futex.enabled) out.push(new FutexSignal({ host: observeHost, hooks: attachOrder(config.signals.futex.attach, FUTEX_HOOK_ORDER) }));
  if (config.signals.blkio.enabled) out.push(new BlkioSignal({ host: observeHost, hooks: attachOrder(config.signals.blkio.attach, BLKIO_HOOK_ORDER) }));
  if (config.policy.cpusetSpread.enabled) {
    out.push(new PlacementSignal({ idleBelow: config.policy.cpusetSpread.idleBelow, widenCpuset: config.policy.cpusetSpread.mode === 'cpuset' }));
  }
  if (config.policy.numaRebalance.enabled) {
    out.push(new NumaSignal({ everyTicks: config.policy.numaRebalance.sampleTicks, move: config.policy.numaRebalance.move }));
  }
  return out;
}

/** Every signal metric, in the order /metrics writes them. */
export const SIGNAL_METRICS: readonly MetricDecl[] = [
  ...RUNQLAT_METRICS,
  ...FUTEX_METRICS,
  ...BLKIO_METRICS,
  ...CGSTAT_METRICS,
  ...PSI_METRICS,
  ...NET_METRICS,
  ...NUMA_METRICS,
  ...PLACEMENT_METRICS,
];
