/**
 * Whole signal windows from the few fields a caller cares about: every other field a signal reports is zero (or
 * empty). For code that makes up ticks instead of measuring them — the learner's simulator and tests — so that a
 * made-up tick has exactly the shape the signals publish and the rules read.
 */
import type { BlkioDeviceWindow, BlkioRequests, BlkioWindow } from './blkio/blkio.js';
import type { CgstatWindow } from './cgstat/cgstat.js';
import type { FutexWindow } from './futex/futex.js';
import type { PlacementStats } from './placement/placement.js';
import type { PsiResource } from './psi/psi.js';
import type { RunqlatWindow } from './runqlat/runqlat.js';

const latency = { count: 0, p50: 0, p90: 0, p99: 0, mean: 0 };
const hist = () => ({ counts: [], count: 0, sumUs: 0 });

export function runqlatWindow(p: Partial<RunqlatWindow> = {}): RunqlatWindow {
  return {
    ...latency,
    p99Ewma: 0,
    waitUs: 0,
    oncpuUs: 0,
    oncpuRatio: 1,
    switchesOut: 0,
    involuntary: 0,
    voluntary: 0,
    wakeups: 0,
    migrations: 0,
    hist: hist(),
    ...p,
  };
}

export function futexWindow(p: Partial<FutexWindow> = {}): FutexWindow {
  return { ...latency, waitUs: 0, hist: hist(), top: [], ...p };
}

const requests = (): BlkioRequests => ({ ios: 0, readBytes: 0, writeBytes: 0, seqRatio: 0, p50: 0, p90: 0, p99: 0, mean: 0, maxInflight: 0 });

/** A device window for `dev` ("major:minor"), its numbers taken from it unless given. */
export function blkioDevice(p: Partial<BlkioDeviceWindow> & { dev: string }): BlkioDeviceWindow {
  const [major, minor] = p.dev.split(':').map(Number);
  return { ...requests(), major: major!, minor: minor!, ...p };
}

export function blkioWindow(p: Partial<BlkioWindow> = {}): BlkioWindow {
  return { ...requests(), burst: 0, hist: hist(), devices: [], ...p };
}

export function placementStats(p: Partial<PlacementStats> = {}): PlacementStats {
  return { threads: 0, runnable: 0, cpusUsed: 0, pileup: 0, pileupCpu: -1, allowedCpus: 0, idleCpus: 0, idle: [], perCpu: {}, ...p };
}

export function psiResource(p: Partial<PsiResource> = {}): PsiResource {
  return { someAvg10: 0, someAvg60: 0, someAvg300: 0, someStallUs: 0, someTotalUs: 0, ...p };
}

export function cgstatWindow(p: Partial<CgstatWindow> = {}): CgstatWindow {
  return { version: 2, cpuUsageUs: 0, cpuCores: 0, nrPeriods: 0, nrThrottled: 0, throttledUs: 0, throttledRatio: 0, ...p };
}
