/**
 * The one schema for the configuration file. It validates the parsed YAML document (snake_case keys), fills in
 * defaults, and maps it into the camelCase `Config`. Each field states what it expects and how to fix a wrong value,
 * so that every validation issue reads as advice to the person editing the file: "expected …, got … — fix: …".
 *
 * Only the shape and ranges of values are checked here. Whether a cgroup or a process exists is a question about the
 * live system that target resolution answers later.
 */
import { z } from 'zod';
import { DEFAULT_MAX_MATCHES, DEFAULT_STRATEGY, DEFAULTS } from './defaults.js';
import type { Config, TargetConfig } from './types.js';

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

function int(min: number, max: number, h: Hint) {
  const e = errorFor(h);
  return z.number(e).int(e).gte(min, e).lte(max, e);
}

function fraction(h: Hint, opts: { includeOne: boolean }) {
  const e = errorFor(h);
  const n = z.number(e).gt(0, e);
  return opts.includeOne ? n.lte(1, e) : n.lt(1, e);
}

function bool(h: Hint) {
  return z.boolean(errorFor(h));
}

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

/**
 * A duration written as "1s", "250ms", "1.5s", "2m", "1h" or a bare number of milliseconds; the output is whole
 * milliseconds. A bare number inside quotes is refused rather than guessed at, because "30" could have meant seconds.
 */
function duration(opts: { min: number; max: number; allowZero: boolean; fix: string }) {
  const range = `from ${formatMs(opts.min)} to ${formatMs(opts.max)}`;
  return z.unknown().transform((input, ctx): number => {
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
    return Math.round(ms);
  });
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

const target = strict(
  {
    name: (() => {
      const e = errorFor({
        expected: `a name of 1 to ${LIMITS.nameMaxLength} characters from a-z, 0-9, _ and -`,
        fix: 'use lowercase letters, digits, _ or -, e.g. name: db-primary',
      });
      return z.string(e).regex(NAME, e).max(LIMITS.nameMaxLength, e);
    })(),
    role: z.enum(['protect', 'noisy'], errorFor({
      expected: '"protect" or "noisy"',
      fix: 'use protect for the workload to shield, noisy for the one that may be held back',
    })),
    cgroup: absPath({
      expected: 'an absolute cgroup directory path',
      fix: 'write the full path of the cgroup directory, e.g. cgroup: /sys/fs/cgroup/web.slice',
    }).optional(),
    pids: (() => {
      const e = errorFor({ expected: 'a non-empty list of process ids', fix: 'write e.g. pids: [1234, 5678]' });
      return z.array(pid, e).min(1, e).optional();
    })(),
    pidfile: absPath({
      expected: 'an absolute path of a file holding a process id',
      fix: 'write the full path, e.g. pidfile: /run/nginx.pid',
    }).optional(),
    comm: (() => {
      const e = errorFor({
        expected: 'a process name of 1 to 15 characters (as in /proc/<pid>/comm)',
        fix: 'write the name ps shows in its COMMAND column, e.g. comm: postgres',
      });
      return z.string(e).min(1, e).max(15, e).optional();
    })(),
    children: bool({ expected: 'true or false', fix: 'write children: true to follow the processes\' descendants' }).optional(),
    cgroup_pattern: absPath({
      expected: 'an absolute cgroup path whose components may hold the wildcards * ? [...] {a,b}',
      fix: 'write e.g. cgroup_pattern: /sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/*/cri-containerd-*.scope',
    }).optional(),
    max_matches: int(1, LIMITS.maxTargets, {
      expected: `a whole number of cgroups from 1 to ${LIMITS.maxTargets}`,
      fix: `write e.g. max_matches: ${DEFAULT_MAX_MATCHES}`,
    }).optional(),
  },
  {
    expected: 'a mapping with name, role, and one of cgroup, cgroup_pattern, pids, pidfile or comm',
    fix: 'write a target as: - { name: web, role: protect, cgroup: /sys/fs/cgroup/web.slice }',
  },
).superRefine(
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
);

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

const D = DEFAULTS;
const N = DEFAULTS.policy.noisyNeighbor;
const G = DEFAULTS.guardrails;
const L = DEFAULTS.closedLoop;

const noisyNeighbor = strict(
  {
    enabled: bool({ expected: 'true or false', fix: 'write enabled: true or enabled: false' }).default(N.enabled),
    p99_threshold_us: int(1, LIMITS.p99ThresholdMaxUs, {
      expected: `a whole number of microseconds from 1 to ${LIMITS.p99ThresholdMaxUs}`,
      fix: `write e.g. p99_threshold_us: ${N.p99ThresholdUs} for ${N.p99ThresholdUs / 1000} ms`,
    }).default(N.p99ThresholdUs),
    trigger_ticks: int(1, LIMITS.triggerTicksMax, {
      expected: `a whole number of ticks from 1 to ${LIMITS.triggerTicksMax}`,
      fix: `write e.g. trigger_ticks: ${N.triggerTicks}`,
    }).default(N.triggerTicks),
    calm_ticks: int(1, LIMITS.calmTicksMax, {
      expected: `a whole number of ticks from 1 to ${LIMITS.calmTicksMax}`,
      fix: `write e.g. calm_ticks: ${N.calmTicks}`,
    }).default(N.calmTicks),
    calm_fraction: fraction(
      {
        expected: 'a number greater than 0 and at most 1',
        fix: `write e.g. calm_fraction: ${N.calmFraction} (calm means p99 below threshold × calm_fraction)`,
      },
      { includeOne: true },
    ).default(N.calmFraction),
    step_fraction: fraction(
      {
        expected: 'a number greater than 0 and less than 1',
        fix: `write e.g. step_fraction: ${N.stepFraction} (each step multiplies the weight by 1 - step_fraction)`,
      },
      { includeOne: false },
    ).default(N.stepFraction),
    min_weight: int(LIMITS.weightMin, LIMITS.weightMax, {
      expected: `a whole number from ${LIMITS.weightMin} to ${LIMITS.weightMax} (cpu.weight units)`,
      fix: `write e.g. min_weight: ${N.minWeight}`,
    }).default(N.minWeight),
    max_noisy_per_step: int(1, LIMITS.maxTargets, {
      expected: `a whole number from 1 to ${LIMITS.maxTargets}`,
      fix: `write e.g. max_noisy_per_step: ${N.maxNoisyPerStep}`,
    }).default(N.maxNoisyPerStep),
  },
  { expected: 'a mapping of policy settings', fix: 'indent the settings under noisy_neighbor:' },
);

/** A number in [lo, hi], or (lo, hi] when `loOpen`. */
function real(lo: number, hi: number, h: Hint, opts: { loOpen: boolean } = { loOpen: false }) {
  const e = errorFor(h);
  const n = z.number(e);
  return (opts.loOpen ? n.gt(lo, e) : n.gte(lo, e)).lte(hi, e);
}

const PB = DEFAULTS.policy.pressureBackoff;

const pressureBackoff = strict(
  {
    enabled: bool({ expected: 'true or false', fix: 'write enabled: true or enabled: false' }).default(PB.enabled),
    psi_some_avg10_threshold: real(0, 100, {
      expected: 'a percentage greater than 0 and at most 100',
      fix: `write e.g. psi_some_avg10_threshold: ${PB.psiSomeAvg10Threshold} (PSI "some" avg10, percent of time stalled)`,
    }, { loOpen: true }).default(PB.psiSomeAvg10Threshold),
    trigger_ticks: int(1, LIMITS.triggerTicksMax, {
      expected: `a whole number of ticks from 1 to ${LIMITS.triggerTicksMax}`,
      fix: `write e.g. trigger_ticks: ${PB.triggerTicks}`,
    }).default(PB.triggerTicks),
    calm_ticks: int(1, LIMITS.calmTicksMax, {
      expected: `a whole number of ticks from 1 to ${LIMITS.calmTicksMax}`,
      fix: `write e.g. calm_ticks: ${PB.calmTicks}`,
    }).default(PB.calmTicks),
    decrease_factor: fraction(
      {
        expected: 'a number greater than 0 and less than 1',
        fix: `write e.g. decrease_factor: ${PB.decreaseFactor} (each decrease multiplies the quota by it)`,
      },
      { includeOne: false },
    ).default(PB.decreaseFactor),
    increase_step_cpus: real(0.01, 1024, {
      expected: 'a number of CPUs from 0.01 to 1024',
      fix: `write e.g. increase_step_cpus: ${PB.increaseStepCpus}`,
    }).default(PB.increaseStepCpus),
    // The kernel's smallest quota is 1 ms per period: 0.01 CPU at the default 100 ms period.
    floor_cpus: real(0.01, 1024, {
      expected: 'a number of CPUs from 0.01 to 1024',
      fix: `write e.g. floor_cpus: ${PB.floorCpus} for a fifth of one CPU`,
    }).default(PB.floorCpus),
  },
  { expected: 'a mapping of policy settings', fix: 'indent the settings under pressure_backoff:' },
);

const IP = DEFAULTS.policy.ioPrefetch;

const ioPrefetch = strict(
  {
    enabled: bool({ expected: 'true or false', fix: 'write enabled: true or enabled: false' }).default(IP.enabled),
    seq_ratio_threshold: fraction(
      {
        expected: 'a number greater than 0 and at most 1',
        fix: `write e.g. seq_ratio_threshold: ${IP.seqRatioThreshold} (the fraction of reads that must be sequential)`,
      },
      { includeOne: true },
    ).default(IP.seqRatioThreshold),
    max_request_kb: int(1, 65_536, {
      expected: 'a whole number of KiB from 1 to 65536',
      fix: `write e.g. max_request_kb: ${IP.maxRequestKb}`,
    }).default(IP.maxRequestKb),
    min_ios_per_s: real(0, 10_000_000, {
      expected: 'a number of requests per second greater than 0',
      fix: `write e.g. min_ios_per_s: ${IP.minIosPerS}`,
    }, { loOpen: true }).default(IP.minIosPerS),
    trigger_ticks: int(1, LIMITS.triggerTicksMax, {
      expected: `a whole number of ticks from 1 to ${LIMITS.triggerTicksMax}`,
      fix: `write e.g. trigger_ticks: ${IP.triggerTicks}`,
    }).default(IP.triggerTicks),
    calm_ticks: int(1, LIMITS.calmTicksMax, {
      expected: `a whole number of ticks from 1 to ${LIMITS.calmTicksMax}`,
      fix: `write e.g. calm_ticks: ${IP.calmTicks}`,
    }).default(IP.calmTicks),
    read_ahead_kb: int(1, 16_384, {
      expected: 'a whole number of KiB from 1 to 16384',
      fix: `write e.g. read_ahead_kb: ${IP.readAheadKb}`,
    }).default(IP.readAheadKb),
    prefetch_mb: real(0, 1024, {
      expected: 'a number of MiB from 0 to 1024',
      fix: 'write e.g. prefetch_mb: 64, or prefetch_mb: 0 to pre-read nothing',
    }).default(IP.prefetchMb),
  },
  { expected: 'a mapping of policy settings', fix: 'indent the settings under io_prefetch:' },
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

const S = DEFAULT_STRATEGY;

const strategy = strict(
  {
    kind: z.enum(['heuristic', 'learned', 'shadow', 'canary'], errorFor({
      expected: 'one of heuristic, learned, shadow, canary',
      fix: 'write kind: heuristic (the default rule), shadow (learner only reports), canary (learner acts on canary_targets) or learned',
    })).default(S.kind),
    canary_targets: (() => {
      const e = errorFor({
        expected: 'a list of target names',
        fix: 'write e.g. canary_targets: [batch], naming targets from the targets list',
      });
      return z.array(z.string(e).regex(NAME, e).max(LIMITS.nameMaxLength, e), e);
    })().default(() => []),
    seed: int(0, 0xffff_ffff, {
      expected: 'a whole number from 0 to 4294967295',
      fix: `write e.g. seed: ${S.seed}`,
    }).default(S.seed),
    exploration: strict(
      {
        scale: (() => {
          const e = errorFor({
            expected: 'a number greater than 0 and at most 10',
            fix: `write e.g. scale: ${S.exploration.scale} (posterior standard deviations; smaller explores less)`,
          });
          return z.number(e).gt(0, e).lte(10, e);
        })().default(S.exploration.scale),
        decay: fraction(
          {
            expected: 'a number greater than 0 and at most 1',
            fix: `write e.g. decay: ${S.exploration.decay} (1 keeps exploring as much forever)`,
          },
          { includeOne: true },
        ).default(S.exploration.decay),
        min_scale: (() => {
          const e = errorFor({ expected: 'a number from 0 to 10', fix: `write e.g. min_scale: ${S.exploration.minScale}` });
          return z.number(e).gte(0, e).lte(10, e);
        })().default(S.exploration.minScale),
      },
      { expected: 'a mapping of exploration settings', fix: 'indent scale, decay and min_scale under exploration:' },
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

const CS = DEFAULTS.policy.cpusetSpread;
const CPU_LIST = /^$|^\d+(-\d+)?(,\d+(-\d+)?)*$/;

const cpusetSpread = strict(
  {
    enabled: bool({ expected: 'true or false', fix: 'write enabled: true or enabled: false' }).default(CS.enabled),
    mode: z.enum(['affinity', 'cpuset'], errorFor({
      expected: '"affinity" or "cpuset"',
      fix: 'write mode: affinity (each thread\'s CPU affinity) or mode: cpuset (the target\'s cpuset.cpus)',
    })).default(CS.mode),
    min_pileup: int(2, 4096, {
      expected: 'a whole number of threads from 2 to 4096',
      fix: `write e.g. min_pileup: ${CS.minPileup} (runnable threads on one CPU that count as a pile-up)`,
    }).default(CS.minPileup),
    idle_below: fraction(
      {
        expected: 'a number greater than 0 and at most 1',
        fix: `write e.g. idle_below: ${CS.idleBelow} (a CPU busy less than this fraction of a tick counts as idle)`,
      },
      { includeOne: true },
    ).default(CS.idleBelow),
    trigger_ticks: int(1, LIMITS.triggerTicksMax, {
      expected: `a whole number of ticks from 1 to ${LIMITS.triggerTicksMax}`,
      fix: `write e.g. trigger_ticks: ${CS.triggerTicks}`,
    }).default(CS.triggerTicks),
    calm_ticks: int(1, LIMITS.calmTicksMax, {
      expected: `a whole number of ticks from 1 to ${LIMITS.calmTicksMax}`,
      fix: `write e.g. calm_ticks: ${CS.calmTicks}`,
    }).default(CS.calmTicks),
    pin_cpus: (() => {
      const e = errorFor({
        expected: 'a CPU list like "2-3" or "0,2,4", or "" for none',
        fix: 'write e.g. pin_cpus: "2-3" to pin a piled-up target to CPUs 2 and 3, or leave it out to spread instead',
      });
      return z.string(e).regex(CPU_LIST, e);
    })().default(CS.pinCpus),
  },
  { expected: 'a mapping of policy settings', fix: 'indent the settings under cpuset_spread:' },
);

const NR = DEFAULTS.policy.numaRebalance;

const numaRebalance = strict(
  {
    enabled: bool({ expected: 'true or false', fix: 'write enabled: true or enabled: false' }).default(NR.enabled),
    move: z.enum(['cpus', 'memory'], errorFor({
      expected: '"cpus" or "memory"',
      fix: 'write move: cpus (move the CPUs to the memory) or move: memory (migrate the memory to the CPUs)',
    })).default(NR.move),
    remote_threshold: fraction(
      {
        expected: 'a number greater than 0 and at most 1',
        fix: `write e.g. remote_threshold: ${NR.remoteThreshold} (share of memory accesses expected to cross nodes)`,
      },
      { includeOne: true },
    ).default(NR.remoteThreshold),
    dominance: fraction(
      {
        expected: 'a number greater than 0 and at most 1',
        fix: `write e.g. dominance: ${NR.dominance} (share of the memory one node must hold to be its home)`,
      },
      { includeOne: true },
    ).default(NR.dominance),
    calm_fraction: fraction(
      {
        expected: 'a number greater than 0 and at most 1',
        fix: `write e.g. calm_fraction: ${NR.calmFraction} (restore when the home share falls below dominance × calm_fraction)`,
      },
      { includeOne: true },
    ).default(NR.calmFraction),
    min_memory_mb: int(0, 1_000_000_000, {
      expected: 'a whole number of MiB, 0 or more',
      fix: `write e.g. min_memory_mb: ${NR.minMemoryMb}`,
    }).default(NR.minMemoryMb),
    trigger_ticks: int(1, LIMITS.triggerTicksMax, {
      expected: `a whole number of ticks from 1 to ${LIMITS.triggerTicksMax}`,
      fix: `write e.g. trigger_ticks: ${NR.triggerTicks}`,
    }).default(NR.triggerTicks),
    calm_ticks: int(1, LIMITS.calmTicksMax, {
      expected: `a whole number of ticks from 1 to ${LIMITS.calmTicksMax}`,
      fix: `write e.g. calm_ticks: ${NR.calmTicks}`,
    }).default(NR.calmTicks),
    sample_ticks: int(1, 1000, {
      expected: 'a whole number of ticks from 1 to 1000',
      fix: `write e.g. sample_ticks: ${NR.sampleTicks} (numa_maps is read once every this many ticks)`,
    }).default(NR.sampleTicks),
  },
  { expected: 'a mapping of policy settings', fix: 'indent the settings under numa_rebalance:' },
);

/** A signal whose only setting is whether it runs. */
function signalSwitch(name: string, on: boolean) {
  return strict(
    { enabled: bool({ expected: 'true or false', fix: 'write enabled: true or enabled: false' }).default(on) },
    { expected: `a mapping of ${name} settings`, fix: `indent enabled under ${name}:` },
  ).prefault({});
}

/** Which attach variant an eBPF signal uses: `auto` (the cheapest this kernel takes) or one of `kinds`, pinned. */
function attachKind(kinds: readonly string[]) {
  const all = ['auto', ...kinds];
  return errorFor({ expected: all.join(', '), fix: `write attach: auto, or pin a variant, e.g. attach: ${kinds[kinds.length - 1]}` });
}
const btfOrRaw = z.enum(['auto', 'tp_btf', 'raw_tp'], attachKind(['tp_btf', 'raw_tp'])).default('auto');
const futexHook = z
  .enum(['auto', 'sched_switch', 'sched_switch_raw', 'tracepoint', 'tp_btf', 'raw_tp'], attachKind(['sched_switch', 'sched_switch_raw', 'tracepoint', 'tp_btf', 'raw_tp']))
  .default('auto');

/** An eBPF signal's switch and its attach variant (tp_btf or raw_tp). */
function bpfSignal(name: string, on: boolean) {
  return strict(
    { enabled: bool({ expected: 'true or false', fix: 'write enabled: true or enabled: false' }).default(on), attach: btfOrRaw },
    { expected: `a mapping of ${name} settings`, fix: `indent enabled and attach under ${name}:` },
  ).prefault({});
}

/** A PSI trigger; stall and window are durations, handed on in microseconds (the kernel's unit). */
const psiTrigger = strict(
  {
    resource: z.enum(['cpu', 'memory', 'io'], errorFor({ expected: 'cpu, memory or io', fix: 'write e.g. resource: cpu' })),
    kind: z.enum(['some', 'full'], errorFor({ expected: 'some or full', fix: 'write kind: some (any task stalled) or kind: full (all stalled)' })),
    stall: duration({ min: 1, max: 10_000, allowZero: false, fix: 'use a stall time from 1ms up to the window, e.g. stall: 200ms' }),
    window: duration({ min: 500, max: 10_000, allowZero: false, fix: 'use a window from 500ms to 10s, e.g. window: 2s' }),
    target: z.string(errorFor({ expected: 'the name of a cgroup v2 target', fix: 'write e.g. target: web, or leave target out for host-wide pressure' })).optional(),
  },
  { expected: 'a mapping with resource, kind, stall and window', fix: 'write e.g. {resource: cpu, kind: some, stall: 200ms, window: 2s}' },
).superRefine((t, ctx) => {
  if (t.stall > t.window) {
    ctx.addIssue({
      code: 'custom',
      input: t.stall,
      path: ['stall'],
      message: `stall ${formatMs(t.stall)} is longer than the window ${formatMs(t.window)} — fix: use a stall time shorter than the window, e.g. 10% of it`,
    });
  }
});

/** Validates the parsed YAML document (with absent values as undefined) and yields a Config without `source`. */
export const configSchema = strict(
  {
    tick: duration({
      min: LIMITS.tickMinMs,
      max: LIMITS.tickMaxMs,
      allowZero: false,
      fix: `use a duration from ${formatMs(LIMITS.tickMinMs)} to ${formatMs(LIMITS.tickMaxMs)}, e.g. tick: 1s`,
    }).default(D.tickMs),
    ewma_alpha: fraction(
      {
        expected: 'a number greater than 0 and at most 1',
        fix: `write e.g. ewma_alpha: ${D.ewmaAlpha}; smaller values smooth more`,
      },
      { includeOne: true },
    ).default(D.ewmaAlpha),
    signals: strict(
      {
        runqlat: strict(
          {
            enabled: bool({ expected: 'true or false', fix: 'write enabled: true or enabled: false' }).default(
              D.signals.runqlat.enabled,
            ),
            per_thread: bool({ expected: 'true or false', fix: 'write per_thread: true or per_thread: false' }).default(
              D.signals.runqlat.perThread,
            ),
            attach: btfOrRaw,
          },
          { expected: 'a mapping of runqlat settings', fix: 'indent enabled, per_thread and attach under runqlat:' },
        ).prefault({}),
        psi: strict(
          {
            enabled: bool({ expected: 'true or false', fix: 'write enabled: true or enabled: false' }).default(D.signals.psi.enabled),
            triggers: z
              .array(psiTrigger, errorFor({ expected: 'a list of triggers', fix: 'write e.g. triggers: [{resource: cpu, kind: some, stall: 200ms, window: 2s}]' }))
              .default(() => []),
          },
          { expected: 'a mapping of psi settings', fix: 'indent enabled and triggers under psi:' },
        ).prefault({}),
        cgstat: signalSwitch('cgstat', D.signals.cgstat.enabled),
        net: bpfSignal('net', D.signals.net.enabled),
        futex: strict(
          { enabled: bool({ expected: 'true or false', fix: 'write enabled: true or enabled: false' }).default(D.signals.futex.enabled), attach: futexHook },
          { expected: 'a mapping of futex settings', fix: 'indent enabled and attach under futex:' },
        ).prefault({}),
        blkio: bpfSignal('blkio', D.signals.blkio.enabled),
      },
      { expected: 'a mapping of signals', fix: 'indent each signal under signals:, e.g. runqlat:' },
    ).prefault({}),
    targets: targets.default(() => []),
    devices: devices.default(() => []),
    policy: strict(
      {
        noisy_neighbor: noisyNeighbor.prefault({}),
        cpuset_spread: cpusetSpread.prefault({}),
        numa_rebalance: numaRebalance.prefault({}),
        pressure_backoff: pressureBackoff.prefault({}),
        io_prefetch: ioPrefetch.prefault({}),
      },
      { expected: 'a mapping of policies', fix: 'indent each policy under policy:, e.g. noisy_neighbor:' },
    ).prefault({}),
    guardrails: strict(
      {
        cooldown: duration({
          min: 0,
          max: LIMITS.cooldownMaxMs,
          allowZero: true,
          fix: `use a duration from 0s to ${formatMs(LIMITS.cooldownMaxMs)}, e.g. cooldown: ${formatMs(G.cooldownMs)}`,
        }).default(G.cooldownMs),
        max_changes_per_minute: int(1, LIMITS.maxChangesPerMinuteMax, {
          expected: `a whole number from 1 to ${LIMITS.maxChangesPerMinuteMax}`,
          fix: `write e.g. max_changes_per_minute: ${G.maxChangesPerMinute}; to stop all changes, disable the policy instead`,
        }).default(G.maxChangesPerMinute),
        deny_cgroups: z
          .array(
            absPath({
              expected: 'an absolute cgroup directory path',
              fix: 'write the full path, e.g. /sys/fs/cgroup/system.slice',
            }),
            errorFor({ expected: 'a list of cgroup paths', fix: 'write e.g. deny_cgroups: [/sys/fs/cgroup/system.slice]' }),
          )
          .default(() => []),
      },
      {
        expected: 'a mapping of guardrail settings',
        fix: 'indent cooldown, max_changes_per_minute and deny_cgroups under guardrails:',
      },
    ).prefault({}),
    closed_loop: strict(
      {
        window_ticks: int(1, LIMITS.windowTicksMax, {
          expected: `a whole number of ticks from 1 to ${LIMITS.windowTicksMax}`,
          fix: `write e.g. window_ticks: ${L.windowTicks}`,
        }).default(L.windowTicks),
        // Below 1: an improvement of 100% or more is out of reach for a lower-is-better metric, so every change
        // would be reverted.
        margin: (() => {
          const e = errorFor({
            expected: 'a number from 0 up to (not including) 1',
            fix: `write e.g. margin: ${L.margin} to keep only changes that improve the metric by 10% or more`,
          });
          return z.number(e).gte(0, e).lt(1, e);
        })().default(L.margin),
        penalty: duration({
          min: 0,
          max: LIMITS.penaltyMaxMs,
          allowZero: true,
          fix: `use a duration from 0s to 24h, e.g. penalty: ${formatMs(L.penaltyMs)}`,
        }).default(L.penaltyMs),
        // 0.5 and above would keep a change the test finds no likelier to have helped than not.
        significance: (() => {
          const e = errorFor({
            expected: 'a number above 0 and below 0.5',
            fix: `write e.g. significance: ${L.significance} to keep only changes shown to help at 95% confidence`,
          });
          return z.number(e).gt(0, e).lt(0.5, e);
        })().default(L.significance),
        warmup_ticks: int(0, LIMITS.windowTicksMax, {
          expected: `a whole number of ticks from 0 to ${LIMITS.windowTicksMax}`,
          fix: `write e.g. warmup_ticks: ${L.warmupTicks}`,
        }).default(L.warmupTicks),
      },
      {
        expected: 'a mapping of closed-loop settings',
        fix: 'indent window_ticks, margin, penalty, significance and warmup_ticks under closed_loop:',
      },
    ).prefault({}),
    strategy: strategy.optional(),
  },
  { expected: 'a mapping of settings (key: value lines)', fix: 'start the file with top-level keys, e.g. tick: 1s' },
)
  .superRefine((c, ctx) => {
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
  })
  .transform(
  (c): Omit<Config, 'source'> => ({
    tickMs: c.tick,
    ewmaAlpha: c.ewma_alpha,
    signals: {
      runqlat: { enabled: c.signals.runqlat.enabled, perThread: c.signals.runqlat.per_thread, attach: c.signals.runqlat.attach },
      psi: {
        enabled: c.signals.psi.enabled,
        triggers: c.signals.psi.triggers.map((t) => ({
          resource: t.resource,
          kind: t.kind,
          stallUs: t.stall * 1000,
          windowUs: t.window * 1000,
          ...(t.target !== undefined ? { target: t.target } : {}),
        })),
      },
      cgstat: { enabled: c.signals.cgstat.enabled },
      net: { enabled: c.signals.net.enabled, attach: c.signals.net.attach },
      futex: { enabled: c.signals.futex.enabled, attach: c.signals.futex.attach },
      blkio: { enabled: c.signals.blkio.enabled, attach: c.signals.blkio.attach },
    },
    targets: c.targets.map((t): TargetConfig => {
      // Every scope key is carried over: a key dropped here is a target that silently matches nothing.
      const out: TargetConfig = { name: t.name, role: t.role };
      if (t.cgroup !== undefined) out.cgroup = t.cgroup;
      if (t.pids !== undefined) out.pids = [...t.pids];
      if (t.pidfile !== undefined) out.pidfile = t.pidfile;
      if (t.comm !== undefined) out.comm = t.comm;
      if (t.children !== undefined) out.children = t.children;
      if (t.cgroup_pattern !== undefined) {
        out.cgroupPattern = t.cgroup_pattern;
        out.maxMatches = t.max_matches ?? DEFAULT_MAX_MATCHES;
      }
      return out;
    }),
    devices: [...c.devices],
    policy: {
      noisyNeighbor: {
        enabled: c.policy.noisy_neighbor.enabled,
        p99ThresholdUs: c.policy.noisy_neighbor.p99_threshold_us,
        triggerTicks: c.policy.noisy_neighbor.trigger_ticks,
        calmTicks: c.policy.noisy_neighbor.calm_ticks,
        calmFraction: c.policy.noisy_neighbor.calm_fraction,
        stepFraction: c.policy.noisy_neighbor.step_fraction,
        minWeight: c.policy.noisy_neighbor.min_weight,
        maxNoisyPerStep: c.policy.noisy_neighbor.max_noisy_per_step,
      },
      cpusetSpread: {
        enabled: c.policy.cpuset_spread.enabled,
        mode: c.policy.cpuset_spread.mode,
        minPileup: c.policy.cpuset_spread.min_pileup,
        idleBelow: c.policy.cpuset_spread.idle_below,
        triggerTicks: c.policy.cpuset_spread.trigger_ticks,
        calmTicks: c.policy.cpuset_spread.calm_ticks,
        pinCpus: c.policy.cpuset_spread.pin_cpus,
      },
      numaRebalance: {
        enabled: c.policy.numa_rebalance.enabled,
        move: c.policy.numa_rebalance.move,
        remoteThreshold: c.policy.numa_rebalance.remote_threshold,
        dominance: c.policy.numa_rebalance.dominance,
        calmFraction: c.policy.numa_rebalance.calm_fraction,
        minMemoryMb: c.policy.numa_rebalance.min_memory_mb,
        triggerTicks: c.policy.numa_rebalance.trigger_ticks,
        calmTicks: c.policy.numa_rebalance.calm_ticks,
        sampleTicks: c.policy.numa_rebalance.sample_ticks,
      },
      pressureBackoff: {
        enabled: c.policy.pressure_backoff.enabled,
        psiSomeAvg10Threshold: c.policy.pressure_backoff.psi_some_avg10_threshold,
        triggerTicks: c.policy.pressure_backoff.trigger_ticks,
        calmTicks: c.policy.pressure_backoff.calm_ticks,
        decreaseFactor: c.policy.pressure_backoff.decrease_factor,
        increaseStepCpus: c.policy.pressure_backoff.increase_step_cpus,
        floorCpus: c.policy.pressure_backoff.floor_cpus,
      },
      ioPrefetch: {
        enabled: c.policy.io_prefetch.enabled,
        seqRatioThreshold: c.policy.io_prefetch.seq_ratio_threshold,
        maxRequestKb: c.policy.io_prefetch.max_request_kb,
        minIosPerS: c.policy.io_prefetch.min_ios_per_s,
        triggerTicks: c.policy.io_prefetch.trigger_ticks,
        calmTicks: c.policy.io_prefetch.calm_ticks,
        readAheadKb: c.policy.io_prefetch.read_ahead_kb,
        prefetchMb: c.policy.io_prefetch.prefetch_mb,
      },
    },
    guardrails: {
      cooldownMs: c.guardrails.cooldown,
      maxChangesPerMinute: c.guardrails.max_changes_per_minute,
      denyCgroups: [...c.guardrails.deny_cgroups],
    },
    closedLoop: {
      windowTicks: c.closed_loop.window_ticks,
      margin: c.closed_loop.margin,
      penaltyMs: c.closed_loop.penalty,
      significance: c.closed_loop.significance,
      warmupTicks: c.closed_loop.warmup_ticks,
    },
    ...(c.strategy !== undefined
      ? {
          strategy: {
            kind: c.strategy.kind,
            canaryTargets: [...c.strategy.canary_targets],
            seed: c.strategy.seed,
            exploration: {
              scale: c.strategy.exploration.scale,
              decay: c.strategy.exploration.decay,
              minScale: c.strategy.exploration.min_scale,
            },
          },
        }
      : {}),
  }),
);

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

function unwrap(s: Walkable): Walkable {
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
