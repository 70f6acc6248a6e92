/**
 * Pressure stall information: how much of the time tasks waited for CPU, memory or IO — host-wide
 * (/proc/pressure/*) and, for cgroup v2 targets, per cgroup (<cgroup>/<resource>.pressure). Each tick reads the
 * files, keeps the kernel's running averages and turns the cumulative stall totals into µs stalled per second of
 * the tick. Optional PSI triggers (psi-trigger.ts) report a spike as it happens, between ticks.
 *
 * Nothing here is eBPF: the kernel already aggregates pressure, and reading six small files a tick is cheaper than
 * any hook could be.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { channels, publish } from '../../core/events.js';
import { TunerError, errnoCode } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Signal, SignalContext, Target, TargetSignals } from '../../core/types.js';
import type { PsiTriggerEvent, PsiTriggerLost, PsiTriggerSpec, PsiTriggers as PsiTriggersT } from './psi-trigger.js';

export const PSI_RESOURCES = ['cpu', 'memory', 'io'] as const;
export type PsiResourceName = (typeof PSI_RESOURCES)[number];

/** One line of a pressure file: averages in percent of wall time, total in µs since boot (or cgroup creation). */
export interface PsiLine {
  avg10: number;
  avg60: number;
  avg300: number;
  totalUs: number;
}

/** A parsed pressure file. `full` is absent where the kernel prints no such line (cpu before v5.13). */
export interface Pressure {
  some?: PsiLine;
  full?: PsiLine;
}

/**
 * Parses the content of a pressure file. Lines are "<some|full> avg10=<pct> avg60=<pct> avg300=<pct> total=<µs>";
 * keys this code does not know are ignored, a line of another kind is skipped, and a known line with a missing or
 * non-numeric field is an error (that is a format change, not something to guess through).
 */
export function parsePressure(text: string, source = 'pressure file'): Pressure {
  const out: Pressure = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const [kind, ...fields] = line.split(/\s+/);
    if (kind !== 'some' && kind !== 'full') continue;
    const kv = new Map<string, string>();
    for (const f of fields) {
      const eq = f.indexOf('=');
      if (eq > 0) kv.set(f.slice(0, eq), f.slice(eq + 1));
    }
    const num = (k: string): number => {
      const v = kv.get(k);
      const n = v === undefined || v === '' ? NaN : Number(v);
      if (!Number.isFinite(n) || n < 0) {
        throw new TunerError('INTERNAL', `parse ${source}: "${kind}" line has ${v === undefined ? `no ${k}` : `${k}=${v}`} (line: ${JSON.stringify(line)})`);
      }
      return n;
    };
    out[kind] = { avg10: num('avg10'), avg60: num('avg60'), avg300: num('avg300'), totalUs: num('total') };
  }
  if (!out.some && !out.full) throw new TunerError('INTERNAL', `parse ${source}: no "some" or "full" line in ${JSON.stringify(text.slice(0, 80))}`);
  return out;
}

/** One resource over one tick. Averages are the kernel's (percent); stall rates are µs stalled per second of the tick. */
export interface PsiResource {
  someAvg10: number;
  someAvg60: number;
  someAvg300: number;
  someStallUs: number;
  someTotalUs: number;
  fullAvg10?: number;
  fullAvg60?: number;
  fullAvg300?: number;
  fullStallUs?: number;
  fullTotalUs?: number;
}

export type PsiResources = Partial<Record<PsiResourceName, PsiResource>>;

export interface PsiHostWindow extends PsiResources {
  /** Why there are no values, when PSI cannot be read on this host. */
  unavailable?: string;
  /** Trigger events since the previous tick (at most the last 16). */
  triggers?: PsiTriggerEvent[];
}

/**
 * Per target. The target's own pressure is both `cgroup` and, for readers that look for `psi.<resource>` on a target
 * as on the host, the top-level resources; a target without its own pressure has neither (host values are not
 * copied there, so nobody mistakes them for the target's).
 */
export interface PsiTargetWindow extends PsiResources {
  host: PsiResources;
  /** The target's own cgroup, for cgroup v2 targets. */
  cgroup?: PsiResources;
  /** Why `cgroup` is absent: cgroup v1 and pid targets have no per-cgroup pressure. */
  cgroupUnavailable?: string;
}

export interface PsiOptions {
  /**
   * Triggers armed at start; none by default. One with a `target` watches that cgroup v2 target's own
   * <resource>.pressure instead of the host's.
   */
  triggers?: readonly (PsiTriggerSpec & { target?: string })[];
  /** Where the host-wide files are; default /proc/pressure. */
  procDir?: string;
}

/** The previous reading of one file, to turn its totals into rates. */
interface Last {
  at: number;
  some?: number;
  full?: number;
}

const MAX_TRIGGER_EVENTS = 16;

const V1_NOTE = 'cgroup v1 keeps no per-cgroup pressure (only the v2 hierarchy does); host values only';
const PIDS_NOTE = 'a pid target has no cgroup of its own; host values only';

export class PsiSignal implements Signal {
  readonly name = 'psi';
  private log?: Logger;
  private targets: Target[] = [];
  private readonly last = new Map<string, Last>();
  private triggers?: PsiTriggersT;
  private pending: PsiTriggerEvent[] = [];
  private readonly loggedAt = new Map<number, number>();
  private readonly listeners = new Set<(ev: PsiTriggerEvent) => void>();
  private lastHost?: PsiHostWindow;
  private hostNote?: string;
  private readonly procDir: string;

  constructor(private readonly opts: PsiOptions = {}) {
    this.procDir = opts.procDir ?? '/proc/pressure';
  }

  async start(ctx: SignalContext): Promise<void> {
    this.log = ctx.log.child({ signal: this.name });
    this.targets = ctx.targets;
    this.hostNote = undefined;
    try {
      readFileSync(join(this.procDir, 'cpu'), 'utf8');
    } catch (e) {
      this.hostNote = `${join(this.procDir, 'cpu')}: ${errnoCode(e) ?? String(e)} — PSI is off on this kernel (CONFIG_PSI, or boot with psi=1)`;
      this.log.warn(this.hostNote);
    }
    if (this.opts.triggers && this.opts.triggers.length > 0) {
      const specs = this.opts.triggers.map(({ target, ...spec }): PsiTriggerSpec => {
        if (target === undefined) return spec;
        const t = ctx.targets.find((x) => x.name === target);
        if (t?.scope.kind !== 'cgroup' || t.scope.version !== 2) {
          throw new TunerError(
            'CONFIG_INVALID',
            `arm PSI trigger on target ${target}: ${t ? 'it is not a cgroup v2 target, and only cgroup v2 keeps pressure per cgroup' : 'no such target'} — fix: name a cgroup v2 target, or drop target for host-wide pressure`,
          );
        }
        return { ...spec, path: join(t.scope.path, `${spec.resource}.pressure`) };
      });
      // Loaded only when asked for: it starts a worker thread.
      const { PsiTriggers } = await import('./psi-trigger.js');
      this.triggers = PsiTriggers.start(specs);
      this.triggers.on('trigger', (ev) => this.deliver(ev));
      this.triggers.on('lost', (ev: PsiTriggerLost) => this.log?.warn({ trigger: ev }, 'PSI trigger will not fire again'));
    }
    // Baseline, so the first tick's rates cover only the first tick.
    this.sample(Date.now());
    this.log.info({ targets: ctx.targets.length, triggers: this.opts.triggers?.length ?? 0 }, 'psi started');
  }

  updateTargets(targets: Target[]): void {
    this.targets = targets;
    // A cgroup_pattern target makes a new target of every cgroup that appears: forget the files of those that went,
    // or the last readings would grow with every cgroup the agent has ever seen.
    const dirs = new Set(targets.flatMap((t) => (t.scope.kind === 'cgroup' ? [t.scope.path] : [])));
    for (const path of this.last.keys()) {
      if (dirname(path) !== this.procDir && !dirs.has(dirname(path))) this.last.delete(path);
    }
  }

  /** Calls `listener` on every trigger event, on the main thread, as soon as the kernel reports it. Returns an unsubscribe. */
  onWake(fn: (reason: string) => void): () => void {
    return this.onTrigger((ev) => fn(`psi trigger ${JSON.stringify(ev)}`));
  }

  onTrigger(listener: (ev: PsiTriggerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private deliver(ev: PsiTriggerEvent): void {
    // Logged once a minute per trigger at most: a trigger fires every window while the pressure lasts.
    const last = this.loggedAt.get(ev.index) ?? -Infinity;
    if (ev.time - last >= 60_000) {
      this.loggedAt.set(ev.index, ev.time);
      this.log?.info({ resource: ev.resource, kind: ev.kind, path: ev.path, stallUs: ev.stallUs, windowUs: ev.windowUs }, 'PSI trigger fired');
    }
    this.pending.push(ev);
    if (this.pending.length > MAX_TRIGGER_EVENTS) this.pending.shift();
    publish(channels.kernelEvent, () => ({ signal: this.name, event: 'trigger', ...ev }));
    for (const l of this.listeners) l(ev);
  }

  /** Reads one pressure file and turns it into a PsiResource, or undefined when it cannot be read. */
  private resource(path: string, now: number): PsiResource | undefined {
    let p: Pressure;
    try {
      p = parsePressure(readFileSync(path, 'utf8'), path);
    } catch {
      return undefined;
    }
    const prev = this.last.get(path);
    const dtS = prev ? (now - prev.at) / 1000 : 0;
    const rate = (total: number | undefined, before: number | undefined): number =>
      total === undefined || before === undefined || dtS <= 0 ? 0 : Math.max(0, total - before) / dtS;
    this.last.set(path, { at: now, some: p.some?.totalUs, full: p.full?.totalUs });
    const r: PsiResource = {
      someAvg10: p.some?.avg10 ?? 0,
      someAvg60: p.some?.avg60 ?? 0,
      someAvg300: p.some?.avg300 ?? 0,
      someStallUs: rate(p.some?.totalUs, prev?.some),
      someTotalUs: p.some?.totalUs ?? 0,
    };
    if (p.full) {
      r.fullAvg10 = p.full.avg10;
      r.fullAvg60 = p.full.avg60;
      r.fullAvg300 = p.full.avg300;
      r.fullStallUs = rate(p.full.totalUs, prev?.full);
      r.fullTotalUs = p.full.totalUs;
    }
    return r;
  }

  private resources(pathOf: (res: PsiResourceName) => string, now: number): PsiResources {
    const out: PsiResources = {};
    for (const res of PSI_RESOURCES) {
      const r = this.resource(pathOf(res), now);
      if (r) out[res] = r;
    }
    return out;
  }

  private sample(now: number): { host: PsiResources; cgroups: Map<string, PsiResources> } {
    const host = this.hostNote ? {} : this.resources((res) => join(this.procDir, res), now);
    const cgroups = new Map<string, PsiResources>();
    for (const t of this.targets) {
      if (t.scope.kind === 'cgroup' && t.scope.version === 2) {
        const dir = t.scope.path;
        cgroups.set(t.name, this.resources((res) => join(dir, `${res}.pressure`), now));
      }
    }
    return { host, cgroups };
  }

  collect(now: number, out: Record<string, TargetSignals>): void {
    const { host, cgroups } = this.sample(now);
    for (const t of this.targets) {
      const sig = (out[t.name] ??= { name: t.name, role: t.role });
      const cg = cgroups.get(t.name);
      const w: PsiTargetWindow = { host, ...cg };
      if (cg) w.cgroup = cg;
      else w.cgroupUnavailable = t.scope.kind === 'pids' ? PIDS_NOTE : V1_NOTE;
      sig.psi = w;
    }
    const h: PsiHostWindow = { ...host };
    if (this.hostNote) h.unavailable = this.hostNote;
    if (this.pending.length > 0) {
      h.triggers = this.pending;
      this.pending = [];
    }
    this.lastHost = h;
  }

  hostWindow(): PsiHostWindow | undefined {
    return this.lastHost;
  }

  close(): void {
    void this.triggers?.close();
    this.triggers = undefined;
    this.listeners.clear();
  }
}

// This signal's part of each tick snapshot, declared beside the signal so the snapshot's type grows with the list of
// signals and readers need no casts.
declare module '../../core/types.js' {
  interface TargetSignals {
    psi?: PsiTargetWindow;
  }
  interface HostSignals {
    psi?: PsiHostWindow;
  }
}
