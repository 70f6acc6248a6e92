/**
 * The one declaration of the configuration file. Each setting is written here once, under its YAML (snake_case) name,
 * with its check, its default and its documentation; everything else is derived from it:
 *
 * - the camelCase `Config` type the agent runs on (`types.ts`, inferred from `configSchema`), and the value, by one
 *   generic key conversion (`camelized`): `calm_ticks` → `calmTicks`, and a duration's key gains its unit (`tick` →
 *   `tickMs`, a PSI trigger's `stall` → `stallUs`) because the value handed on is a plain number of that unit;
 * - the defaults (`defaults.ts` parses an empty document);
 * - the key reference in `README.md` and the JSON Schema of the file (`reference.ts`, `npm run gen:config-docs`).
 *
 * Each field states what it expects and how to fix a wrong value, so that every validation issue reads as advice to
 * the person editing the file: "expected …, got … — fix: …".
 *
 * Only the shape and ranges of values are checked here. Whether a cgroup or a process exists is a question about the
 * live system that target resolution answers later.
 */
import { z } from 'zod';

export const LIMITS = {
  tickMinMs: 100,
  tickMaxMs: 60_000,
  cooldownMaxMs: 3_600_000,
  /** Kernel-side per-target arrays are sized for this many targets. */
  maxTargets: 1024,
  nameMaxLength: 64,
  /** PID_MAX_LIMIT on 64-bit kernels: no pid can be larger. */
  pidMax: 4_194_304,
  /** PATH_MAX. */
  pathMaxLength: 4096,
  p99ThresholdMaxUs: 10_000_000,
  triggerTicksMax: 1000,
  calmTicksMax: 100_000,
  /** cgroup v2 cpu.weight range. */
  weightMin: 1,
  weightMax: 10_000,
  maxChangesPerMinuteMax: 10_000,
  windowTicksMax: 1000,
  penaltyMaxMs: 86_400_000,
  /** Entries in `devices`; a host with more disks than this names the few that matter. */
  maxDevices: 256,
} as const;

/** Slots a `cgroup_pattern` target reserves for its matches unless `max_matches` says otherwise. */
export const DEFAULT_MAX_MATCHES = 64;

/** A value as the person who wrote the file would recognise it, for "got …" in messages. */
export function describeValue(v: unknown): string {
  if (v === undefined || v === null) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return '.nan';
    if (v === Infinity) return '.inf';
    if (v === -Infinity) return '-.inf';
    return String(v);
  }
  if (typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return 'binary data';
  if (typeof v === 'object') return 'a mapping';
  return typeof v;
}

interface Hint {
  expected: string;
  fix: string;
}

function advice(h: Hint, input: unknown): string {
  return `expected ${h.expected}, got ${describeValue(input)} — fix: ${h.fix}`;
}

/**
 * One message for every way a field can be wrong (wrong type, not an integer, out of range): the reader needs the
 * whole contract of the field, not which of zod's checks tripped first.
 */
function errorFor(h: Hint) {
  return { error: (iss: { input?: unknown }) => advice(h, iss.input) };
}

/** How a key is documented in the README's key reference; `meaning` is also its JSON Schema description. */
export interface KeyDoc {
  meaning: string;
  /** The Type column, where the schema alone does not say enough (a unit, what a list holds). */
  type?: string;
  /** The Allowed column: ranges and rules as the reader needs them; a whole number's range is read from its checks. */
  allowed?: string;
  /** The Default column, where it is not the schema's own default (absent, a whole section, set elsewhere). */
  default?: string;
}

/** The documentation of every key, attached to the key's schema; `reference.ts` renders it. */
export const keyDocs = z.registry<KeyDoc>();

function doc<S extends z.ZodType>(schema: S, d: KeyDoc): S {
  const described = schema.describe(d.meaning);
  keyDocs.add(described, d);
  // describe() returns a copy: it is still the same duration.
  const unit = durations.get(schema);
  if (unit !== undefined) durations.set(described, unit);
  return described;
}

/** A setting whose default is also quoted in its hint: `make` receives the value, so it is written once. */
function byDefault<T, S extends z.ZodType<T>>(value: T, make: (value: T) => S): z.ZodDefault<S> {
  return make(value).default(value as z.util.NoUndefined<z.output<S>>);
}

function int(min: number, max: number, h: Hint) {
  const e = errorFor(h);
  return z.number(e).int(e).gte(min, e).lte(max, e);
}

function fraction(h: Hint, opts: { includeOne: boolean }) {
  const e = errorFor(h);
  const n = z.number(e).gt(0, e);
  return opts.includeOne ? n.lte(1, e) : n.lt(1, e);
}

/**
 * A share setting: a number in (0, 1] — or (0, 1) without `includeOne` — with its default, the fix for a bad value
 * (given the default, to quote it) and what it means, for the docs.
 */
function share(value: number, fix: (d: number) => string, meaning: string, opts: { includeOne: boolean } = { includeOne: true }) {
  const [expected, allowed] = opts.includeOne
    ? ['a number greater than 0 and at most 1', 'greater than 0, at most 1']
    : ['a number greater than 0 and less than 1', 'greater than 0, less than 1'];
  return doc(byDefault(value, (d) => fraction({ expected, fix: fix(d) }, opts)), { allowed, meaning });
}

/** A number in [lo, hi], or (lo, hi] when `loOpen`. */
function real(lo: number, hi: number, h: Hint, opts: { loOpen: boolean } = { loOpen: false }) {
  const e = errorFor(h);
  const n = z.number(e);
  return (opts.loOpen ? n.gt(lo, e) : n.gte(lo, e)).lte(hi, e);
}

function bool(h: Hint) {
  return z.boolean(errorFor(h));
}

const onOff = () => bool({ expected: 'true or false', fix: 'write true or false (not yes/no or on/off)' });

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DURATION = /^(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)$/;

export function formatMs(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** "10m", "1.5s", "250ms" → milliseconds; undefined for anything else (CLI options use the config's units). */
export function parseDurationMs(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  return m ? Math.round(Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]) : undefined;
}

/** The unit a duration is handed on in; it is also the suffix of its key in `Config` (`tick` → `tickMs`). */
export type DurationUnit = 'Ms' | 'Us';

declare const unitTag: unique symbol;

/**
 * A parsed duration: a plain number of `U` at run time. The tag exists only in the types, where it tells the key
 * conversion to append the unit; `Config` itself holds plain numbers.
 */
export type InUnit<U extends DurationUnit> = number & { readonly [unitTag]: U };

/** Every duration field's schema, with what the JSON Schema and the key reference need to know about it. */
export const durations = new WeakMap<z.core.$ZodType, { unit: DurationUnit; minMs: number; maxMs: number }>();

/**
 * A duration written as "1s", "250ms", "1.5s", "2m", "1h" or a bare number of milliseconds; the output is whole
 * milliseconds, in `unit` ('Us': the whole milliseconds × 1000). A bare number inside quotes is refused rather than
 * guessed at, because "30" could have meant seconds.
 */
function duration<U extends DurationUnit = 'Ms'>(opts: {
  min: number;
  max: number;
  allowZero: boolean;
  fix: string;
  unit?: U;
}) {
  const unit: DurationUnit = opts.unit ?? 'Ms';
  const range = `from ${formatMs(opts.min)} to ${formatMs(opts.max)}`;
  const schema = z.unknown().transform((input, ctx): InUnit<U> => {
    const fail = (what: string): never => {
      ctx.issues.push({ code: 'custom', input, message: `${what}, got ${describeValue(input)} — fix: ${opts.fix}` });
      return z.NEVER as never;
    };
    let ms: number;
    if (typeof input === 'number') {
      if (!Number.isFinite(input)) return fail(`expected a duration ${range}`);
      ms = input;
    } else if (typeof input === 'string') {
      const s = input.trim();
      const m = DURATION.exec(s);
      if (m) {
        ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
      } else if (/^-\s*(\d|\.\d)/.test(s)) {
        return fail(opts.allowZero ? 'must not be negative' : 'must be a positive duration');
      } else if (/^(\d+(\.\d+)?|\.\d+)$/.test(s)) {
        return fail('expected a duration with a unit (ms, s, m, h)');
      } else {
        return fail('expected a duration like "1s" or "250ms" (units ms, s, m, h), or a number of milliseconds');
      }
    } else {
      return fail('expected a duration like "1s" or "250ms", or a number of milliseconds');
    }
    if (ms < 0 || (ms === 0 && !opts.allowZero)) {
      return fail(opts.allowZero ? 'must not be negative' : 'must be a positive duration');
    }
    if (ms < opts.min || ms > opts.max) return fail(`expected a duration ${range}`);
    return (unit === 'Us' ? Math.round(ms) * 1000 : Math.round(ms)) as InUnit<U>;
  });
  durations.set(schema, { unit, minMs: opts.min, maxMs: opts.max });
  return schema;
}

/** Problems that make a string unusable as an absolute path; undefined when it is fine. */
function pathProblem(p: string): string | undefined {
  if (!p.startsWith('/')) return 'expected an absolute path (starting with /)';
  if (p.includes('\0')) return 'expected a path without NUL characters';
  if (p.length > LIMITS.pathMaxLength) return `expected a path of at most ${LIMITS.pathMaxLength} characters`;
  // ".." would let a target or a deny rule point somewhere other than where it reads; resolution compares paths
  // textually, so they must already be in canonical form.
  if (p.split('/').some((s) => s === '.' || s === '..')) return 'expected a path without . or .. segments';
  return undefined;
}

/** Collapse repeated slashes and drop a trailing one, so equal paths compare equal. */
function canonicalPath(p: string): string {
  const c = p.replace(/\/{2,}/g, '/');
  return c.length > 1 && c.endsWith('/') ? c.slice(0, -1) : c;
}

function absPath(h: Hint) {
  return z.string(errorFor(h)).transform((p, ctx) => {
    const problem = pathProblem(p);
    if (problem !== undefined) {
      ctx.issues.push({ code: 'custom', input: p, message: `${problem}, got ${describeValue(p)} — fix: ${h.fix}` });
      return z.NEVER;
    }
    return canonicalPath(p);
  });
}

/**
 * A mapping that rejects unknown keys. Unknown keys are left to `explainIssues`, which splits them one per key and
 * suggests the nearest known key; every other issue on the mapping itself means it was not a mapping at all.
 */
function strict<S extends z.core.$ZodLooseShape>(shape: S, h: Hint) {
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? undefined : advice(h, iss.input)),
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const NAME = /^[a-z0-9_-]+$/;

const pidHint: Hint = { expected: 'a positive integer', fix: 'list process ids as numbers' };

const pid = (() => {
  const e = errorFor(pidHint);
  return z
    .number(e)
    .int(e)
    .gte(1, e)
    .lte(LIMITS.pidMax, {
      error: (iss) =>
        advice({ expected: `a process id no larger than ${LIMITS.pidMax}`, fix: 'check the process id' }, iss.input),
    });
})();

const SCOPE_RULE = 'exactly one of `cgroup`, `cgroup_pattern`, `pids`, `pidfile`, `comm`';

const target = strict(
  {
    name: doc(
      (() => {
        const e = errorFor({
          expected: `a name of 1 to ${LIMITS.nameMaxLength} characters from a-z, 0-9, _ and -`,
          fix: 'use lowercase letters, digits, _ or -, e.g. name: db-primary',
        });
        return z.string(e).regex(NAME, e).max(LIMITS.nameMaxLength, e);
      })(),
      {
        allowed: `1 to ${LIMITS.nameMaxLength} of \`a-z 0-9 _ -\`, unique`,
        meaning: 'the key in metrics (`target` label), JSON, logs and decisions',
      },
    ),
    role: doc(
      z.enum(['protect', 'noisy'], errorFor({
        expected: '"protect" or "noisy"',
        fix: 'use protect for the workload to shield, noisy for the one that may be held back',
      })),
      { meaning: '`protect`: the workload whose latency and pressure the rules defend; `noisy`: one they may hold back' },
    ),
    cgroup: doc(
      absPath({
        expected: 'an absolute cgroup directory path',
        fix: 'write the full path of the cgroup directory, e.g. cgroup: /sys/fs/cgroup/web.slice',
      }).optional(),
      {
        type: 'path',
        allowed: `absolute, no \`.\` or \`..\` segments; ${SCOPE_RULE}`,
        meaning:
          'the cgroup directory (with its subtree); on a hybrid host in the v1 cpu hierarchy, on a v2 host in the unified tree',
      },
    ),
    pids: doc(
      (() => {
        const e = errorFor({ expected: 'a non-empty list of process ids', fix: 'write e.g. pids: [1234, 5678]' });
        return z.array(pid, e).min(1, e).optional();
      })(),
      {
        type: 'list of integers',
        allowed: `1 to ${LIMITS.pidMax}, at least one, no repeats`,
        meaning:
          'processes (all their threads, not their children); actions that need a cgroup (`cpu_weight`, `pressure_backoff`, `numa_rebalance`, `cpuset_spread` in `cpuset` mode) refuse them',
      },
    ),
    pidfile: doc(
      absPath({
        expected: 'an absolute path of a file holding a process id',
        fix: 'write the full path, e.g. pidfile: /run/nginx.pid',
      }).optional(),
      {
        type: 'path',
        allowed:
          'absolute; must name a running process at start (otherwise `run`, `top` and `record` refuse it: exit 2, naming the file)',
        meaning: 'the process whose pid the file holds, re-read every few ticks (a restarted service is followed)',
      },
    ),
    comm: doc(
      (() => {
        const e = errorFor({
          expected: 'a process name of 1 to 15 characters (as in /proc/<pid>/comm)',
          fix: 'write the name ps shows in its COMMAND column, e.g. comm: postgres',
        });
        return z.string(e).min(1, e).max(15, e).optional();
      })(),
      {
        allowed: '1–15 characters',
        meaning:
          'every process whose `/proc/<pid>/comm` is exactly this, re-matched every few ticks (may match nothing yet)',
      },
    ),
    children: doc(
      bool({ expected: 'true or false', fix: 'write children: true to follow the processes\' descendants' }).optional(),
      { default: '`false`', allowed: 'process scopes only', meaning: 'also every descendant of the matched processes' },
    ),
    cgroup_pattern: doc(
      absPath({
        expected: 'an absolute cgroup path whose components may hold the wildcards * ? [...] {a,b}',
        fix: 'write e.g. cgroup_pattern: /sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/*/cri-containerd-*.scope',
      }).optional(),
      {
        type: 'path with wildcards',
        allowed: 'absolute; `*` `?` `[...]` `{a,b}` within path components; the part before the first wildcard must exist',
        meaning:
          'every cgroup that matches is a target of its own, named `<name>/<path below that fixed part>`; matches are picked up when they appear and let go of when they vanish (checked every 5 ticks), e.g. `/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/*/cri-containerd-*.scope` for every container of a QoS class, or `/sys/fs/cgroup/app.slice/*.service`',
      },
    ),
    max_matches: doc(
      int(1, LIMITS.maxTargets, {
        expected: `a whole number of cgroups from 1 to ${LIMITS.maxTargets}`,
        fix: `write e.g. max_matches: ${DEFAULT_MAX_MATCHES}`,
      }).optional(),
      {
        // Filled in for cgroup_pattern targets only (below): on any other target the key is an error.
        default: `\`${DEFAULT_MAX_MATCHES}\``,
        allowed: `1 to ${LIMITS.maxTargets}; \`cgroup_pattern\` only`,
        meaning: `slots reserved for the pattern's matches (the kernel side is sized at start); further matches are left out with a warning. All targets together reserve at most ${LIMITS.maxTargets}`,
      },
    ),
  },
  {
    expected: 'a mapping with name, role, and one of cgroup, cgroup_pattern, pids, pidfile or comm',
    fix: 'write a target as: - { name: web, role: protect, cgroup: /sys/fs/cgroup/web.slice }',
  },
)
  .superRefine(
    (t, ctx) => {
      const hasCgroup = t.cgroup !== undefined;
      const hasPids = t.pids !== undefined;
      const scopes = [t.cgroup, t.cgroup_pattern, t.pids, t.pidfile, t.comm].filter((x) => x !== undefined).length;
      if (hasCgroup && hasPids) {
        ctx.addIssue({
          code: 'custom',
          input: t,
          message: 'has both cgroup and pids — fix: keep one; a target is either a cgroup or a list of processes',
        });
      } else if (scopes > 1) {
        ctx.addIssue({
          code: 'custom',
          input: t,
          message: 'names more than one of cgroup, cgroup_pattern, pids, pidfile and comm — fix: keep one scope per target',
        });
      } else if (t.max_matches !== undefined && t.cgroup_pattern === undefined) {
        ctx.addIssue({
          code: 'custom',
          input: t,
          path: ['max_matches'],
          message: 'max_matches applies to cgroup_pattern targets — fix: drop it, or use cgroup_pattern',
        });
      } else if (t.children !== undefined && (hasCgroup || t.cgroup_pattern !== undefined)) {
        ctx.addIssue({
          code: 'custom',
          input: t,
          path: ['children'],
          message: 'children applies to process scopes (pids, pidfile, comm) — fix: drop it; a cgroup target already covers every process in its subtree',
        });
      } else if (scopes === 0) {
        ctx.addIssue({
          code: 'custom',
          input: t,
          message:
            'has neither cgroup nor pids — fix: add cgroup: /sys/fs/cgroup/<path>, cgroup_pattern: /sys/fs/cgroup/<glob>, pids: [<pid>, ...], pidfile: <file> or comm: <name> to say which tasks it covers',
        });
      }
      if (Array.isArray(t.pids)) {
        const seen = new Map<unknown, number>();
        t.pids.forEach((p, i) => {
          const first = seen.get(p);
          if (first === undefined) seen.set(p, i);
          else
            ctx.addIssue({
              code: 'custom',
              input: p,
              path: ['pids', i],
              message: `pid ${describeValue(p)} is listed twice (also pids[${first}]) — fix: remove the repeat`,
            });
        });
      }
    },
    // Run even when a field failed, so that one pass reports every problem of the target; but not when the target
    // has an unknown key, which is most often a misspelt cgroup or pids that would be reported twice.
    {
      when: (payload) =>
        isObject(payload.value) &&
        !payload.issues.some((i) => i.code === 'unrecognized_keys' && (i.path?.length ?? 0) === 0),
    },
  )
  // A pattern target always says how many slots it reserves, so the kernel side can be sized from the config alone.
  .transform((t) => (t.cgroup_pattern !== undefined ? { ...t, max_matches: t.max_matches ?? DEFAULT_MAX_MATCHES } : t));

const targets = z
  .array(target, errorFor({ expected: 'a list of targets', fix: 'write each target as an item starting with "- "' }))
  // Runs even when an item failed, so that one pass reports every problem of the list.
  .superRefine(
    (ts, ctx) => {
      if (ts.length > LIMITS.maxTargets) {
        ctx.addIssue({
          code: 'custom',
          input: ts,
          message:
            `expected at most ${LIMITS.maxTargets} targets, got ${ts.length} — ` +
            'fix: group processes into fewer cgroups and name those',
        });
      }
      const names = new Map<string, number>();
      const cgroups = new Map<string, number>();
      const pids = new Map<number, number>();
      ts.forEach((t: unknown, i) => {
        if (!isObject(t)) return;
        const label = (j: number) => `targets[${j}]${typeof ts[j]?.name === 'string' ? ` (${ts[j].name})` : ''}`;
        if (typeof t.name === 'string') {
          const j = names.get(t.name);
          if (j === undefined) names.set(t.name, i);
          else
            ctx.addIssue({
              code: 'custom',
              input: t.name,
              path: [i, 'name'],
              message: `duplicate name ${describeValue(t.name)} (also targets[${j}]) — fix: give each target its own name`,
            });
        }
        // The same tasks under two targets would be both protected and held back, or counted twice.
        if (typeof t.cgroup === 'string') {
          const j = cgroups.get(t.cgroup);
          if (j === undefined) cgroups.set(t.cgroup, i);
          else
            ctx.addIssue({
              code: 'custom',
              input: t.cgroup,
              path: [i, 'cgroup'],
              message: `same cgroup as ${label(j)} — fix: list each cgroup under one target only`,
            });
        }
        if (Array.isArray(t.pids)) {
          t.pids.forEach((p: unknown, k: number) => {
            if (typeof p !== 'number') return;
            const j = pids.get(p);
            if (j === undefined) pids.set(p, i);
            else if (j !== i)
              ctx.addIssue({
                code: 'custom',
                input: p,
                path: [i, 'pids', k],
                message: `pid ${p} is also in ${label(j)} — fix: list each process under one target only`,
              });
          });
        }
      });
    },
    { when: (payload) => Array.isArray(payload.value) },
  );

/** A rule's `trigger_ticks`: consecutive ticks of its condition before it acts. */
function triggerTicks(value: number, meaning: string) {
  return doc(
    byDefault(value, (d) =>
      int(1, LIMITS.triggerTicksMax, {
        expected: `a whole number of ticks from 1 to ${LIMITS.triggerTicksMax}`,
        fix: `write e.g. trigger_ticks: ${d}`,
      }),
    ),
    { meaning },
  );
}

/** A rule's `calm_ticks`: consecutive calm ticks before it restores. */
function calmTicks(value: number, meaning: string) {
  return doc(
    byDefault(value, (d) =>
      int(1, LIMITS.calmTicksMax, {
        expected: `a whole number of ticks from 1 to ${LIMITS.calmTicksMax}`,
        fix: `write e.g. calm_ticks: ${d}`,
      }),
    ),
    { meaning },
  );
}

const enabled = (on: boolean, meaning: string) => doc(onOff().default(on), { meaning });

const noisyNeighbor = strict(
  {
    enabled: enabled(true, 'lower the busiest noisy targets\' CPU weight while a protect target waits on the run queue'),
    p99_threshold_us: doc(
      byDefault(4000, (d) =>
        int(1, LIMITS.p99ThresholdMaxUs, {
          expected: `a whole number of microseconds from 1 to ${LIMITS.p99ThresholdMaxUs}`,
          fix: `write e.g. p99_threshold_us: ${d} for ${d / 1000} ms`,
        }),
      ),
      {
        type: 'integer, µs',
        meaning: 'a protect target\'s run-queue p99 above this is a hot tick',
      },
    ),
    wait_share_threshold: share(
      1,
      () => 'write e.g. wait_share_threshold: 0.1 (a share of the target\'s runnable time, 0.1 = 10%)',
      'a protect target that spent more than this share of its runnable time waiting for a CPU (wait ÷ (wait + on-CPU), from the same run-queue program) has a hot tick too, even with its p99 of waits below `p99_threshold_us`: a server answers each request after one wake-up, so when 1% of its wake-ups wait a neighbour\'s slice its clients\' p99 is that slice while the p99 of its waits stays short. A step taken for it is judged by the target\'s total run-queue wait per tick (`runqlat.waitUs`). Calm needs the share below `wait_share_threshold × calm_fraction` as well. 1 (the default) turns it off: at 0.1 in the servers benchmark it stepped nginx\'s neighbour down three times per run, which raised nginx\'s throughput (0.62× → 0.89× of isolated) but not its clients\' p99, which only `cpu.idle` brings back',
    ),
    trigger_ticks: triggerTicks(2, 'consecutive hot ticks before a step'),
    event_driven: enabled(
      false,
      'the kernel counts protect targets\' run-queue waits of at least `p99_threshold_us` and wakes the agent for an early tick when two fall within 100 ms (at most one per 100 ms), so the first step comes about 0.5 s after the onset instead of 2–3 s; off by default because the closed loop then judges a step against the short windows before it and reverted 2 of 3 first steps in the reaction benchmark',
    ),
    calm_ticks: calmTicks(10, 'consecutive calm ticks before restoring'),
    calm_fraction: share(
      0.5,
      (d) => `write e.g. calm_fraction: ${d} (calm means p99 below threshold × calm_fraction)`,
      'calm means every protect target\'s p99 below `p99_threshold_us × calm_fraction`',
    ),
    release_below_cpus: doc(
      byDefault(0.1, (d) =>
        real(0, 1024, { expected: 'a number of CPUs from 0 to 1024', fix: `write e.g. release_below_cpus: ${d} for a tenth of one CPU` }),
      ),
      {
        type: 'number, CPUs',
        allowed: '0 to 1024',
        meaning:
          'the calm restore gives a noisy target its weight (and `cpu.idle` 0) back only once its own demand — on-CPU time plus time waiting for a CPU, from the same run-queue program — has also stayed below this many CPUs for `calm_ticks`: while the neighbour still wants the CPU, a calm protect target is the step working, and giving the share back brings the waiting back (in the servers benchmark the calm restore undid `cpu.idle` within the measured run). A value above the host\'s CPU count restores on the protect targets\' calm alone',
      },
    ),
    step_fraction: share(
      0.5,
      (d) => `write e.g. step_fraction: ${d} (each step multiplies the weight by 1 - step_fraction)`,
      'each step multiplies the weight by `1 − step_fraction` (and lowers it by at least 1)',
      { includeOne: false },
    ),
    min_weight: doc(
      byDefault(10, (d) =>
        int(LIMITS.weightMin, LIMITS.weightMax, {
          expected: `a whole number from ${LIMITS.weightMin} to ${LIMITS.weightMax} (cpu.weight units)`,
          fix: `write e.g. min_weight: ${d}`,
        }),
      ),
      {
        allowed: `${LIMITS.weightMin} to ${LIMITS.weightMax} (cgroup v2 \`cpu.weight\` units)`,
        meaning: 'the weight is never stepped below this',
      },
    ),
    idle_at_floor: enabled(
      true,
      'once every busy noisy target is at `min_weight` and a protect target still waits, set the busiest one\'s `cpu.idle` to 1 (Linux 5.15+): its tasks then run only when nothing else in the parent wants the CPU. The calm restore and the closed loop put it back to 0 and the weight to its original. Set `min_weight: 100` to make it the first step',
    ),
    max_noisy_per_step: doc(
      byDefault(1, (d) =>
        int(1, LIMITS.maxTargets, {
          expected: `a whole number from 1 to ${LIMITS.maxTargets}`,
          fix: `write e.g. max_noisy_per_step: ${d}`,
        }),
      ),
      { meaning: 'how many of the busiest noisy targets are lowered per step' },
    ),
  },
  { expected: 'a mapping of policy settings', fix: 'indent the settings under noisy_neighbor:' },
);

const pressureBackoff = strict(
  {
    enabled: enabled(
      true,
      'cap the busiest noisy target\'s CPU quota while the host or a protect target stalls (AIMD)',
    ),
    psi_some_avg10_threshold: doc(
      byDefault(20, (d) =>
        real(
          0,
          100,
          {
            expected: 'a percentage greater than 0 and at most 100',
            fix: `write e.g. psi_some_avg10_threshold: ${d} (PSI "some" avg10, percent of time stalled)`,
          },
          { loOpen: true },
        ),
      ),
      {
        type: 'number, percent',
        allowed: 'greater than 0, at most 100',
        meaning:
          'PSI "some" avg10 (cpu, memory or io; the host\'s or a protect target\'s own) above this is a pressured tick',
      },
    ),
    trigger_ticks: triggerTicks(3, 'consecutive pressured ticks before a decrease'),
    calm_ticks: calmTicks(30, 'consecutive unpressured ticks before restoring the original quota'),
    decrease_factor: share(
      0.5,
      (d) => `write e.g. decrease_factor: ${d} (each decrease multiplies the quota by it)`,
      'each decrease multiplies the quota (or what the target used, if less) by this',
      { includeOne: false },
    ),
    increase_step_cpus: doc(
      byDefault(0.25, (d) =>
        real(0.01, 1024, { expected: 'a number of CPUs from 0.01 to 1024', fix: `write e.g. increase_step_cpus: ${d}` }),
      ),
      { type: 'number, CPUs', allowed: '0.01 to 1024', meaning: 'while unpressured, each increase gives this much quota back' },
    ),
    // The kernel's smallest quota is 1 ms per period: 0.01 CPU at the default 100 ms period.
    floor_cpus: doc(
      byDefault(0.2, (d) =>
        real(0.01, 1024, {
          expected: 'a number of CPUs from 0.01 to 1024',
          fix: `write e.g. floor_cpus: ${d} for a fifth of one CPU`,
        }),
      ),
      { type: 'number, CPUs', allowed: '0.01 to 1024', meaning: 'the quota is never lowered below this' },
    ),
  },
  { expected: 'a mapping of policy settings', fix: 'indent the settings under pressure_backoff:' },
);

const ioPrefetch = strict(
  {
    enabled: enabled(
      true,
      'raise a device\'s read-ahead while a target (any role) reads it sequentially in small requests — only on a disk listed under `devices`',
    ),
    seq_ratio_threshold: share(
      0.8,
      (d) => `write e.g. seq_ratio_threshold: ${d} (the fraction of reads that must be sequential)`,
      'share of requests that must be sequential for a stream',
    ),
    max_request_kb: doc(
      byDefault(64, (d) =>
        int(1, 65_536, { expected: 'a whole number of KiB from 1 to 65536', fix: `write e.g. max_request_kb: ${d}` }),
      ),
      { type: 'integer, KiB', meaning: 'a stream whose mean request is at most this counts as small' },
    ),
    min_ios_per_s: doc(
      byDefault(50, (d) =>
        real(
          0,
          10_000_000,
          { expected: 'a number of requests per second greater than 0', fix: `write e.g. min_ios_per_s: ${d}` },
          { loOpen: true },
        ),
      ),
      { allowed: 'greater than 0, at most 10000000', meaning: 'requests per second a stream needs' },
    ),
    trigger_ticks: triggerTicks(3, 'consecutive ticks of a small sequential stream before raising'),
    calm_ticks: calmTicks(10, 'consecutive ticks without any stream before restoring'),
    read_ahead_kb: doc(
      byDefault(1024, (d) =>
        int(1, 16_384, { expected: 'a whole number of KiB from 1 to 16384', fix: `write e.g. read_ahead_kb: ${d}` }),
      ),
      {
        type: 'integer, KiB',
        meaning: 'the device\'s `read_ahead_kb` while the stream lasts (only ever a raise)',
      },
    ),
    prefetch_mb: doc(
      real(0, 1024, {
        expected: 'a number of MiB from 0 to 1024',
        fix: 'write e.g. prefetch_mb: 64, or prefetch_mb: 0 to pre-read nothing',
      }).default(0),
      {
        type: 'number, MiB',
        allowed: '0 to 1024',
        meaning: 'also pre-read this much of the files being streamed per raise; 0 turns pre-reading off',
      },
    ),
  },
  { expected: 'a mapping of policy settings', fix: 'indent the settings under io_prefetch:' },
);

const CPU_LIST = /^$|^\d+(-\d+)?(,\d+(-\d+)?)*$/;

const cpusetSpread = strict(
  {
    enabled: enabled(
      true,
      'widen the CPUs a protect target may use while its runnable threads pile up on one CPU next to an idle one; also runs the placement signal',
    ),
    mode: doc(
      z
        .enum(['affinity', 'cpuset'], errorFor({
          expected: '"affinity" or "cpuset"',
          fix: 'write mode: affinity (each thread\'s CPU affinity) or mode: cpuset (the target\'s cpuset.cpus)',
        }))
        .default('affinity'),
      { meaning: '`affinity`: each thread\'s CPU affinity; `cpuset`: the target\'s `cpuset.cpus`' },
    ),
    min_pileup: doc(
      byDefault(2, (d) =>
        int(2, 4096, {
          expected: 'a whole number of threads from 2 to 4096',
          fix: `write e.g. min_pileup: ${d} (runnable threads on one CPU that count as a pile-up)`,
        }),
      ),
      {
        meaning: 'runnable threads on one CPU that make a pile-up; calm is fewer runnable threads than this',
      },
    ),
    idle_below: share(
      0.5,
      (d) => `write e.g. idle_below: ${d} (a CPU busy less than this fraction of a tick counts as idle)`,
      'a CPU busy less than this fraction of the tick counts as idle',
    ),
    trigger_ticks: triggerTicks(3, 'consecutive pile-up ticks before a step'),
    calm_ticks: calmTicks(30, 'consecutive calm ticks before restoring the original placement'),
    pin_cpus: doc(
      (() => {
        const e = errorFor({
          expected: 'a CPU list like "2-3" or "0,2,4", or "" for none',
          fix: 'write e.g. pin_cpus: "2-3" to pin a piled-up target to CPUs 2 and 3, or leave it out to spread instead',
        });
        return z.string(e).regex(CPU_LIST, e);
      })().default(''),
      {
        allowed: 'a CPU list like `"2-3"` or `"0,2,4"`, or `""`',
        meaning: 'when set, a pile-up pins the target to exactly these CPUs (once) instead of spreading it',
      },
    ),
  },
  { expected: 'a mapping of policy settings', fix: 'indent the settings under cpuset_spread:' },
);

const numaRebalance = strict(
  {
    enabled: enabled(
      true,
      'bring a protect target\'s CPUs and memory onto one NUMA node; also runs the numa signal (which reads nothing on a one-node host)',
    ),
    move: doc(
      z
        .enum(['cpus', 'memory'], errorFor({
          expected: '"cpus" or "memory"',
          fix: 'write move: cpus (move the CPUs to the memory) or move: memory (migrate the memory to the CPUs)',
        }))
        .default('cpus'),
      {
        meaning:
          '`cpus`: move the CPUs to the memory (`cpuset.cpus`); `memory`: move the memory to the CPUs (`cpuset.mems`, `migrate_pages`)',
      },
    ),
    remote_threshold: share(
      0.5,
      (d) => `write e.g. remote_threshold: ${d} (share of memory accesses expected to cross nodes)`,
      'expected share of remote accesses at or above which a tick counts',
    ),
    dominance: share(
      0.75,
      (d) => `write e.g. dominance: ${d} (share of the memory one node must hold to be its home)`,
      'share of the memory one node must hold to be the target\'s home',
    ),
    calm_fraction: share(
      0.8,
      (d) => `write e.g. calm_fraction: ${d} (restore when the home share falls below dominance × calm_fraction)`,
      'calm when the home node\'s share falls below `dominance × calm_fraction`',
    ),
    min_memory_mb: doc(
      byDefault(64, (d) =>
        int(0, 1_000_000_000, { expected: 'a whole number of MiB, 0 or more', fix: `write e.g. min_memory_mb: ${d}` }),
      ),
      { type: 'integer, MiB', meaning: 'targets with less memory are left alone' },
    ),
    trigger_ticks: triggerTicks(5, 'consecutive ticks before moving'),
    calm_ticks: calmTicks(30, 'consecutive calm ticks before restoring'),
    sample_ticks: doc(
      byDefault(5, (d) =>
        int(1, 1000, {
          expected: 'a whole number of ticks from 1 to 1000',
          fix: `write e.g. sample_ticks: ${d} (numa_maps is read once every this many ticks)`,
        }),
      ),
      { meaning: '`numa_maps` is read once every this many ticks (it walks every mapped page)' },
    ),
  },
  { expected: 'a mapping of policy settings', fix: 'indent the settings under numa_rebalance:' },
);

/**
 * The block devices whose queue knobs the agent may change (io_prefetch's read_ahead_kb). Only the spelling is
 * checked here; whether each names a whole disk of this host is resolved at start and on reload (src/block).
 */
const devices = z
  .array(
    z.string(errorFor({ expected: 'a device name, path or major:minor', fix: 'write e.g. devices: [sda, /dev/nvme0n1, "8:0"]' })).regex(
      /^(?:\/dev\/[^\0\s]+|\d+:\d+|[A-Za-z0-9][A-Za-z0-9._+-]{0,63})$/,
      errorFor({ expected: 'a device name (sda), a /dev path (/dev/sda) or major:minor ("8:0")', fix: 'write e.g. devices: [sda, /dev/nvme0n1, "8:0"]' }),
    ),
    errorFor({ expected: 'a list of block devices', fix: 'write e.g. devices: [sda], or devices: [] to change no device' }),
  )
  .max(LIMITS.maxDevices, errorFor({ expected: `at most ${LIMITS.maxDevices} devices`, fix: 'list only the disks whose read-ahead the agent may change' }));

const strategy = strict(
  {
    kind: doc(
      z
        .enum(['heuristic', 'shadow', 'canary', 'learned'], errorFor({
          expected: 'one of heuristic, learned, shadow, canary',
          fix: 'write kind: heuristic (the default rule), shadow (learner only reports), canary (learner acts on canary_targets) or learned',
        }))
        .default('heuristic'),
      {
        meaning:
          '`heuristic`: the rules alone; `shadow`: the learner decides beside the rules and acts on nothing; `canary`: it acts on `canary_targets` only; `learned`: on every target (the rules keep other actions and their restores)',
      },
    ),
    canary_targets: doc(
      (() => {
        const e = errorFor({
          expected: 'a list of target names',
          fix: 'write e.g. canary_targets: [batch], naming targets from the targets list',
        });
        return z.array(z.string(e).regex(NAME, e).max(LIMITS.nameMaxLength, e), e);
      })().default(() => []),
      {
        type: 'list of target names',
        allowed: 'names from `targets`; at least one for `canary`',
        meaning: 'the targets the learner may act on with `kind: canary`',
      },
    ),
    seed: doc(
      byDefault(1, (d) => int(0, 0xffff_ffff, { expected: 'a whole number from 0 to 4294967295', fix: `write e.g. seed: ${d}` })),
      { meaning: 'seed of the learner\'s random draws, so runs replay' },
    ),
    exploration: strict(
      {
        scale: doc(
          byDefault(1, (d) => {
            const e = errorFor({
              expected: 'a number greater than 0 and at most 10',
              fix: `write e.g. scale: ${d} (posterior standard deviations; smaller explores less)`,
            });
            return z.number(e).gt(0, e).lte(10, e);
          }),
          {
            allowed: 'greater than 0, at most 10',
            meaning:
              'spread of the learner\'s draws, in posterior standard deviations, before it has learned anything',
          },
        ),
        decay: share(
          0.98,
          (d) => `write e.g. decay: ${d} (1 keeps exploring as much forever)`,
          'multiplies an arm\'s spread once per outcome learned; 1 keeps exploring as much forever',
        ),
        min_scale: doc(
          byDefault(0.05, (d) => {
            const e = errorFor({ expected: 'a number from 0 to 10', fix: `write e.g. min_scale: ${d}` });
            return z.number(e).gte(0, e).lte(10, e);
          }),
          { allowed: '0 to 10, at most `scale`', meaning: 'the spread never falls below this' },
        ),
        uniform_share: doc(
          byDefault(0, (d) => real(0, 1, { expected: 'a number from 0 to 1', fix: `write e.g. uniform_share: ${d} (1: every choice at random)` })),
          {
            allowed: '0 to 1',
            meaning:
              'share of choices drawn uniformly at random among the arms that apply, ignoring the model; their outcomes are logged with `uniform: true`, which is what an offline replay of the learner (`bench --sections learner`) needs to judge it without bias',
          },
        ),
      },
      { expected: 'a mapping of exploration settings', fix: 'indent scale, decay, min_scale and uniform_share under exploration:' },
    ).prefault({}),
  },
  { expected: 'a mapping of strategy settings', fix: 'indent kind, canary_targets, seed and exploration under strategy:' },
).superRefine((st, ctx) => {
  if (st.kind === 'canary' && st.canary_targets.length === 0) {
    ctx.addIssue({
      code: 'custom',
      input: st.canary_targets,
      path: ['canary_targets'],
      message: 'kind canary needs at least one target — fix: list the targets the learner may act on, e.g. canary_targets: [batch]',
    });
  }
  if (st.exploration.min_scale > st.exploration.scale) {
    ctx.addIssue({
      code: 'custom',
      input: st.exploration.min_scale,
      path: ['exploration', 'min_scale'],
      message: `${st.exploration.min_scale} is above scale ${st.exploration.scale} — fix: make min_scale at most scale`,
    });
  }
});

/** Which attach variant an eBPF signal uses: `auto` (the cheapest this kernel takes) or one of `kinds`, pinned. */
function attach<const K extends readonly [string, ...string[]]>(kinds: K, meaning: string) {
  const all = ['auto', ...kinds] as const;
  return doc(
    z
      .enum(all, errorFor({ expected: all.join(', '), fix: `write attach: auto, or pin a variant, e.g. attach: ${kinds[kinds.length - 1]}` }))
      .default('auto'),
    { meaning },
  );
}

const BTF_OR_RAW = ['tp_btf', 'raw_tp'] as const;
const AS_FOR_RUNQLAT = 'the attach variant, as for runqlat';

/** A PSI trigger; stall and window are durations, handed on in microseconds (the kernel's unit). */
const psiTrigger = strict(
  {
    resource: doc(
      z.enum(['cpu', 'memory', 'io'], errorFor({ expected: 'cpu, memory or io', fix: 'write e.g. resource: cpu' })),
      { meaning: 'the pressure file, `/proc/pressure/<resource>`' },
    ),
    kind: doc(
      z.enum(['some', 'full'], errorFor({ expected: 'some or full', fix: 'write kind: some (any task stalled) or kind: full (all stalled)' })),
      { meaning: '`some`: at least one task stalled; `full`: all non-idle tasks stalled' },
    ),
    stall: doc(
      duration({ min: 1, max: 10_000, allowZero: false, unit: 'Us', fix: 'use a stall time from 1ms up to the window, e.g. stall: 200ms' }),
      { allowed: '1ms to 10s, at most `window`', meaning: 'stall time within the window that fires the trigger' },
    ),
    window: doc(
      duration({ min: 500, max: 10_000, allowZero: false, unit: 'Us', fix: 'use a window from 500ms to 10s, e.g. window: 2s' }),
      {
        allowed: '500ms to 10s',
        meaning:
          'the tracking window; without `CAP_SYS_RESOURCE` the kernel accepts only multiples of 2s, which the agent checks at start',
      },
    ),
    target: doc(
      z.string(errorFor({ expected: 'the name of a cgroup v2 target', fix: 'write e.g. target: web, or leave target out for host-wide pressure' })).optional(),
      {
        default: 'absent (host-wide)',
        allowed: 'a cgroup v2 target\'s name',
        meaning: 'watch that target\'s own `<cgroup>/<resource>.pressure` instead of `/proc/pressure/<resource>`',
      },
    ),
  },
  { expected: 'a mapping with resource, kind, stall and window', fix: 'write e.g. {resource: cpu, kind: some, stall: 200ms, window: 2s}' },
).superRefine((t, ctx) => {
  if (t.stall > t.window) {
    ctx.addIssue({
      code: 'custom',
      input: t.stall,
      path: ['stall'],
      message: `stall ${formatMs(t.stall / 1000)} is longer than the window ${formatMs(t.window / 1000)} — fix: use a stall time shorter than the window, e.g. 10% of it`,
    });
  }
});

const signals = strict(
  {
    runqlat: strict(
      {
        enabled: enabled(
          true,
          'run-queue latency and on-CPU time (eBPF); the noisy-neighbor rule, the learned strategy and the closed loop\'s default objective need it',
        ),
        per_thread: doc(bool({ expected: 'true or false', fix: 'write per_thread: true or per_thread: false' }).default(false), {
          meaning: 'also keep per-thread histograms and report each target\'s top threads by wait (`runqlat.threads`)',
        }),
        attach: attach(
          BTF_OR_RAW,
          'the attach variant: `auto` takes the cheapest this kernel has (tp_btf, else raw_tp); a pinned one that does not attach is an error at start',
        ),
      },
      { expected: 'a mapping of runqlat settings', fix: 'indent enabled, per_thread and attach under runqlat:' },
    ).prefault({}),
    psi: strict(
      {
        enabled: enabled(
          true,
          'pressure stall information, host-wide and per cgroup v2 target; the pressure-backoff rule needs it',
        ),
        // No PSI trigger by default: each one makes the kernel sample pressure far more often while stalls last
        // (window/10 with CAP_SYS_RESOURCE), and no default rule acts faster than a tick, which reads the same
        // pressure anyway.
        triggers: doc(
          z
            .array(psiTrigger, errorFor({ expected: 'a list of triggers', fix: 'write e.g. triggers: [{resource: cpu, kind: some, stall: 200ms, window: 2s}]' }))
            .default(() => []),
          {
            meaning:
              'PSI triggers on the host-wide pressure files: when one fires the agent ticks at once instead of at the next tick',
          },
        ),
      },
      { expected: 'a mapping of psi settings', fix: 'indent enabled and triggers under psi:' },
    ).prefault({}),
    cgstat: strict(
      { enabled: enabled(true, 'CPU use, throttling and memory from each cgroup target\'s interface files') },
      { expected: 'a mapping of cgstat settings', fix: 'indent enabled under cgstat:' },
    ).prefault({}),
    net: strict(
      {
        enabled: enabled(true, 'TCP retransmits and packet drops with their reasons (eBPF)'),
        attach: attach(BTF_OR_RAW, AS_FOR_RUNQLAT),
      },
      { expected: 'a mapping of net settings', fix: 'indent enabled and attach under net:' },
    ).prefault({}),
    futex: strict(
      {
        enabled: enabled(true, 'futex wait time and the most-waited addresses (eBPF)'),
        attach: attach(
          ['sched_switch', 'sched_switch_raw', 'tracepoint', 'tp_btf', 'raw_tp'],
          'the attach variant: `auto` tries `sched_switch` first (blocked futex waits seen at the context switch, nothing on any syscall; v5.15), then its raw_tp form, then the syscall hooks: classic tracepoints, tp_btf, raw_tp',
        ),
      },
      { expected: 'a mapping of futex settings', fix: 'indent enabled and attach under futex:' },
    ).prefault({}),
    blkio: strict(
      {
        enabled: enabled(
          true,
          'block I/O per target and device: latency, bytes, sequentiality, queue depth (eBPF); the io-prefetch rule needs it',
        ),
        attach: attach(BTF_OR_RAW, AS_FOR_RUNQLAT),
      },
      { expected: 'a mapping of blkio settings', fix: 'indent enabled and attach under blkio:' },
    ).prefault({}),
  },
  { expected: 'a mapping of signals', fix: 'indent each signal under signals:, e.g. runqlat:' },
);

/**
 * The file as written: snake_case keys, every check, every default. `configSchema` hands it on in camelCase; the key
 * reference and the JSON Schema are made from this.
 */
export const fileSchema = strict(
  {
    tick: doc(
      byDefault(1000, (d) =>
        duration({
          min: LIMITS.tickMinMs,
          max: LIMITS.tickMaxMs,
          allowZero: false,
          fix: `use a duration from ${formatMs(LIMITS.tickMinMs)} to ${formatMs(LIMITS.tickMaxMs)}, e.g. tick: ${formatMs(d)}`,
        }),
      ),
      {
        allowed: `${formatMs(LIMITS.tickMinMs)} to ${formatMs(LIMITS.tickMaxMs)}`,
        meaning: 'how often signals are read and strategies asked; every signal\'s window is one tick',
      },
    ),
    ewma_alpha: share(
      0.3,
      (d) => `write e.g. ewma_alpha: ${d}; smaller values smooth more`,
      'weight of the newest tick in `runqlat.p99Ewma`; smaller smooths more, 1 does not smooth',
    ),
    signals: doc(signals.prefault({}), { type: 'mapping', default: 'all on', meaning: 'which signals run (below)' }),
    targets: doc(targets.default(() => []), {
      allowed: `at most ${LIMITS.maxTargets}`,
      meaning:
        'the workloads the agent watches and may act on; with none it observes the host and acts on nothing',
    }),
    // No device knob is changed unless its device is named: io_prefetch observes and explains.
    devices: doc(devices.default(() => []), {
      type: 'list of strings',
      allowed: `at most ${LIMITS.maxDevices}; each a whole disk of the host: a name (\`sda\`), a device file (\`/dev/nvme0n1\`) or \`major:minor\` (\`"8:0"\`)`,
      meaning:
        'the block devices whose queue knobs (`io_prefetch`\'s `read_ahead_kb`) the agent may change; with none, `io_prefetch` only observes (see below)',
    }),
    policy: doc(
      strict(
        {
          noisy_neighbor: noisyNeighbor.prefault({}),
          cpuset_spread: cpusetSpread.prefault({}),
          numa_rebalance: numaRebalance.prefault({}),
          pressure_backoff: pressureBackoff.prefault({}),
          io_prefetch: ioPrefetch.prefault({}),
        },
        { expected: 'a mapping of policies', fix: 'indent each policy under policy:, e.g. noisy_neighbor:' },
      ).prefault({}),
      { default: 'all five rules on', meaning: 'the heuristic rules (below)' },
    ),
    guardrails: doc(
      strict(
        {
          cooldown: doc(
            byDefault(3000, (d) =>
              duration({
                min: 0,
                max: LIMITS.cooldownMaxMs,
                allowZero: true,
                fix: `use a duration from 0s to ${formatMs(LIMITS.cooldownMaxMs)}, e.g. cooldown: ${formatMs(d)}`,
              }),
            ),
            {
              allowed: `0s to ${formatMs(LIMITS.cooldownMaxMs)}`,
              meaning: 'minimum time between two changes to the same target',
            },
          ),
          max_changes_per_minute: doc(
            byDefault(30, (d) =>
              int(1, LIMITS.maxChangesPerMinuteMax, {
                expected: `a whole number from 1 to ${LIMITS.maxChangesPerMinuteMax}`,
                fix: `write e.g. max_changes_per_minute: ${d}; to stop all changes, disable the policy instead`,
              }),
            ),
            {
              meaning:
                'global budget: changes (applied, plus proposed and not yet reported) in any 60 s',
            },
          ),
          deny_cgroups: doc(
            z
              .array(
                absPath({
                  expected: 'an absolute cgroup directory path',
                  fix: 'write the full path, e.g. /sys/fs/cgroup/system.slice',
                }),
                errorFor({ expected: 'a list of cgroup paths', fix: 'write e.g. deny_cgroups: [/sys/fs/cgroup/system.slice]' }),
              )
              .default(() => []),
            {
              type: 'list of paths',
              allowed: 'absolute, no `.` or `..` segments',
              meaning:
                'cgroups (with their subtrees) never changed, on top of the built-in deny list (see Safety)',
            },
          ),
        },
        {
          expected: 'a mapping of guardrail settings',
          fix: 'indent cooldown, max_changes_per_minute and deny_cgroups under guardrails:',
        },
      ).prefault({}),
      { default: '', meaning: 'limits on every change (below)' },
    ),
    closed_loop: doc(
      strict(
        {
          window_ticks: doc(
            byDefault(5, (d) =>
              int(1, LIMITS.windowTicksMax, {
                expected: `a whole number of ticks from 1 to ${LIMITS.windowTicksMax}`,
                fix: `write e.g. window_ticks: ${d}`,
              }),
            ),
            { meaning: 'ticks compared before and after each change' },
          ),
          // Below 1: an improvement of 100% or more is out of reach for a lower-is-better metric, so every change
          // would be reverted.
          margin: doc(
            byDefault(0.1, (d) => {
              const e = errorFor({
                expected: 'a number from 0 up to (not including) 1',
                fix: `write e.g. margin: ${d} to keep only changes that improve the metric by 10% or more`,
              });
              return z.number(e).gte(0, e).lt(1, e);
            }),
            {
              allowed: '0 up to (not including) 1',
              meaning:
                'minimum relative improvement of the change\'s objective (median after vs before) to keep it; less is reverted',
            },
          ),
          penalty: doc(
            byDefault(300_000, (d) =>
              duration({
                min: 0,
                max: LIMITS.penaltyMaxMs,
                allowZero: true,
                fix: `use a duration from 0s to 24h, e.g. penalty: ${formatMs(d)}`,
              }),
            ),
            { allowed: '0s to 24h', meaning: 'how long a reverted (rule, target) pair is not tried again' },
          ),
          // 0.5 and above would keep a change the test finds no likelier to have helped than not.
          significance: doc(
            byDefault(0.05, (d) => {
              const e = errorFor({
                expected: 'a number above 0 and below 0.5',
                fix: `write e.g. significance: ${d} to keep only changes shown to help at 95% confidence`,
              });
              return z.number(e).gt(0, e).lt(0.5, e);
            }),
            {
              allowed: 'above 0, below 0.5',
              meaning:
                'largest one-sided p-value of the rank test (per-tick values before vs after) at which a change counts as shown to help; a change is kept only when shown to help **and** at least `margin` better. `explain` shows the interval at 1 − 2 × this level',
            },
          ),
          warmup_ticks: doc(
            byDefault(2, (d) =>
              int(0, LIMITS.windowTicksMax, {
                expected: `a whole number of ticks from 0 to ${LIMITS.windowTicksMax}`,
                fix: `write e.g. warmup_ticks: ${d}`,
              }),
            ),
            {
              meaning:
                'ticks after start-up that never serve as a baseline (the signals\' first, partial windows and the agent\'s own start-up); no forward change is made until a whole baseline after them exists (refusal `BASELINE`)',
            },
          ),
        },
        {
          expected: 'a mapping of closed-loop settings',
          fix: 'indent window_ticks, margin, penalty, significance and warmup_ticks under closed_loop:',
        },
      ).prefault({}),
      { default: '', meaning: 'how each change is judged (below)' },
    ),
    // Absent unless written: a config without the section leaves the default rule in charge.
    strategy: doc(strategy.optional(), {
      default: 'absent (`heuristic`)',
      meaning: 'which strategy decides (below)',
    }),
  },
  { expected: 'a mapping of settings (key: value lines)', fix: 'start the file with top-level keys, e.g. tick: 1s' },
).superRefine((c, ctx) => {
  // Only once the targets themselves are valid, so a bad target is not also reported as an unknown canary.
  const names = new Set(c.targets.map((t) => t.name));
  // The kernel side's per-target arrays are sized at start: a pattern reserves a slot for every match it may have.
  const slots = c.targets.reduce((n, t) => n + (t.cgroup_pattern !== undefined ? (t.max_matches ?? DEFAULT_MAX_MATCHES) : 1), 0);
  if (slots > LIMITS.maxTargets) {
    ctx.addIssue({
      code: 'custom',
      input: c.targets,
      path: ['targets'],
      message: `the targets reserve ${slots} slots (one each, max_matches for a cgroup_pattern), at most ${LIMITS.maxTargets} are supported — fix: lower max_matches or use fewer targets`,
    });
  }
  c.signals.psi.triggers.forEach((t, i) => {
    if (t.target !== undefined && !names.has(t.target)) {
      ctx.addIssue({
        code: 'custom',
        input: t.target,
        path: ['signals', 'psi', 'triggers', i, 'target'],
        message: `${describeValue(t.target)} is not a configured target — fix: name a cgroup target from the targets list, or drop target for host-wide pressure`,
      });
    }
  });
  c.strategy?.canary_targets.forEach((n, i) => {
    if (!names.has(n)) {
      ctx.addIssue({
        code: 'custom',
        input: n,
        path: ['strategy', 'canary_targets', i],
        message: `${describeValue(n)} is not a configured target — fix: name a target from the targets list`,
      });
    }
  });
});

type CamelCase<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;
type UnitSuffix<V> = NonNullable<V> extends InUnit<infer U> ? U : '';

/** The type of `camelValue`'s result: snake_case keys in camelCase, a duration's key with its unit appended. */
export type Camelized<T> = T extends InUnit<DurationUnit>
  ? number
  : T extends readonly (infer E)[]
    ? Camelized<E>[]
    : T extends object
      ? { [K in keyof T as K extends string ? `${CamelCase<K>}${UnitSuffix<T[K]>}` : K]: Camelized<T[K]> }
      : T;

/** `calm_ticks` → `calmTicks`. */
export function camelCase(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** `calmTicks` → `calm_ticks`: a key as the file spells it (no duration unit to drop). */
export function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The unit a duration field is handed on in; undefined for any other field. */
export function durationOf(schema: z.core.$ZodType | undefined) {
  for (let s = schema; s !== undefined; ) {
    const d = durations.get(s);
    if (d !== undefined) return d;
    if (s instanceof z.ZodPipe) s = s.in as z.core.$ZodType;
    else if (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional) s = s.unwrap() as z.core.$ZodType;
    else return undefined;
  }
  return undefined;
}

/** The key a YAML key has in `Config`. */
export function configKey(key: string, schema: z.core.$ZodType | undefined): string {
  return camelCase(key) + (durationOf(schema)?.unit ?? '');
}

/**
 * A parsed document in `Config`'s spelling, key by key as `schema` declares it. A key left out (or written with no
 * value) stays out, so an optional setting is either set or absent.
 */
function camelValue(schema: z.core.$ZodType, value: unknown): unknown {
  const s = unwrap(schema);
  if (s instanceof z.ZodArray && Array.isArray(value)) return value.map((v) => camelValue(s.element as z.core.$ZodType, v));
  if (s instanceof z.ZodObject && isObject(value)) {
    const shape = s.shape as Record<string, z.core.$ZodType>;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v !== undefined) out[configKey(k, shape[k])] = camelValue(shape[k]!, v);
    }
    return out;
  }
  return value;
}

/** `schema`, handing its result on in camelCase; the one place the two spellings meet. */
function camelized<S extends z.ZodType>(schema: S) {
  return schema.transform((value) => camelValue(schema, value) as Camelized<z.output<S>>);
}

/** Validates the parsed YAML document (with absent values as undefined) and yields a Config without `source`. */
export const configSchema = camelized(fileSchema);

/** One problem in a config document, ready to show: `path` like `targets[1].cgroup`, '' for the whole file. */
export interface ConfigIssue {
  path: string;
  message: string;
  /** 1-based position in the file, when the problem can be pinned to one. */
  line?: number;
  column?: number;
}

/** `targets[1].cgroup` from ['targets', 1, 'cgroup']. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      out += /^[A-Za-z_][A-Za-z0-9_-]*$/.test(s) ? (out === '' ? s : `.${s}`) : `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

type Walkable = z.core.$ZodType;

/** The keys the mapping at `path` accepts, or undefined when there is no mapping there. */
export function knownKeysAt(path: readonly PropertyKey[]): string[] | undefined {
  let s: Walkable | undefined = unwrap(configSchema);
  for (const seg of path) {
    if (s instanceof z.ZodObject) s = (s.shape as Record<string, Walkable>)[String(seg)];
    else if (s instanceof z.ZodArray) s = s.element as Walkable;
    else return undefined;
    if (s === undefined) return undefined;
    s = unwrap(s);
  }
  return s instanceof z.ZodObject ? Object.keys(s.shape) : undefined;
}

/** The schema under defaults, optionals and transforms: the mapping, list or value the YAML holds. */
export function unwrap(s: Walkable): Walkable {
  for (;;) {
    if (s instanceof z.ZodPipe) s = s.in as Walkable;
    else if (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional) {
      s = s.unwrap() as Walkable;
    }
    else return s;
  }
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions, the commonest typo. */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  const d: number[][] = Array.from({ length: m + 1 }, (_, i) =>
    Array.from({ length: n + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= m; i++) {
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2][j - 2] + 1);
      d[i][j] = v;
    }
  }
  return d[m][n];
}

/** camelCase, kebab-case and UPPER spellings of a snake_case key all mean that key. */
function asSnake(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[-\s]+/g, '_')
    .toLowerCase();
}

/** The known key the author most likely meant by `key`, or undefined when none is close. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const k = asSnake(key);
  let best: string | undefined;
  let bestD = Infinity;
  for (const cand of known) {
    if (cand === k) return cand;
    // "cooldown_ms" for "cooldown", "max_changes" for "max_changes_per_minute".
    if (k.length >= 3 && (cand.startsWith(`${k}_`) || k.startsWith(`${cand}_`))) {
      if (bestD > 0.5) {
        best = cand;
        bestD = 0.5;
      }
      continue;
    }
    const dist = editDistance(k, cand);
    if (dist <= Math.max(1, Math.floor(cand.length / 3)) && dist < bestD) {
      best = cand;
      bestD = dist;
    }
  }
  return best;
}

function unknownKeyMessage(key: string, known: readonly string[] | undefined): string {
  const guess = known && closestKey(key, known);
  if (guess !== undefined) return `unknown key — fix: did you mean "${guess}"?`;
  if (known && known.length > 0) return `unknown key — fix: remove it; known keys here: ${known.join(', ')}`;
  return 'unknown key — fix: remove it';
}

export interface PathIssue {
  path: PropertyKey[];
  message: string;
}

/** Zod's issues as advice: one issue per unknown key (with a suggestion), paths kept as arrays for locating. */
export function explainIssues(issues: readonly z.core.$ZodIssue[]): PathIssue[] {
  const out: PathIssue[] = [];
  for (const iss of issues) {
    const path = [...iss.path];
    if (iss.code === 'unrecognized_keys') {
      const known = knownKeysAt(path);
      for (const key of iss.keys) out.push({ path: [...path, key], message: unknownKeyMessage(key, known) });
    } else {
      out.push({ path, message: iss.message });
    }
  }
  return out;
}
