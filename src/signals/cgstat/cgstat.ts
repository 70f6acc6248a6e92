/**
 * Cgroup statistics per cgroup target: CPU time used, CPU bandwidth throttling and memory, from the counters the
 * kernel already keeps in each cgroup's interface files. Each tick reads them and turns the cumulative counters into
 * the window's values (CPU cores used, throttled time and the fraction of enforcement periods that throttled).
 *
 * cgroup v2 has everything in the target's own directory (cpu.stat, memory.current, memory.max, memory.stat). On
 * v1 each controller is its own hierarchy: the target names its cpu cgroup, and the same relative path is looked up
 * under the cpuacct mount (cpuacct.usage) and the memory mount (memory.usage_in_bytes, memory.limit_in_bytes,
 * memory.stat); where the cgroup has no twin there, that part is reported as unavailable, saying which directory is
 * missing and how to fix it (re-checked as membership is refreshed).
 *
 * Every file is opened once and read with `pread` from offset 0 each tick (cgroup/kept-file.ts): one descriptor per
 * file per target, closed when the target goes, so a tick costs no opens.
 */
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { errnoCode } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Signal, SignalContext, Target, TargetSignals } from '../../core/types.js';
import { controllerRootOf, detectLayout, type CgroupLayout } from '../../cgroup/layout.js';
import { KeptFiles } from '../../cgroup/kept-file.js';

/** One tick of one target. Counts and times are over the window; memory is as read at the end of it. */
export interface CgstatWindow {
  version: 1 | 2;
  /** CPU time the cgroup's tasks used in the window, µs. */
  cpuUsageUs: number;
  /** The same per second of window: how many CPUs' worth the cgroup used. */
  cpuCores: number;
  /** CFS bandwidth enforcement periods that elapsed with runnable tasks (0 without a quota). */
  nrPeriods: number;
  /** Of which the cgroup ran out of quota. */
  nrThrottled: number;
  /** Time the cgroup's run queues spent throttled, µs (summed over CPUs, so it can exceed the window). */
  throttledUs: number;
  /** nrThrottled / nrPeriods; 0 without periods. */
  throttledRatio: number;
  /** Memory charged to the cgroup (and its descendants), bytes. */
  memoryBytes?: number;
  /** Its hard limit, bytes; absent when unlimited. */
  memoryLimitBytes?: number;
  /** Anonymous memory (v1: total_rss), bytes. */
  anonBytes?: number;
  /** Page cache (v1: total_cache), bytes. */
  fileBytes?: number;
  /** Parts that could not be read, each with the reason. */
  unavailable?: string[];
}

/** A flat-keyed interface file ("key value" per line: cpu.stat, memory.stat) as numbers; values past 2^53 round. */
export function parseFlatKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp <= 0) continue;
    const v = Number(line.slice(sp + 1).trim());
    if (Number.isFinite(v)) out.set(line.slice(0, sp), v);
  }
  return out;
}

/**
 * A memory limit as the kernel prints it, in bytes; undefined when unlimited. v2 writes "max"; v1 prints
 * PAGE_COUNTER_MAX pages (9223372036854771712 with 4 KiB pages), so anything from 2^62 up means no limit.
 */
export function parseMemoryLimit(text: string): number | undefined {
  const s = text.trim();
  if (s === 'max') return undefined;
  const n = Number(s);
  if (!Number.isFinite(n) || n >= 2 ** 62) return undefined;
  return n;
}

/** Cumulative counters of one target as last read, µs; undefined where unreadable. */
interface Counters {
  at: number;
  usageUs?: number;
  periods?: number;
  throttled?: number;
  throttledUs?: number;
}

interface Reading {
  counters: Counters;
  memory: Pick<CgstatWindow, 'memoryBytes' | 'memoryLimitBytes' | 'anonBytes' | 'fileBytes'>;
  unavailable: string[];
}

/** Where a target's files are. */
interface Files {
  version: 1 | 2;
  cpu: string;
  cpuacct?: string;
  memory?: string;
  /** Why a v1 twin is missing. */
  missing: string[];
}

function reason(e: unknown): string {
  const code = errnoCode(e);
  return code === 'ENOENT' || code === 'ENODEV' ? 'no such file (the cgroup is gone, or the controller is not enabled there)' : (code ?? String(e));
}

export interface CgstatOptions {
  /** Injected for tests; probed when absent. */
  layout?: CgroupLayout;
}

export class CgstatSignal implements Signal {
  readonly name = 'cgstat';
  private log?: Logger;
  private layout?: CgroupLayout;
  private targets: Target[] = [];
  private files = new Map<string, Files>();
  private readonly last = new Map<string, Counters>();
  private readonly kept = new KeptFiles();

  constructor(private readonly opts: CgstatOptions = {}) {}

  start(ctx: SignalContext): void {
    this.log = ctx.log.child({ signal: this.name });
    this.layout = this.opts.layout ?? (ctx.targets.some((t) => t.scope.kind === 'cgroup' && t.scope.version === 1) ? detectLayout() : undefined);
    this.updateTargets(ctx.targets);
    const now = Date.now();
    for (const t of this.targets) {
      const f = this.files.get(t.name);
      if (f) this.last.set(t.name, this.read(f, now).counters);
    }
    this.log.info({ targets: this.files.size }, 'cgstat started');
  }

  updateTargets(targets: Target[]): void {
    this.targets = targets;
    const files = new Map<string, Files>();
    for (const t of targets) {
      if (t.scope.kind !== 'cgroup') continue;
      const f = this.filesOf(t.scope.path, t.scope.version);
      // Told once, and again only when it changes (a twin created or removed later is picked up here).
      const was = this.files.get(t.name)?.missing.join('\n');
      if (f.missing.length > 0 && f.missing.join('\n') !== was) {
        this.log?.warn({ target: t.name, unavailable: f.missing }, 'cgstat cannot read part of this target');
      }
      files.set(t.name, f);
    }
    this.files = files;
    // Targets come and go (a cgroup_pattern makes one of every cgroup that appears): keep counters only for the live ones.
    for (const name of this.last.keys()) if (!files.has(name)) this.last.delete(name);
    const dirs = new Set<string>();
    for (const f of files.values()) for (const d of [f.cpu, f.cpuacct, f.memory]) if (d !== undefined) dirs.add(d);
    this.kept.retain((p) => dirs.has(dirname(p)));
  }

  /** Descriptors held open now (one per file per live target). */
  get openFiles(): number {
    return this.kept.size;
  }

  private filesOf(dir: string, version: 1 | 2): Files {
    if (version === 2) return { version, cpu: dir, cpuacct: dir, memory: dir, missing: [] };
    const missing: string[] = [];
    const layout = (this.layout ??= detectLayout());
    let rel = '';
    try {
      rel = relative(controllerRootOf(dir, layout), dir);
    } catch (e) {
      missing.push(`cpuacct, memory: ${e instanceof Error ? e.message : String(e)}`);
      return { version, cpu: dir, missing };
    }
    const twin = (controller: string): string | undefined => {
      const c = layout.controllers[controller];
      if (c === undefined || c.version !== 1) {
        missing.push(`${controller}: this host mounts no v1 ${controller} hierarchy`);
        return undefined;
      }
      const other = join(c.mount, rel);
      // Each v1 hierarchy has its own tree: a cgroup made only under the cpu mount has no twin here, and its tasks
      // sit in some other cgroup of this hierarchy whose counters are not the target's. Say so, rather than report
      // the file read failing every tick.
      if (!existsSync(other)) {
        missing.push(
          `${controller}: the target has no cgroup in the ${controller} hierarchy (${other} does not exist) — ` +
            `fix: create it and move the target's tasks into it too, or mount ${controller} together with cpu`,
        );
        return undefined;
      }
      return other;
    };
    return { version, cpu: dir, cpuacct: twin('cpuacct'), memory: twin('memory'), missing };
  }

  private read(f: Files, now: number): Reading {
    const unavailable = [...f.missing];
    const counters: Counters = { at: now };
    const memory: Reading['memory'] = {};
    const file = (p: string, what: string): string | undefined => {
      try {
        return this.kept.read(p);
      } catch (e) {
        unavailable.push(`${what}: ${p}: ${reason(e)}`);
        return undefined;
      }
    };
    if (f.version === 2) {
      const text = file(join(f.cpu, 'cpu.stat'), 'cpu');
      if (text !== undefined) {
        const s = parseFlatKeyed(text);
        counters.usageUs = s.get('usage_usec');
        // Only with the cpu controller enabled for this cgroup; without it there is no bandwidth control to report.
        counters.periods = s.get('nr_periods');
        counters.throttled = s.get('nr_throttled');
        counters.throttledUs = s.get('throttled_usec');
      }
    } else {
      if (f.cpuacct !== undefined) {
        const usage = file(join(f.cpuacct, 'cpuacct.usage'), 'cpuacct');
        if (usage !== undefined) counters.usageUs = Number(usage.trim()) / 1000;
      }
      const text = file(join(f.cpu, 'cpu.stat'), 'cpu');
      if (text !== undefined) {
        const s = parseFlatKeyed(text);
        counters.periods = s.get('nr_periods');
        counters.throttled = s.get('nr_throttled');
        const ns = s.get('throttled_time');
        if (ns !== undefined) counters.throttledUs = ns / 1000;
      }
    }
    if (f.memory !== undefined) {
      const v2 = f.version === 2;
      const cur = file(join(f.memory, v2 ? 'memory.current' : 'memory.usage_in_bytes'), 'memory');
      if (cur !== undefined) {
        memory.memoryBytes = Number(cur.trim());
        const lim = file(join(f.memory, v2 ? 'memory.max' : 'memory.limit_in_bytes'), 'memory');
        const limit = lim === undefined ? undefined : parseMemoryLimit(lim);
        if (limit !== undefined) memory.memoryLimitBytes = limit;
        const stat = file(join(f.memory, 'memory.stat'), 'memory');
        if (stat !== undefined) {
          const s = parseFlatKeyed(stat);
          // v1's plain rss/cache cover this cgroup alone; total_* include descendants, as usage_in_bytes does.
          const anon = v2 ? s.get('anon') : s.get('total_rss');
          const fileB = v2 ? s.get('file') : s.get('total_cache');
          if (anon !== undefined) memory.anonBytes = anon;
          if (fileB !== undefined) memory.fileBytes = fileB;
        }
      }
    }
    return { counters, memory, unavailable };
  }

  collect(now: number, out: Record<string, TargetSignals>): void {
    for (const t of this.targets) {
      const f = this.files.get(t.name);
      if (!f) continue;
      const r = this.read(f, now);
      const prev = this.last.get(t.name);
      this.last.set(t.name, r.counters);
      const dtS = prev ? (now - prev.at) / 1000 : 0;
      const delta = (k: keyof Omit<Counters, 'at'>): number => {
        const a = r.counters[k];
        const b = prev?.[k];
        // A counter that went backwards belongs to a recreated cgroup: the window starts over.
        return a === undefined || b === undefined ? 0 : Math.max(0, a - b);
      };
      const cpuUsageUs = delta('usageUs');
      const nrPeriods = delta('periods');
      const nrThrottled = delta('throttled');
      const w: CgstatWindow = {
        version: f.version,
        cpuUsageUs,
        cpuCores: dtS > 0 ? cpuUsageUs / 1e6 / dtS : 0,
        nrPeriods,
        nrThrottled,
        throttledUs: delta('throttledUs'),
        throttledRatio: nrPeriods > 0 ? Math.min(1, nrThrottled / nrPeriods) : 0,
        ...r.memory,
      };
      if (r.unavailable.length > 0) w.unavailable = r.unavailable;
      const sig = (out[t.name] ??= { name: t.name, role: t.role });
      sig.cgstat = w;
    }
  }

  close(): void {
    this.last.clear();
    this.kept.close();
  }
}

// This signal's part of each tick snapshot, declared beside the signal so the snapshot's type grows with the list of
// signals and readers need no casts.
declare module '../../core/types.js' {
  interface TargetSignals {
    cgstat?: CgstatWindow;
  }
}
