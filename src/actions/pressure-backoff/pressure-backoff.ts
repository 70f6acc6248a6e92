/**
 * pressure_backoff: caps a noisy cgroup's CPU bandwidth so that the rest of the host (or a protected workload) stops
 * stalling on it. The knob is the CFS quota: `cpu.max` ("QUOTA PERIOD", or "max PERIOD" for unlimited) on cgroup v2,
 * `cpu.cfs_quota_us` (-1 for unlimited) with the period from `cpu.cfs_period_us` on v1. Everything above the knob
 * speaks CPUs: `{ quotaCpus: 0.5 }` is half of one CPU per period, whatever the period is.
 *
 * Alongside the cap it publishes a concurrency hint for applications that cooperate: how many workers the target can
 * keep busy under its quota, as `<state dir>/hints/<target>.json` (written atomically), through
 * `concurrencyHints()` for the HTTP API, and as an event on `tuner:actions:hint`. A hint lives exactly as long as
 * the quota it describes: it is cleared when the quota is restored, taken over by another writer, or vanishes.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { channels, publish, type KnobEvent } from '../../core/events.js';
import { TunerError, errnoCode } from '../../core/errors.js';
import type { KnobRef, Target } from '../../core/types.js';
import { kernelKnobIO, normalizeKnobValue, type KnobIO } from '../../cgroup/cgroup.js';
import { applyPlan, revertKnobs, type Action, type ActionPlan, type ApplyResult, type Desired } from '../action.js';
import type { KnobWriter } from '../knob-writer.js';
import { pressureBackoffArm } from './learner-arm.js';

export const PRESSURE_BACKOFF_ACTION = 'pressure_backoff';
const NAME = PRESSURE_BACKOFF_ACTION;

/** The kernel refuses a quota below 1 ms per period (EINVAL). */
export const MIN_QUOTA_US = 1000;

/** What a cooperating application may read to size its worker pool. */
export interface Hint {
  target: string;
  /** Workers the target can keep busy under its quota: floor(quotaCpus), at least 1. */
  suggestedConcurrency: number;
  /** The quota in CPUs (quota / period). */
  quotaCpus: number;
  reason: string;
  /** ms since the epoch. */
  time: number;
}

/** Payload of `tuner:actions:hint`. */
export interface HintEvent {
  kind: 'set' | 'cleared';
  target: string;
  /** The hint now in force (kind 'set'). */
  hint?: Hint;
  time: number;
}

export const hintChannel = diagnostics_channel.channel('tuner:actions:hint');

/** The hint a quota implies. */
export function suggestedConcurrency(quotaCpus: number): number {
  // The epsilon keeps 2.9999999 (a quota that round-trips through microseconds) from becoming 2.
  return Math.max(1, Math.floor(quotaCpus + 1e-9));
}

interface Held {
  hint: Hint;
  /** Where the hint file was written; undefined when the hint could not be stored. */
  file: string | undefined;
  knobPath: string;
  /** The knob's value the hint describes, normalized. */
  knobValue: string;
  io: KnobIO;
}

/** Process-wide, like the knobs they describe: one hint per target name. */
const hints = new Map<string, Held>();
let watchingKnobs = false;

function onKnobEvent(msg: unknown): void {
  const e = msg as KnobEvent;
  if (e.action !== NAME || (e.kind !== 'restored' && e.kind !== 'overridden' && e.kind !== 'vanished')) return;
  for (const [target, h] of hints) if (h.knobPath === e.path) clearHint(target);
}

// Percent-encoded, so a pattern target's name (`<name>/<cgroup below the pattern>`) stays one file name.
const TARGET_FILE = /^[A-Za-z0-9_.%-]{1,255}$/;

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

function setHint(writer: KnobWriter, hint: Hint, knobPath: string, knobValue: string, io: KnobIO): void {
  if (!watchingKnobs) {
    channels.knob.subscribe(onKnobEvent);
    watchingKnobs = true;
  }
  let file: string | undefined;
  // Target names are checked by the config schema; a name that could leave the hints directory gets no file.
  const base = encodeURIComponent(hint.target);
  if (TARGET_FILE.test(base) && base !== '.' && base !== '..') {
    const dir = path.join(writer.stateDir, 'hints');
    file = path.join(dir, `${base}.json`);
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
      writeAtomically(file, JSON.stringify(hint) + '\n');
    } catch {
      // The quota is in force whether or not the hint could be stored; the hint still reaches the API and the bus.
      file = undefined;
    }
  }
  hints.set(hint.target, { hint, file, knobPath, knobValue: normalizeKnobValue(knobValue), io });
  publish(hintChannel, () => ({ kind: 'set', target: hint.target, hint: { ...hint }, time: hint.time }) satisfies HintEvent);
}

function clearHint(target: string): void {
  const h = hints.get(target);
  if (h === undefined) return;
  hints.delete(target);
  if (h.file !== undefined) {
    try {
      fs.unlinkSync(h.file);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
  }
  publish(hintChannel, () => ({ kind: 'cleared', target, time: Date.now() }) satisfies HintEvent);
}

/**
 * The concurrency hints in force, by target. Each is checked against its knob first: one whose quota is no longer
 * there (restored by a stop, changed by someone else) is dropped, file and all.
 */
export function concurrencyHints(): Record<string, Hint> {
  const out: Record<string, Hint> = {};
  for (const [target, h] of [...hints]) {
    let now: string | undefined;
    try {
      now = normalizeKnobValue(h.io.read(h.knobPath));
    } catch {
      now = undefined;
    }
    if (now !== h.knobValue) {
      clearHint(target);
      continue;
    }
    out[target] = { ...h.hint };
  }
  return out;
}

/** Remove every hint file in a state directory, e.g. those a crashed run left behind before its quotas were restored. */
export function clearConcurrencyHints(stateDir: string): void {
  const dir = path.join(path.resolve(stateDir), 'hints');
  for (const [target, h] of [...hints]) if (h.file !== undefined && path.dirname(h.file) === dir) clearHint(target);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.endsWith('.json') || n.endsWith('.tmp')) fs.rmSync(path.join(dir, n), { force: true });
}

interface QuotaKnob extends KnobRef {
  version: 1 | 2;
  /** v1 only: the period file, read to convert µs into CPUs. */
  periodPath?: string;
}

/** The knob's state in the action's units plus what is needed to write it. */
export interface QuotaState {
  /** quota / period; for an unlimited knob, the CPUs the host has (the most the cgroup could use). */
  quotaCpus: number;
  unlimited: boolean;
  periodUs: number;
}

function parseNumber(text: string, file: string, what: string): number {
  const n = Number(text);
  if (text === '' || !Number.isSafeInteger(n)) {
    throw new TunerError('ACTION_FAILED', `read ${file}: expected ${what}, found ${JSON.stringify(text)}`);
  }
  return n;
}

export interface PressureBackoffOptions {
  io?: KnobIO;
  /** CPUs an unlimited cgroup can use; default os.availableParallelism(). */
  hostCpus?: number;
  /** The clock for hint times. */
  now?: () => number;
}

export function createPressureBackoffAction(opts: PressureBackoffOptions = {}): Action & {
  decode(target: Target, raw: string): Record<string, number>;
} {
  const io = opts.io ?? kernelKnobIO;
  const hostCpus = opts.hostCpus ?? os.availableParallelism();
  const clock = opts.now ?? Date.now;

  const knobFor = (target: Target, verb: string): QuotaKnob => {
    if (target.scope.kind !== 'cgroup') {
      throw new TunerError(
        'CONFIG_INVALID',
        `${verb} ${NAME} for target ${target.name}: the target is a list of pids, and a CPU quota belongs to a cgroup — give the target a cgroup in the config`,
      );
    }
    const { path: dir, version } = target.scope;
    const file = path.join(dir, version === 2 ? 'cpu.max' : 'cpu.cfs_quota_us');
    const k: QuotaKnob = { id: `${NAME}:${file}`, path: file, target: target.name, version };
    if (version === 1) k.periodPath = path.join(dir, 'cpu.cfs_period_us');
    return k;
  };

  const parse = (k: QuotaKnob, raw: string): QuotaState => {
    const s = normalizeKnobValue(raw);
    let quota: number | 'max';
    let period: number;
    if (k.version === 2) {
      const [q, p, ...rest] = s.split(' ');
      if (q === undefined || p === undefined || rest.length > 0) {
        throw new TunerError('ACTION_FAILED', `read ${k.path}: expected "QUOTA PERIOD" or "max PERIOD", found ${JSON.stringify(raw)}`);
      }
      quota = q === 'max' ? 'max' : parseNumber(q, k.path, 'a quota in µs or max');
      period = parseNumber(p, k.path, 'a period in µs');
    } else {
      const q = parseNumber(s, k.path, 'a quota in µs or -1');
      quota = q < 0 ? 'max' : q;
      period = parseNumber(normalizeKnobValue(io.read(k.periodPath!)), k.periodPath!, 'a period in µs');
    }
    if (period <= 0) throw new TunerError('ACTION_FAILED', `read ${k.version === 2 ? k.path : k.periodPath}: period ${period} is not positive`);
    return quota === 'max'
      ? { quotaCpus: hostCpus, unlimited: true, periodUs: period }
      : { quotaCpus: quota / period, unlimited: false, periodUs: period };
  };

  const units = (q: QuotaState): Record<string, number> => ({ quotaCpus: q.quotaCpus, unlimited: q.unlimited ? 1 : 0 });

  const format = (k: QuotaKnob, quotaUs: number | 'max', periodUs: number): string =>
    k.version === 2 ? `${quotaUs} ${periodUs}` : quotaUs === 'max' ? '-1' : String(quotaUs);

  const knobs = (target: Target): KnobRef[] => {
    const { id, path: p, target: t } = knobFor(target, 'list knobs of');
    return [{ id, path: p, target: t }];
  };

  /** The target a plan was made for and the knob value it leads to, for the hint apply publishes. */
  const planned = new WeakMap<ActionPlan, { knob: QuotaKnob; to: string; unlimited: boolean; quotaCpus: number; cause?: string }>();

  return {
    name: NAME,
    learnerArms: [() => pressureBackoffArm()],
    // CPUs. No step limit: AIMD halves on the way down and adds a fixed step on the way up, which no single relative
    // or absolute bound fits; the floor (the kernel's 1 ms per 100 ms period) and the rule's own steps keep it small.
    bounds: { quotaCpus: { min: 0.01, max: 4096 } },
    // Hint files a crashed run left behind describe quotas its restore has since put back.
    start: (ctx) => clearConcurrencyHints(ctx.stateDir),

    knobs,

    read(target: Target): Record<string, number> {
      const k = knobFor(target, 'read');
      return units(parse(k, io.read(k.path)));
    },

    decode(target: Target, raw: string): Record<string, number> {
      return units(parse(knobFor(target, 'decode'), raw));
    },

    plan(target: Target, desired: Desired): ActionPlan {
      const k = knobFor(target, 'plan');
      const raw = io.read(k.path);
      const cur = parse(k, raw);
      const notes: string[] = [];
      const cause = typeof desired.cause === 'string' ? desired.cause : undefined;
      let to: string;
      let out: Desired;
      let quotaCpus: number;
      const unlimited = desired.unlimited === 1;
      if (unlimited) {
        to = format(k, 'max', cur.periodUs);
        quotaCpus = hostCpus;
        out = { quotaCpus, unlimited: 1 };
      } else {
        const asked = desired.quotaCpus;
        if (typeof asked !== 'number' || !Number.isFinite(asked) || asked <= 0) {
          throw new TunerError(
            'ACTION_FAILED',
            `plan ${NAME} for target ${target.name}: desired.quotaCpus must be a positive number of CPUs (or desired.unlimited 1), got ${JSON.stringify(asked)}`,
          );
        }
        let quotaUs = Math.round(asked * cur.periodUs);
        if (quotaUs < MIN_QUOTA_US) {
          notes.push(`quota ${asked} CPUs is below the kernel's minimum of ${MIN_QUOTA_US} µs per ${cur.periodUs} µs period; raised to it`);
          quotaUs = MIN_QUOTA_US;
        }
        to = format(k, quotaUs, cur.periodUs);
        quotaCpus = quotaUs / cur.periodUs;
        out = { quotaCpus, unlimited: 0 };
      }
      if (cause !== undefined) out.cause = cause;
      const { version: _v, periodPath: _p, ...ref } = k;
      const plan: ActionPlan = {
        action: NAME,
        target: target.name,
        desired: out,
        changes: normalizeKnobValue(raw) === to ? [] : [{ knob: ref, from: raw, to }],
        notes,
      };
      planned.set(plan, { knob: k, to, unlimited, quotaCpus, ...(cause !== undefined ? { cause } : {}) });
      return plan;
    },

    apply(plan: ActionPlan, writer: KnobWriter): ApplyResult {
      const res = applyPlan(plan, writer);
      const p = planned.get(plan);
      if (p === undefined || writer.dryRun) return res;
      if (res.overridden || p.unlimited) {
        clearHint(plan.target);
        return res;
      }
      // Written now or already in place (e.g. kept across a restart): either way the quota is ours and in force.
      const quota = p.quotaCpus.toFixed(2);
      setHint(
        writer,
        {
          target: plan.target,
          suggestedConcurrency: suggestedConcurrency(p.quotaCpus),
          quotaCpus: p.quotaCpus,
          reason: p.cause !== undefined ? `${p.cause}; CPU quota ${quota} CPUs` : `CPU quota lowered to ${quota} CPUs to relieve pressure`,
          time: clock(),
        },
        p.knob.path,
        p.to,
        io,
      );
      return res;
    },

    revert(target, writer) {
      const items = revertKnobs(knobs(target), writer);
      if (!writer.dryRun) clearHint(target.name);
      return items;
    },
  };
}

export const pressureBackoff = createPressureBackoffAction();
