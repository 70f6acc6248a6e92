/**
 * The dashboard's first screen as data: one compact row per target (role, run-queue p99 now and as a sparkline over
 * the kept history, on-CPU share, the knobs the agent changed, its last decision) and the host's pressure once.
 * Built from the few numbers Telemetry keeps per tick, so its size grows with targets × history by a handful of bytes
 * per point, never with the size of a snapshot. /api/overview serves it; /api/stream?view=overview sends one
 * `overview` delta per tick.
 */
import type { Hold } from '../engine/holds.js';
import { isRecord } from './fields.js';
import type { DecisionBrief, StoredTick, Telemetry } from './telemetry.js';
import type { AgentControl, KnobChange } from './types.js';

export interface OverviewKnob {
  knobId: string;
  action: string;
  path: string;
  original: string;
  value: string;
}

export interface OverviewRow {
  name: string;
  role: string;
  /** Run-queue p99 of the last tick, µs; null when the last tick had none. */
  p99Us: number | null;
  oncpuRatio: number | null;
  /** p99 in µs for each kept tick (aligned with `spark` of the overview), null where there was none. */
  p99SparkUs: (number | null)[];
  /** Why there is no p99, when the last tick carried none for this target. */
  gap?: string;
  knobs: OverviewKnob[];
  /** Changes on this target kept in effect on purpose, with why and since when. */
  holds: Hold[];
  lastDecision: DecisionBrief | null;
}

export interface HostPressure {
  /** Host PSI `some` avg10 as 0–1 ratios, by resource; absent when not reported. */
  some: Partial<Record<'cpu' | 'memory' | 'io', number>>;
  full: Partial<Record<'cpu' | 'memory' | 'io', number>>;
  unavailable?: string;
}

export interface Overview {
  time: number | null;
  windowMs: number | null;
  /** Ticks the server keeps (the `history` setting); sparklines hold at most this many points. */
  history: number;
  /** First and last tick time of the sparklines, ms since the epoch, and their point count. */
  spark: { from: number | null; to: number | null; points: number };
  host: HostPressure | null;
  targets: OverviewRow[];
  decisions: number;
  changesActive: number;
}

export interface OverviewDelta {
  time: number;
  windowMs: number | null;
  host: HostPressure | null;
  targets: Pick<OverviewRow, 'name' | 'role' | 'p99Us' | 'oncpuRatio' | 'gap'>[];
}

/** Three significant digits: a sparkline needs no more, and it keeps the payload small. */
export function round3(v: number | null): number | null {
  if (v === null || !Number.isFinite(v)) return null;
  return v === 0 ? 0 : Number(v.toPrecision(3));
}

const RESOURCES = ['cpu', 'memory', 'io'] as const;

export function hostPressure(hostJson: string | undefined): HostPressure | null {
  if (hostJson === undefined) return null;
  const host = JSON.parse(hostJson) as unknown;
  if (!isRecord(host) || !isRecord(host.psi)) return null;
  const psi = host.psi;
  const out: HostPressure = { some: {}, full: {} };
  for (const r of RESOURCES) {
    const res = psi[r];
    if (!isRecord(res)) continue;
    if (typeof res.someAvg10 === 'number') out.some[r] = round3(res.someAvg10 / 100) ?? 0;
    if (typeof res.fullAvg10 === 'number') out.full[r] = round3(res.fullAvg10 / 100) ?? 0;
  }
  if (typeof psi.unavailable === 'string') out.unavailable = psi.unavailable;
  return out;
}

/** Why a target has no run-queue figure in this tick. */
function gapOf(tick: StoredTick | undefined, name: string): string | undefined {
  if (!tick) return 'no tick yet';
  if (!tick.targets.has(name)) return 'not in the last tick: the target has no processes or cgroup right now';
  const s = tick.summary.get(name);
  if (s && s.p99Us === null) return 'the run-queue signal reported nothing for this target (runqlat off, or no wakeups)';
  return undefined;
}

function targetNames(ticks: readonly StoredTick[], control: AgentControl): { name: string; role: string }[] {
  const out = new Map<string, string>();
  let configured: { name: string; role: string }[] = [];
  try {
    configured = control.targets();
  } catch {
    // the agent is between configs; the ticks still name the targets
  }
  const last = ticks[ticks.length - 1];
  // Targets of the last tick first, in the agent's order (a pattern target's matches follow their line).
  if (last) for (const [name, s] of last.summary) out.set(name, s.role ?? '');
  for (const t of configured) if (!out.has(t.name) && ![...out.keys()].some((n) => n.startsWith(`${t.name}/`))) out.set(t.name, t.role);
  return [...out].map(([name, role]) => ({ name, role: role || configured.find((c) => c.name === name)?.role || '' }));
}

/** The agent's holds now; none from an agent that does not report holds. A failure to read them is an error, not none. */
export function holdsOf(control: AgentControl): Hold[] {
  return control.holds?.() ?? [];
}

export function buildOverview(telemetry: Telemetry, control: AgentControl): Overview {
  const ticks = telemetry.ticksKept();
  const last = ticks[ticks.length - 1];
  let changes: KnobChange[] = [];
  try {
    changes = control.changes();
  } catch {
    // an agent being replaced has no changes to show for a moment
  }
  const active = changes.filter((c) => c.state === 'active');
  const holds = holdsOf(control);
  const rows: OverviewRow[] = targetNames(ticks, control).map(({ name, role }) => {
    const s = last?.summary.get(name);
    const gap = gapOf(last, name);
    const row: OverviewRow = {
      name,
      role,
      p99Us: round3(s?.p99Us ?? null),
      oncpuRatio: round3(s?.oncpuRatio ?? null),
      p99SparkUs: ticks.map((t) => round3(t.summary.get(name)?.p99Us ?? null)),
      knobs: active
        .filter((c) => c.target === name)
        .map((c) => ({ knobId: c.knobId, action: c.action, path: c.path, original: c.original, value: c.value })),
      holds: holds.filter((h) => h.target === name),
      lastDecision: telemetry.lastDecisionByTarget.get(name) ?? null,
    };
    if (gap !== undefined) row.gap = gap;
    return row;
  });
  return {
    time: last?.time ?? null,
    windowMs: telemetry.windowMs ?? null,
    history: telemetry.historyCapacity,
    spark: { from: ticks[0]?.time ?? null, to: last?.time ?? null, points: ticks.length },
    host: hostPressure(last?.host),
    targets: rows,
    decisions: telemetry.decisionsSeen,
    changesActive: active.length,
  };
}

/** What changed with the newest tick, for the overview stream. */
export function overviewDelta(tick: StoredTick): OverviewDelta {
  return {
    time: tick.time,
    windowMs: tick.windowMs ?? null,
    host: hostPressure(tick.host),
    targets: [...tick.summary].map(([name, s]) => {
      const row: OverviewDelta['targets'][number] = {
        name,
        role: s.role ?? '',
        p99Us: round3(s.p99Us),
        oncpuRatio: round3(s.oncpuRatio),
      };
      const gap = gapOf(tick, name);
      if (gap !== undefined) row.gap = gap;
      return row;
    }),
  };
}
