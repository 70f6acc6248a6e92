/**
 * cpu_weight: a cgroup's share of CPU time under contention. On cgroup v2 that is `cpu.weight` (1–10000, default
 * 100); on v1 it is `cpu.shares` (2–262144, default 1024). Everything above the knob speaks weight units; the one
 * mapping between them is the kernel's own (sched_weight_from_cgroup / sched_weight_to_cgroup), so a weight set
 * here means on v1 exactly what the same number written to cpu.weight means on v2.
 */
import path from 'node:path';
import { TunerError } from '../../core/errors.js';
import type { KnobRef, Target } from '../../core/types.js';
import { kernelKnobIO, normalizeKnobValue, type KnobIO } from '../../cgroup/cgroup.js';
import { applyPlan, desiredNumber, revertKnobs, type Action, type ActionPlan, type Desired } from '../action.js';

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
    return { knob, raw, weight: knob.version === 2 ? n : sharesToWeight(n) };
  };

  const knobs = (target: Target): KnobRef[] => {
    const { version: _v, ...knob } = knobFor(target, 'list knobs of');
    return [knob];
  };

  return {
    name: NAME,
    // cgroup v2 cpu.weight accepts 1..10000; halving or growing by half per nudge is the most one step may do.
    bounds: { weight: { min: 1, max: 10_000, maxStepFraction: 0.5 } },

    knobs,

    read(target: Target): Record<string, number> {
      return { weight: readWeight(target, 'read').weight };
    },

    plan(target: Target, desired: Desired): ActionPlan {
      const asked = desiredNumber(NAME, target, desired, 'weight');
      const { knob, raw } = readWeight(target, 'plan');
      const weight = clampWeight(asked);
      const notes = weight !== asked ? [`weight ${asked} adjusted to ${weight} (cpu.weight takes integers ${CPU_WEIGHT.min}..${CPU_WEIGHT.max})`] : [];
      const to = String(knob.version === 2 ? weight : weightToShares(weight));
      const { version: _v, ...ref } = knob;
      return {
        action: NAME,
        target: target.name,
        desired: { weight },
        changes: normalizeKnobValue(raw) === to ? [] : [{ knob: ref, from: raw, to }],
        notes,
      };
    },

    apply: applyPlan,

    revert(target, writer) {
      return revertKnobs(knobs(target), writer);
    },
  };
}

export const cpuWeight: Action = createCpuWeightAction();
