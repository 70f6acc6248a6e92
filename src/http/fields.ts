/**
 * Turns the free-form numeric fields of a TickSnapshot into a catalogue of unit-normalised fields for the dashboard
 * and /api/signals: each field's base unit and how the dashboard groups it on a chart. Prometheus names are not made
 * here: /metrics exports only what the signals declare (src/signals/<name>/metrics.ts), so a field rename never
 * renames a metric.
 *
 * Units come from the field name, by the convention the signals follow: a trailing word `Us`, `Ns`, `Ms`, `Sec`,
 * `Bytes`, `KiB`, `Ratio` or `Pct` names the unit; the keys of a LatencyStats (`p50`, `p99`, `mean`, `p99Ewma`, ...)
 * are microseconds. A field with neither is exported as a plain number. Arrays (histogram buckets) and strings are
 * not exported.
 */

export type Unit = 'seconds' | 'bytes' | 'ratio' | '';

export interface FieldInfo {
  scope: 'target' | 'host';
  /** Dotted path below the target (or below `host`), e.g. `runqlat.p99`. */
  key: string;
  path: string[];
  help: string;
  unit: Unit;
  /** Multiply a raw value by this to get the base unit. */
  scale: number;
  /** Fields drawn on one chart share a group: same parent object, same kind of quantity. */
  group: string;
  groupTitle: string;
  /** Short series name within the group. */
  label: string;
}

/** One numeric value of the last snapshot, already in base units. */
export interface FieldSample {
  field: FieldInfo;
  /** Target name; undefined for host fields. */
  target?: string;
  value: number;
}

const UNIT_WORDS: Record<string, { unit: Unit; scale: number; source: string }> = {
  us: { unit: 'seconds', scale: 1e-6, source: 'µs' },
  usec: { unit: 'seconds', scale: 1e-6, source: 'µs' },
  micros: { unit: 'seconds', scale: 1e-6, source: 'µs' },
  ns: { unit: 'seconds', scale: 1e-9, source: 'ns' },
  nsec: { unit: 'seconds', scale: 1e-9, source: 'ns' },
  nanos: { unit: 'seconds', scale: 1e-9, source: 'ns' },
  ms: { unit: 'seconds', scale: 1e-3, source: 'ms' },
  msec: { unit: 'seconds', scale: 1e-3, source: 'ms' },
  millis: { unit: 'seconds', scale: 1e-3, source: 'ms' },
  sec: { unit: 'seconds', scale: 1, source: 's' },
  secs: { unit: 'seconds', scale: 1, source: 's' },
  seconds: { unit: 'seconds', scale: 1, source: 's' },
  bytes: { unit: 'bytes', scale: 1, source: 'bytes' },
  kib: { unit: 'bytes', scale: 1024, source: 'KiB' },
  mib: { unit: 'bytes', scale: 1024 * 1024, source: 'MiB' },
  ratio: { unit: 'ratio', scale: 1, source: 'ratio' },
  fraction: { unit: 'ratio', scale: 1, source: 'ratio' },
  frac: { unit: 'ratio', scale: 1, source: 'ratio' },
  pct: { unit: 'ratio', scale: 0.01, source: '%' },
  percent: { unit: 'ratio', scale: 0.01, source: '%' },
};

const LATENCY_WORD = /^(p\d+|mean|avg|median|min|max|stddev)$/;

/** Signal keys of TargetSignals that are identity, not measurements. */
const IDENTITY_KEYS = new Set(['name', 'role']);
/** Keys holding totals since start (the Prometheus histograms), which a per-tick chart would only show climbing. */
const CUMULATIVE_KEYS = new Set(['hist']);

const MAX_DEPTH = 4;

function words(key: string): string[] {
  return key
    .replace(/([KMG]i)B(?![a-z])/g, '$1b')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 0);
}

interface Classified {
  stem: string[];
  unit: Unit;
  scale: number;
  source: string;
  latency: boolean;
}

function classify(leaf: string): Classified {
  const w = words(leaf);
  if (w.length === 1 && w[0] === 'count') return { stem: ['samples'], unit: '', scale: 1, source: '', latency: false };
  const last = w[w.length - 1];
  const u = last !== undefined ? UNIT_WORDS[last] : undefined;
  if (u) return { stem: w.slice(0, -1), unit: u.unit, scale: u.scale, source: u.source, latency: false };
  if (w[0] !== undefined && LATENCY_WORD.test(w[0]) && (w.length === 1 || (w.length === 2 && w[1] === 'ewma'))) {
    return { stem: w, unit: 'seconds', scale: 1e-6, source: 'µs', latency: true };
  }
  return { stem: w, unit: '', scale: 1, source: '', latency: false };
}

/** Builds the catalogue entry for one numeric field. Pure; exported for tests. */
export function describeField(scope: 'target' | 'host', path: string[]): FieldInfo {
  const leaf = path[path.length - 1] ?? '';
  const parents = path.slice(0, -1);
  const c = classify(leaf);
  const key = path.join('.');
  const kind = c.latency ? 'latency' : c.unit === 'seconds' ? 'time' : c.unit === '' ? 'count' : c.unit;
  const parentKey = parents.join('.') || (scope === 'host' ? 'host' : leaf);
  const where = scope === 'host' ? 'the host' : 'each target';
  const conv = c.scale !== 1 ? `, converted from ${c.source} to ${c.unit}` : '';
  return {
    scope,
    key,
    path,
    help: `Signal ${scope === 'host' ? 'host.' : ''}${key} of ${where} over the last tick window${conv}.`,
    unit: c.unit,
    scale: c.scale,
    group: `${scope}:${parentKey}:${kind}`,
    groupTitle: `${scope === 'host' && parents.length === 0 ? 'host' : parentKey} · ${kind}`,
    label: c.stem.join(' ') || words(leaf).join(' '),
  };
}

/**
 * The catalogue of every field seen so far. Bounded: a snapshot that suddenly carries thousands of distinct keys
 * must not grow /metrics or the dashboard without limit, so past `maxFields` new keys are dropped (and counted).
 */
export class FieldCatalogue {
  private readonly byKey = new Map<string, FieldInfo>();
  /** Keys not added because of the cap; reported as a metric so it is not silent. */
  dropped = 0;
  /** Bumped whenever a field is added, so listeners can tell the catalogue changed. */
  version = 0;

  constructor(private readonly maxFields: number) {}

  list(): FieldInfo[] {
    return [...this.byKey.values()];
  }

  private lookup(scope: 'target' | 'host', path: string[]): FieldInfo | undefined {
    const id = `${scope}:${path.join('.')}`;
    const known = this.byKey.get(id);
    if (known) return known;
    if (this.byKey.size >= this.maxFields) {
      this.dropped++;
      return undefined;
    }
    const info = describeField(scope, path);
    this.byKey.set(id, info);
    this.version++;
    return info;
  }

  /**
   * Registers the fields not seen before in the given targets' signals and the host's, without sampling them: what a
   * tick needs, at no allocation for a field already known.
   */
  register(signals: Iterable<unknown>, host: unknown): void {
    const path: string[] = [];
    for (const sig of signals) {
      if (!isRecord(sig)) continue;
      for (const [k, v] of Object.entries(sig)) if (!IDENTITY_KEYS.has(k)) this.visit('target', path, k, v);
    }
    if (isRecord(host)) for (const [k, v] of Object.entries(host)) this.visit('host', path, k, v);
  }

  /** register's walk over `path` + `key`, one stack for the whole walk; a path array is copied only for a new field. */
  private visit(scope: 'target' | 'host', path: string[], key: string, v: unknown): void {
    path.push(key);
    if (typeof v === 'number' || typeof v === 'boolean') {
      if (!this.byKey.has(`${scope}:${path.join('.')}`)) this.lookup(scope, [...path]);
    } else if (path.length < MAX_DEPTH && isRecord(v)) {
      for (const [k, child] of Object.entries(v)) if (!CUMULATIVE_KEYS.has(k)) this.visit(scope, path, k, child);
    }
    path.pop();
  }

  /** Flattens one snapshot into samples, registering fields not seen before. */
  flatten(snapshot: { targets?: unknown; host?: unknown }): FieldSample[] {
    const out: FieldSample[] = [];
    const targets = snapshot.targets;
    if (isRecord(targets)) {
      // The record key, not sig.name: keys are unique by construction, so no two samples share a label set.
      for (const [target, sig] of Object.entries(targets)) {
        if (!isRecord(sig)) continue;
        for (const [k, v] of Object.entries(sig)) {
          if (IDENTITY_KEYS.has(k)) continue;
          this.walk('target', [k], v, target, out);
        }
      }
    }
    if (isRecord(snapshot.host)) {
      for (const [k, v] of Object.entries(snapshot.host)) this.walk('host', [k], v, undefined, out);
    }
    return out;
  }

  private walk(
    scope: 'target' | 'host',
    path: string[],
    v: unknown,
    target: string | undefined,
    out: FieldSample[],
  ): void {
    if (typeof v === 'number' || typeof v === 'boolean') {
      const field = this.lookup(scope, path);
      if (field) out.push({ field, target, value: typeof v === 'boolean' ? (v ? 1 : 0) : v * field.scale });
      return;
    }
    if (path.length >= MAX_DEPTH || !isRecord(v)) return;
    for (const [k, child] of Object.entries(v)) {
      if (!CUMULATIVE_KEYS.has(k)) this.walk(scope, [...path, k], child, target, out);
    }
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
