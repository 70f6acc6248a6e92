/**
 * cpu_weight: a cgroup's share of CPU time under contention. On cgroup v2 that is `cpu.weight` (1–10000, default
 * 100); on v1 it is `cpu.shares` (2–262144, default 1024). Everything above the knob speaks weight units; the one
 * mapping between them is the kernel's own (sched_weight_from_cgroup / sched_weight_to_cgroup), so a weight set
 * here means on v1 exactly what the same number written to cpu.weight means on v2.
 *
 * Below the smallest weight there is `cpu.idle` (Linux 5.15+, v1 and v2): 1 runs the group's tasks as SCHED_IDLE
 * against their siblings, which a waking task preempts at once. The kernel couples the two knobs — an idle group has
 * the idle weight and refuses another (EINVAL), and leaving idle resets the weight to the default — so both belong
 * to this one action: `{ idle: 1 }`, `{ idle: 0, weight }`, or `{ weight }` while not idle.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TunerError } from '../../core/errors.js';
import type { KnobRef, Target } from '../../core/types.js';
import { kernelKnobIO, normalizeKnobValue, type KnobIO } from '../../cgroup/cgroup.js';
import { applyPlan, desiredNumber, revertKnobs, type Action, type ActionPlan, type Desired, type PlannedChange } from '../action.js';
import { cpuWeightArm } from './learner-arm.js';

export const CPU_WEIGHT = { min: 1, max: 10_000, default: 100 } as const;
export const CPU_SHARES = { min: 2, max: 262_144, default: 1024 } as const;

const NAME = 'cpu_weight';

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/** v2 weight → v1 shares: round(weight × 1024 / 100), the kernel's DIV_ROUND_CLOSEST, clamped to the shares range. */
export function weightToShares(weight: number): number {
  return clamp(Math.round((clampWeight(weight) * CPU_SHARES.default) / CPU_WEIGHT.default), CPU_SHARES.min, CPU_SHARES.max);
}

/** v1 shares → v2 weight: round(shares × 100 / 1024), clamped to the weight range. Exact inverse of weightToShares. */
export function sharesToWeight(shares: number): number {
  return clamp(Math.round((shares * CPU_WEIGHT.default) / CPU_SHARES.default), CPU_WEIGHT.min, CPU_WEIGHT.max);
}

/** A weight as the knob accepts it: an integer in 1..10000. */
export function clampWeight(weight: number): number {
  return clamp(Math.round(weight), CPU_WEIGHT.min, CPU_WEIGHT.max);
}

function cgroupScope(target: Target, verb: string): { path: string; version: 1 | 2 } {
  if (target.scope.kind !== 'cgroup') {
    throw new TunerError(
      'CONFIG_INVALID',
      `${verb} ${NAME} for target ${target.name}: the target is a list of pids, and ${NAME} acts on cgroups — give the target a cgroup in the config`,
    );
  }
  return target.scope;
}

function knobFor(target: Target, verb: string): KnobRef & { version: 1 | 2 } {
  const { path: dir, version } = cgroupScope(target, verb);
  const file = path.join(dir, version === 2 ? 'cpu.weight' : 'cpu.shares');
  return { id: `${NAME}:${file}`, path: file, target: target.name, version };
}

function idleKnobFor(target: Target, verb: string): KnobRef | undefined {
  const dir = cgroupScope(target, verb).path;
  const file = path.join(dir, 'cpu.idle');
  return fs.existsSync(file) ? { id: `${NAME}:${file}`, path: file, target: target.name } : undefined;
}

function parseInteger(text: string, file: string): number {
  const s = normalizeKnobValue(text);
  const n = Number(s);
  if (s === '' || !Number.isSafeInteger(n)) {
    throw new TunerError('ACTION_FAILED', `read ${file}: expected an integer, found ${JSON.stringify(text)}`);
  }
  return n;
}

export function createCpuWeightAction(io: KnobIO = kernelKnobIO): Action {
  const readWeight = (target: Target, verb: string): { knob: KnobRef & { version: 1 | 2 }; raw: string; weight: number } => {
    const knob = knobFor(target, verb);
    const raw = io.read(knob.path);
    const n = parseInteger(raw, knob.path);
    // An idle group's cpu.weight reads 0 on some kernels (6.1): below the range, so the smallest weight.
    return { knob, raw, weight: knob.version === 2 ? Math.max(CPU_WEIGHT.min, n) : sharesToWeight(n) };
  };
  const readIdle = (target: Target, verb: string): { knob: KnobRef; raw: string; idle: number } | undefined => {
    const knob = idleKnobFor(target, verb);
    if (knob === undefined) return undefined;
    const raw = io.read(knob.path);
    return { knob, raw, idle: parseInteger(raw, knob.path) };
  };

  const weightRef = (target: Target, verb: string): KnobRef => {
    const { version: _v, ...knob } = knobFor(target, verb);
    return knob;
  };
  // The weight first: it is the action's main knob.
  const knobs = (target: Target): KnobRef[] => {
    const idle = idleKnobFor(target, 'list knobs of');
    return [weightRef(target, 'list knobs of'), ...(idle !== undefined ? [idle] : [])];
  };

  return {
    name: NAME,
    learnerArms: [cpuWeightArm],
    bounds: {
      // cgroup v2 cpu.weight accepts 1..10000; halving or growing by half per nudge is the most one step may do.
      weight: { min: 1, max: 10_000, maxStepFraction: 0.5 },
      // A switch: off or on.
      idle: { min: 0, max: 1 },
    },

    knobs,

    read(target: Target): Record<string, number> {
      const idle = readIdle(target, 'read');
      return { weight: readWeight(target, 'read').weight, ...(idle !== undefined ? { idle: idle.idle } : {}) };
    },

    plan(target: Target, desired: Desired): ActionPlan {
      const what = `plan ${NAME} for target ${target.name}`;
      const askedIdle = desired.idle === undefined ? undefined : desiredNumber(NAME, target, desired, 'idle');
      const asked = askedIdle === undefined || desired.weight !== undefined ? desiredNumber(NAME, target, desired, 'weight') : undefined;
      if (askedIdle !== undefined && askedIdle !== 0 && askedIdle !== 1) {
        throw new TunerError('ACTION_FAILED', `${what}: desired.idle must be 0 or 1 (cpu.idle), got ${askedIdle}`);
      }
      const { knob, raw } = readWeight(target, 'plan');
      const idle = readIdle(target, 'plan');
      if (askedIdle !== undefined && idle === undefined) {
        throw new TunerError(
          'ACTION_FAILED',
          `${what}: ${path.dirname(knob.path)} has no cpu.idle — the kernel has it since Linux 5.15; below the smallest weight there is nothing to step to here`,
        );
      }
      const idleNow = idle?.idle ?? 0;
      const idleAfter = askedIdle ?? idleNow;
      const { version: _v, ...ref } = knob;
      const changes: PlannedChange[] = [];
      const notes: string[] = [];
      if (idle !== undefined && askedIdle !== undefined && askedIdle !== idleNow) {
        // The kernel rewrites the weight with it: journal the weight first, so a restore brings it back.
        changes.push({ knob: idle.knob, from: idle.raw, to: String(askedIdle), rewrites: [ref] });
      }
      const out: Desired = askedIdle !== undefined ? { idle: askedIdle } : {};
      if (asked !== undefined) {
        if (idleAfter === 1 && askedIdle === undefined) {
          throw new TunerError(
            'ACTION_FAILED',
            `${what}: ${idle!.knob.path} is 1, and the kernel refuses a weight for an idle group (EINVAL) — ask for idle 0 together with the weight`,
          );
        }
        if (idleAfter === 1) {
          notes.push(`weight ${asked} not written: an idle group has the kernel's idle weight`);
        } else {
          const weight = clampWeight(asked);
          if (weight !== asked) notes.push(`weight ${asked} adjusted to ${weight} (cpu.weight takes integers ${CPU_WEIGHT.min}..${CPU_WEIGHT.max})`);
          const to = String(knob.version === 2 ? weight : weightToShares(weight));
          // Leaving idle resets the weight to the default before ours is written.
          const from = idleNow === 1 ? String(knob.version === 2 ? CPU_WEIGHT.default : CPU_SHARES.default) : raw;
          if (normalizeKnobValue(from) !== to) changes.push({ knob: ref, from, to });
          out.weight = weight;
        }
      }
      return { action: NAME, target: target.name, desired: out, changes, notes };
    },

    apply: applyPlan,

    revert(target, writer) {
      // cpu.idle first: putting it back resets the weight, which is then put back over that.
      return revertKnobs([...knobs(target)].reverse(), writer);
    },
  };
}

export const cpuWeight: Action = createCpuWeightAction();
