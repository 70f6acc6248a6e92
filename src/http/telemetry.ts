/**
 * What the HTTP server knows about the running agent, gathered from the event bus: the last tick snapshot and a
 * bounded history of them, recent decisions with per-kind counts, the agent's own overhead over time, and the
 * field catalogue. /metrics, the JSON API and the live stream all read from here; none of them subscribes itself.
 */
import { channels, DECISION_KINDS, isBusDecision, type BusDecision } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { TickSnapshot } from '../core/types.js';
import { SIGNAL_METRICS } from '../signals/index.js';
import type { CounterDecl, Labels, SnapshotView } from '../signals/metrics.js';
import { FieldCatalogue, isRecord, type FieldInfo } from './fields.js';
import { Ring } from './ring.js';
import type { AgentControl } from './types.js';

export interface OverheadSample {
  /** ms since the epoch. */
  time: number;
  /** Agent process CPU (user + system) as a percentage of one CPU, since the previous sample. */
  cpuPercent: number;
  rssBytes: number;
  /** Kernel time in the agent's BPF programs as a percentage of one CPU; null when the kernel reports no runs. */
  bpfCpuPercent: number | null;
  /** Mean ns per BPF program run since the previous sample; null when there were no runs. */
  bpfNsPerRun: number | null;
  bpfRunsPerSec: number;
  /** Cumulative runs of all programs; stays 0 while the kernel's BPF run statistics are off. */
  bpfRunsTotal: number;
  programs: { name: string; nsPerRun: number | null; runsPerSec: number }[];
}

export type StreamEvent = 'tick' | 'decision' | 'change' | 'fields' | 'overhead' | 'hold';
/** `json` builds the event's JSON text on first call (a tick's is megabytes at a thousand targets): call it only to send. */
export type StreamListener = (event: StreamEvent, json: () => string) => void;

export interface TelemetryOptions {
  control: AgentControl;
  log: Logger;
  /** Ticks kept for /api/signals. */
  history: number;
  /**
   * At most this many bytes of kept ticks (their JSON text, plus a fixed allowance per target for the parsed
   * summary): the oldest ticks go first, so many targets shorten the history instead of growing the heap.
   */
  historyBytes: number;
  /** Decisions kept for /api/decisions. */
  decisions: number;
  maxFields?: number;
}

const DELTA_COUNTERS = SIGNAL_METRICS.filter((m): m is CounterDecl => m.type === 'counter' && m.source === 'delta');

interface StoredDecision {
  json: string;
  time: number;
}

/**
 * One tick as kept for the API: each target's part as its own JSON text, so one target's history (the dashboard's
 * details view) is read without parsing every other target, and the overview's few numbers per target, so the
 * overview never parses snapshots at all. The whole snapshot's text is put back together only for /api/signals.
 */
export interface StoredTick {
  time: number;
  windowMs: number | undefined;
  targets: Map<string, string>;
  host: string | undefined;
  /** Per target: run-queue p99 in µs and the on-CPU share (0–1); null where the tick had none. */
  summary: Map<string, TickSummary>;
  /** What keeping this tick costs, as counted against `historyBytes`. */
  bytes: number;
}

export interface TickSummary {
  role: string | undefined;
  p99Us: number | null;
  oncpuRatio: number | null;
}

/** The overview's numbers of one target's signals; null where the signal reported nothing. */
export function summarise(sig: unknown): TickSummary {
  const r = isRecord(sig) ? sig : {};
  const runq = isRecord(r.runqlat) ? r.runqlat : undefined;
  const oncpu = isRecord(r.oncpu) ? r.oncpu : undefined;
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const ratio = num(runq?.oncpuRatio) ?? num(oncpu?.ratio);
  return {
    role: typeof r.role === 'string' ? r.role : undefined,
    p99Us: num(runq?.p99),
    oncpuRatio: ratio,
  };
}

/** Compact view of a decision, for the overview's "last decision" of each target. */
export interface DecisionBrief {
  id: string;
  time: number;
  kind: string;
  action: string;
  target: string;
  reason: string;
}

/** Distinct (kind, action) pairs counted; past this, further pairs fold into action="other". */
const MAX_DECISION_SERIES = 256;
/** Overhead is sampled on ticks but no more often than this, so a fast tick does not turn it into noise. */
const MIN_OVERHEAD_INTERVAL_MS = 900;

export class Telemetry {
  readonly startedAt = Date.now();
  readonly fields: FieldCatalogue;
  ticks = 0;
  windowMs: number | undefined;
  lastTickTime: number | undefined;
  lifecycle = 'unknown';
  /** The last snapshot, parsed, for the metrics read at scrape time. */
  lastView: SnapshotView | undefined;
  readonly decisionCounts = new Map<string, { kind: string; action: string; n: number }>();
  droppedEvents = 0;
  /** Sums of the per-tick increases of each `delta` counter, by metric name and then by label set. */
  private readonly counters = new Map<string, Map<string, [Labels, number]>>();

  private readonly tickRing: Ring<StoredTick>;
  private readonly historyBytes: number;
  /** Sum of `bytes` over the kept ticks. */
  private keptBytes = 0;
  /** The newest decision about each target (by target name), for the overview. */
  readonly lastDecisionByTarget = new Map<string, DecisionBrief>();
  decisionsSeen = 0;
  private readonly decisionRing: Ring<StoredDecision>;
  readonly overheadRing: Ring<OverheadSample>;
  private readonly listeners = new Set<StreamListener>();
  private readonly control: AgentControl;
  private readonly log: Logger;
  private prevCpu: { at: number; cpu: NodeJS.CpuUsage; progs: Map<string, { t: number; n: number }> } | undefined;
  private closed = false;

  private readonly onTick = (msg: unknown): void => this.guard('tick', () => this.tick(msg));
  private readonly onDecision = (msg: unknown): void => this.guard('decision', () => this.decision(msg));
  private readonly onKnob = (msg: unknown): void => this.guard('knob', () => this.emit('change', stringify(msg)));
  private readonly onHold = (msg: unknown): void =>
    this.guard('hold', () => this.emit('hold', this.accept(msg, (m) => typeof m.kind === 'string' && isRecord(m.hold))));
  private readonly onLifecycle = (msg: unknown): void =>
    this.guard('lifecycle', () => {
      if (isRecord(msg) && typeof msg.state === 'string') this.lifecycle = msg.state.slice(0, 64);
    });

  constructor(opts: TelemetryOptions) {
    this.control = opts.control;
    this.log = opts.log;
    this.tickRing = new Ring(opts.history);
    this.historyBytes = opts.historyBytes;
    this.decisionRing = new Ring(opts.decisions);
    this.overheadRing = new Ring(opts.history);
    this.fields = new FieldCatalogue(opts.maxFields ?? 512);
    // Known label sets start at 0, so a rate over the first decision sees it rather than a series appearing at 1.
    let actions: readonly string[] = [];
    try {
      actions = opts.control.actions?.() ?? [];
    } catch (err) {
      this.log.debug({ err }, 'list actions: failed');
    }
    for (const kind of DECISION_KINDS) for (const action of actions) this.countDecision(kind, action, 0);
    channels.tick.subscribe(this.onTick);
    channels.decision.subscribe(this.onDecision);
    channels.knob.subscribe(this.onKnob);
    channels.hold.subscribe(this.onHold);
    channels.lifecycle.subscribe(this.onLifecycle);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    channels.tick.unsubscribe(this.onTick);
    channels.decision.unsubscribe(this.onDecision);
    channels.knob.unsubscribe(this.onKnob);
    channels.hold.unsubscribe(this.onHold);
    channels.lifecycle.unsubscribe(this.onLifecycle);
    this.listeners.clear();
  }

  addListener(fn: StreamListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** JSON text of the last snapshot, or undefined before the first tick. */
  lastSnapshotJson(): string | undefined {
    const t = this.tickRing.last();
    return t === undefined ? undefined : snapshotJson(t);
  }

  /** JSON text of the kept snapshots, oldest first. */
  historyJson(): string[] {
    return this.tickRing.toArray().map(snapshotJson);
  }

  /** The kept ticks, oldest first. */
  ticksKept(): StoredTick[] {
    return this.tickRing.toArray();
  }

  lastTick(): StoredTick | undefined {
    return this.tickRing.last();
  }

  /** Ticks the history holds when full: the ring's capacity, or what fits the byte budget once that binds. */
  get historyCapacity(): number {
    const newest = this.tickRing.last();
    const full = newest !== undefined && this.keptBytes + newest.bytes > this.historyBytes;
    return full ? this.tickRing.size : this.tickRing.capacity;
  }

  /** The kept decision with this id, parsed, or undefined. */
  findDecision(id: string): BusDecision | undefined {
    for (const d of this.decisionRing.newest(this.decisionRing.size)) {
      const rec: unknown = JSON.parse(d.json);
      if (isBusDecision(rec) && rec.id === id) return rec;
    }
    return undefined;
  }

  /** Kept decisions that refer to `id` (`ref`), oldest first. */
  relatedDecisions(id: string): BusDecision[] {
    return this.decisionRing
      .toArray()
      .map((d): unknown => JSON.parse(d.json))
      .filter((r): r is BusDecision => isBusDecision(r) && r.ref === id);
  }

  /** JSON text of up to `limit` decisions, newest first. */
  decisionsJson(limit: number): string[] {
    return this.decisionRing.newest(limit).map((d) => d.json);
  }

  fieldList(): FieldInfo[] {
    return this.fields.list();
  }

  // A subscriber that throws would surface as an uncaught exception in the publisher's tick; contain it here.
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.droppedEvents++;
      this.log.warn({ err, channel: what }, 'drop bus event: handler failed');
    }
  }

  private emit(event: StreamEvent, json: string | undefined | (() => string)): void {
    if (json === undefined || this.listeners.size === 0) return;
    const make = typeof json === 'string' ? () => json : json;
    let text: string | undefined;
    const once = (): string => (text ??= make());
    for (const fn of this.listeners) fn(event, once);
  }

  /** JSON text of a bus message of the expected shape; undefined, and counted as dropped, for anything else. */
  private accept(msg: unknown, expected: (m: Record<string, unknown>) => boolean): string | undefined {
    const json = isRecord(msg) && expected(msg) ? stringify(msg) : undefined;
    if (json === undefined) this.droppedEvents++;
    return json;
  }

  /**
   * What is kept of a tick is each target's JSON text, made once here: the agent publishes a new snapshot object every
   * tick and never changes one it published, so the object itself serves the metrics until the next tick, and the
   * whole snapshot's text is put together only when a client asks for it.
   */
  private tick(msg: unknown): void {
    if (!isTick(msg)) {
      this.droppedEvents++;
      return;
    }
    const stored = storeTick(msg);
    this.ticks++;
    this.lastTickTime = stored.time;
    if (stored.windowMs !== undefined) this.windowMs = stored.windowMs;
    this.keep(stored);
    const before = this.fields.version;
    this.registerFields(msg);
    this.lastView = msg;
    this.addCounters(this.lastView);
    if (this.fields.version !== before) this.emit('fields', JSON.stringify(this.fields.list()));
    this.emit('tick', () => snapshotJson(stored));
    const o = this.sampleOverhead(stored.time);
    if (o) this.emit('overhead', JSON.stringify(o));
  }

  /**
   * New fields (a signal that starts reporting one) are looked for in every target on the first tick, then in a tenth
   * of them each tick in turn, so a new field is listed within ten ticks and a tick does not walk every field of a
   * thousand targets; the host's every tick.
   */
  private registerFields(s: TickSnapshot): void {
    const all = this.ticks <= 1;
    const signals = Object.values(s.targets).filter((_t, i) => all || (i + this.ticks) % FIELD_SCAN_TICKS === 0);
    this.fields.register(signals, s.host);
  }

  /** Adds a tick to the history, dropping the oldest past either bound; the newest is always kept. */
  private keep(tick: StoredTick): void {
    if (this.tickRing.size === this.tickRing.capacity) this.keptBytes -= this.tickRing.first()!.bytes;
    this.tickRing.push(tick);
    this.keptBytes += tick.bytes;
    while (this.keptBytes > this.historyBytes && this.tickRing.size > 1) this.keptBytes -= this.tickRing.shift()!.bytes;
  }

  /** Bytes the kept ticks count against the budget. */
  get historyBytesKept(): number {
    return this.keptBytes;
  }

  /** Ticks kept now: fewer than the capacity while the agent is young, or when the byte budget binds. */
  get historySize(): number {
    return this.tickRing.size;
  }

  private decision(msg: unknown): void {
    const json = this.accept(msg, isBusDecision);
    if (json === undefined || !isBusDecision(msg)) return;
    const d = msg;
    const time = d.time;
    this.decisionRing.push({ json, time });
    this.decisionsSeen++;
    const prev = this.lastDecisionByTarget.get(d.target);
    if (!prev || prev.time <= time) {
      this.lastDecisionByTarget.set(d.target, {
        id: d.id.slice(0, 128),
        time,
        kind: d.kind,
        action: d.action,
        target: d.target,
        reason: d.reason.slice(0, 300),
      });
    }
    this.countDecision(d.kind, d.action);
    this.emit('decision', json);
  }

  private addCounters(view: SnapshotView): void {
    for (const m of DELTA_COUNTERS) {
      let series = this.counters.get(m.name);
      if (!series) this.counters.set(m.name, (series = new Map()));
      for (const [labels, v] of m.read(view)) {
        // A negative or missing increase is a counter the kernel restarted or a field left out, not negative work.
        if (!(v >= 0 && Number.isFinite(v))) continue;
        const key = JSON.stringify(labels);
        const s = series.get(key);
        if (s) s[1] += v;
        else series.set(key, [labels, v]);
      }
    }
  }

  /** Samples of one `delta` counter: everything added up since start, by label set. */
  counterSamples(name: string): [Labels, number][] {
    return [...(this.counters.get(name)?.values() ?? [])];
  }

  private countDecision(kind: string, action: string, by = 1): void {
    let key = `${kind}\u0000${action}`;
    let entry = this.decisionCounts.get(key);
    if (!entry && this.decisionCounts.size >= MAX_DECISION_SERIES) {
      key = `${kind}\u0000other`;
      entry = this.decisionCounts.get(key);
      action = 'other';
    }
    if (entry) entry.n += by;
    else this.decisionCounts.set(key, { kind, action, n: by });
  }

  /** Samples the agent's own cost; returns the new sample, or undefined when it is too soon after the last one. */
  sampleOverhead(now: number): OverheadSample | undefined {
    const at = performance.now();
    if (this.prevCpu && at - this.prevCpu.at < MIN_OVERHEAD_INTERVAL_MS) return undefined;
    const cpu = process.cpuUsage();
    const progs = new Map<string, { t: number; n: number }>();
    try {
      for (const p of this.control.programStats()) progs.set(p.name, { t: p.runTimeNs, n: p.runCnt });
    } catch (err) {
      this.log.debug({ err }, 'read bpf program stats: failed');
    }
    const prev = this.prevCpu;
    this.prevCpu = { at, cpu, progs };
    if (!prev) return undefined;
    const wallUs = (at - prev.at) * 1000;
    const cpuUs = cpu.user + cpu.system - (prev.cpu.user + prev.cpu.system);
    let dt = 0;
    let dn = 0;
    let total = 0;
    const programs: OverheadSample['programs'] = [];
    for (const [name, cur] of progs) {
      const p = prev.progs.get(name);
      // A program that was reloaded restarts its counters; a negative delta is a restart, not negative work.
      const pt = p && cur.t >= p.t ? cur.t - p.t : cur.t;
      const pn = p && cur.n >= p.n ? cur.n - p.n : cur.n;
      dt += pt;
      dn += pn;
      total += cur.n;
      programs.push({ name, nsPerRun: pn > 0 ? pt / pn : null, runsPerSec: (pn * 1e6) / wallUs });
    }
    const sample: OverheadSample = {
      time: now,
      cpuPercent: (cpuUs / wallUs) * 100,
      rssBytes: process.memoryUsage.rss(),
      bpfCpuPercent: dn > 0 ? (dt / 1000 / wallUs) * 100 : null,
      bpfNsPerRun: dn > 0 ? dt / dn : null,
      bpfRunsPerSec: (dn * 1e6) / wallUs,
      bpfRunsTotal: total,
      programs,
    };
    this.overheadRing.push(sample);
    return sample;
  }
}

/** Ticks over which every target's fields are looked at once for new ones. */
const FIELD_SCAN_TICKS = 10;

/** What a kept target costs beyond its JSON text: its map entries, its summary object and the strings' headers. */
export const TARGET_OVERHEAD_BYTES = 160;

/** A snapshot as the agent publishes it; a recording of another version may hold anything under `targets`. */
function isTick(m: unknown): m is TickSnapshot {
  return isRecord(m) && typeof m.time === 'number' && isRecord(m.targets);
}

/**
 * JSON text with every character beyond Latin-1 escaped (`\u2014`): V8 keeps such a string at one byte per
 * character instead of two, which halves what a kept tick costs (reasons such as "cpu.pressure: not on cgroup v1 —
 * …" would otherwise widen a target's whole text).
 */
function latin1Json(v: unknown): string {
  // Without a replacer first (calling one per key is most of the cost); a bigint makes that throw, and then stringify
  // writes it. A cycle throws, and the tick is counted as dropped.
  let json: string | undefined;
  try {
    json = JSON.stringify(v);
  } catch {
    json = stringify(v);
  }
  if (json === undefined) throw new TypeError('a value that cannot be written as JSON (a cycle)');
  return json.replace(/[\u0100-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function storeTick(copy: TickSnapshot): StoredTick {
  const targets = new Map<string, string>();
  const summary = new Map<string, TickSummary>();
  let bytes = 0;
  for (const [name, sig] of Object.entries(copy.targets)) {
    const json = latin1Json(sig);
    targets.set(name, json);
    summary.set(name, summarise(sig));
    bytes += json.length + name.length + TARGET_OVERHEAD_BYTES;
  }
  const host = copy.host === undefined ? undefined : latin1Json(copy.host);
  return {
    time: copy.time,
    windowMs: typeof copy.windowMs === 'number' ? copy.windowMs : undefined,
    targets,
    host,
    summary,
    bytes: bytes + (host?.length ?? 0),
  };
}

/** The snapshot's JSON text again, from its kept parts. */
export function snapshotJson(t: StoredTick): string {
  const targets = [...t.targets].map(([k, j]) => `${JSON.stringify(k)}:${j}`).join(',');
  return (
    `{"time":${t.time}${t.windowMs !== undefined ? `,"windowMs":${t.windowMs}` : ''},"targets":{${targets}}` +
    `${t.host !== undefined ? `,"host":${t.host}` : ''}}`
  );
}

/** JSON text of a bus payload; bigints (cgroup ids) become numbers or strings, a cycle makes it undefined. */
export function stringify(v: unknown): string | undefined {
  try {
    return JSON.stringify(v, (_k, x: unknown) =>
      typeof x === 'bigint' ? (x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x.toString()) : x,
    );
  } catch {
    return undefined;
  }
}
