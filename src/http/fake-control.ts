/**
 * A fake of the agent's control surface and synthetic bus traffic, for exercising the HTTP server and dashboard
 * without an engine or a kernel. It publishes on the real channels, so the server under test consumes exactly what
 * the agent would send.
 */
import { request } from 'node:http';
import { channels, type DecisionEvent, type KnobEvent } from '../core/events.js';
import type { CumulativeHistogram, TargetSignals, TickSnapshot } from '../core/types.js';
import type { PsiResources } from '../signals/psi/psi.js';
import type { RunqlatWindow } from '../signals/runqlat/runqlat.js';
import type { Hold } from '../engine/holds.js';
import type { AgentControl, KnobChange, ProgramStats, TargetInfo } from './types.js';
import { placementStats } from '../signals/windows.js';

export class FakeControl implements AgentControl {
  isPaused = false;
  isReady = true;
  readonly knobs = new Map<string, KnobChange>();
  /** What holds() answers: changes kept in effect on purpose. */
  held: Hold[] = [];
  readonly calls: string[] = [];
  stats: ProgramStats[] = [
    { name: 'handle_sched_wakeup', runTimeNs: 0, runCnt: 0 },
    { name: 'handle_sched_switch', runTimeNs: 0, runCnt: 0 },
  ];

  constructor(
    readonly targetList: TargetInfo[] = [
      { name: 'web', role: 'protect' },
      { name: 'batch', role: 'noisy' },
    ],
  ) {}

  paused(): boolean {
    return this.isPaused;
  }
  pause(): void {
    this.calls.push('pause');
    this.isPaused = true;
  }
  resume(): void {
    this.calls.push('resume');
    this.isPaused = false;
  }
  revert(knobId: string): boolean {
    this.calls.push(`revert:${knobId}`);
    const k = this.knobs.get(knobId);
    if (!k || k.state !== 'active') return false;
    const restored: KnobChange = { ...k, value: k.original, state: 'restored', time: Date.now() };
    this.knobs.set(knobId, restored);
    publishKnob('restored', k, restored);
    return true;
  }
  changes(): KnobChange[] {
    return [...this.knobs.values()];
  }
  targets(): TargetInfo[] {
    return this.targetList;
  }
  holds(): Hold[] {
    return this.held;
  }
  ready(): boolean {
    return this.isReady;
  }
  actions(): readonly string[] {
    return ['cpu-weight', 'cpuset-spread'];
  }

  programStats(): ProgramStats[] {
    return this.stats.map((s) => ({ ...s }));
  }

  /** Records a knob write as the agent would, and publishes it. */
  write(k: Omit<KnobChange, 'state'>): KnobChange {
    const ev: KnobChange = { ...k, state: 'active', time: k.time ?? Date.now() };
    this.knobs.set(k.knobId, ev);
    publishKnob('written', { ...ev, value: ev.original }, ev);
    return ev;
  }

  /** Advances the fake BPF counters as if `events` program runs of `nsPerRun` each had happened. */
  runPrograms(events: number, nsPerRun: number): void {
    for (const s of this.stats) {
      s.runCnt += events;
      s.runTimeNs += events * nsPerRun;
    }
  }
}

/** Publishes a knob's change from `before` to `after` on `channels.knob`, in the shape the knob writer and restorer use. */
function publishKnob(kind: KnobEvent['kind'], before: KnobChange, after: KnobChange): void {
  const e: KnobEvent = { kind, knobId: after.knobId, path: after.path, target: after.target, action: after.action, from: before.value, to: after.value, time: after.time ?? Date.now() };
  channels.knob.publish(e);
}

/** A plausible snapshot: `web` suffers run-queue latency that grows with `i`, `batch` keeps the CPU busy. */
/**
 * A log2 µs histogram as a signal reports it, cumulative since start: `n` waits spread around `centre` µs, times
 * `i + 1` so it grows tick by tick as the kernel's does.
 */
export function syntheticHistogram(i: number, centre: number, n: number): CumulativeHistogram {
  const counts = new Array<number>(32).fill(0);
  const b = Math.max(1, Math.floor(Math.log2(centre)));
  counts[b - 1] = Math.round(n * 0.3) * (i + 1);
  counts[b] = Math.round(n * 0.6) * (i + 1);
  counts[b + 3] = Math.round(n * 0.1) * (i + 1);
  return { counts, count: counts.reduce((a, x) => a + x, 0), sumUs: n * centre * (i + 1) };
}

function runqlat(i: number, w: Omit<RunqlatWindow, 'hist' | 'oncpuRatio' | 'voluntary' | 'wakeups'>): RunqlatWindow {
  return {
    ...w,
    hist: syntheticHistogram(i, w.p50, w.count),
    oncpuRatio: w.oncpuUs / (w.oncpuUs + w.waitUs),
    voluntary: w.switchesOut - w.involuntary,
    wakeups: w.count - w.involuntary,
  };
}

export function syntheticSnapshot(time: number, i: number, windowMs = 1000): TickSnapshot {
  const wave = Math.sin(i / 6);
  const web: TargetSignals = {
    name: 'web',
    role: 'protect',
    runqlat: runqlat(i, {
      count: 1200 + 40 * i,
      p50: 40 + 10 * wave,
      p90: 180 + 60 * wave,
      p99: 900 + 400 * wave + 20 * i,
      mean: 70 + 12 * wave,
      p99Ewma: 880 + 15 * i,
      waitUs: 90_000 + 2000 * i,
      oncpuUs: 400_000 + 10_000 * wave,
      switchesOut: 1500,
      involuntary: 300,
      migrations: 20,
    }),
    oncpu: { ratio: 0.35 + 0.1 * wave },
  };
  const batch: TargetSignals = {
    name: 'batch',
    role: 'noisy',
    runqlat: runqlat(i, {
      count: 5000,
      p50: 15 + 3 * wave,
      p90: 60,
      p99: 300 + 50 * wave,
      mean: 25,
      p99Ewma: 310,
      waitUs: 40_000,
      oncpuUs: 1_800_000 + 50_000 * wave,
      switchesOut: 6000,
      involuntary: 2500,
      migrations: 5,
    }),
    oncpu: { ratio: 0.9 + 0.05 * wave },
  };
  const psi: PsiResources = {
    cpu: { someAvg10: 12 + 5 * wave, someAvg60: 11, someAvg300: 10, someStallUs: 120_000, someTotalUs: 5e6 + 120_000 * i },
  };
  return { time, windowMs, targets: { web, batch }, host: { psi } };
}

export function publishTick(s: TickSnapshot): void {
  channels.tick.publish(s);
}

/** A plausible decision: cpu-weight applied to `batch` by the noisy-neighbor rule; `over` sets what a test is about. */
export function syntheticDecision(over: Partial<DecisionEvent> & Pick<DecisionEvent, 'id' | 'time'>): DecisionEvent {
  return {
    kind: 'applied',
    action: 'cpu-weight',
    target: 'batch',
    rule: 'noisy-neighbor',
    from: '100',
    to: '80',
    reason: 'web p99 above threshold',
    evidence: { p99Us: 2400 },
    ...over,
  };
}

export function publishDecision(d: DecisionEvent): void {
  channels.decision.publish(d);
}

/**
 * A snapshot for any list of targets, each a little different: run-queue figures that drift with the target's index,
 * cgroup statistics with the memory part unavailable (as on a v1 host where the target has no memory cgroup) and
 * pressure that cgroup v1 does not keep, so the dashboard's gaps carry the reasons a real agent gives.
 */
export function syntheticFleet(time: number, i: number, targets: readonly TargetInfo[], windowMs = 1000): TickSnapshot {
  const out: Record<string, TargetSignals> = {};
  const psi: PsiResources = {
    cpu: { someAvg10: 12 + 5 * Math.sin(i / 6), someAvg60: 11, someAvg300: 10, someStallUs: 120_000, someTotalUs: 5e6 + 120_000 * i },
    memory: { someAvg10: 0.4, someAvg60: 0.2, someAvg300: 0.1, someStallUs: 0, someTotalUs: 1000, fullAvg10: 0.1 },
    io: { someAvg10: 3.2, someAvg60: 2, someAvg300: 1, someStallUs: 10, someTotalUs: 20_000, fullAvg10: 1.5 },
  };
  targets.forEach((t, k) => {
    const wave = Math.sin(i / 6 + k);
    const base = t.role === 'protect' ? 600 + 90 * k : 250 + 20 * k;
    out[t.name] = {
      name: t.name,
      role: t.role as TargetSignals['role'],
      runqlat: runqlat(i, {
        count: 800 + 30 * k,
        p50: 30 + 8 * wave,
        p90: 150 + 40 * wave,
        p99: base * (1 + 0.4 * wave),
        mean: 60,
        p99Ewma: base,
        waitUs: 50_000,
        oncpuUs: 300_000 + 20_000 * k + 50_000 * wave,
        switchesOut: 1200,
        involuntary: 200 + k,
        migrations: 10,
      }),
      cgstat: {
        version: 1,
        cpuCores: 0.3 + 0.05 * k + 0.1 * wave,
        cpuUsageUs: 300_000,
        nrPeriods: 0,
        nrThrottled: 0,
        throttledUs: 0,
        throttledRatio: 0,
        unavailable: [`memory: the target has no cgroup in the memory hierarchy (/sys/fs/cgroup/memory/${t.name} does not exist)`],
      },
      psi: { host: psi, cgroupUnavailable: 'cgroup v1 keeps no per-cgroup pressure (only the v2 hierarchy does); host values only' },
      placement: placementStats({ threads: 4 + k, runnable: 1 + (k % 3), cpusUsed: 2, pileup: 1, pileupCpu: k % 2, allowedCpus: 2, idleCpus: 0 }),
    };
  });
  return { time, windowMs, targets: out, host: { psi } };
}

/** One server-sent event as the server writes it: `event: NAME`, `data: TEXT`, a blank line. */
export interface StreamedEvent {
  event: string;
  data: string;
}

/**
 * Opens an event stream (`/api/stream...`) as the dashboard does. Every event received is kept in `events`, in order;
 * `next(name)` resolves with the data of the next event of that name to arrive.
 */
export function openEventStream(url: string): Promise<{ events: StreamedEvent[]; next(event: string): Promise<string>; close(): void }> {
  return new Promise((resolve, reject) => {
    const events: StreamedEvent[] = [];
    const waiters: { event: string; resolve: (d: string) => void }[] = [];
    const req = request(url, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`stream status ${res.statusCode}`));
        res.resume();
        return;
      }
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i: number;
        while ((i = buf.indexOf('\n\n')) !== -1) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!event || data === undefined) continue;
          events.push({ event, data });
          const w = waiters.findIndex((x) => x.event === event);
          if (w !== -1) waiters.splice(w, 1)[0]?.resolve(data);
        }
      });
      resolve({
        events,
        next: (event) => new Promise((r) => waiters.push({ event, resolve: r })),
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    req.end();
  });
}
