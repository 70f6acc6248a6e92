/**
 * The last word before any knob moves. Whatever a strategy proposes, guardrails keep each change small, spaced out
 * and inside bounds, keep the agent away from targets it must not touch, and stop it altogether when paused.
 *
 * Out-of-bounds values and oversized steps are refused, never clamped: the journal records the nudge exactly as the
 * strategy proposed it, with the reason and evidence computed for that value, and the closed loop judges that value.
 * A clamped write would carry a reason nobody decided. A refusal is loud instead, and points at the strategy or
 * config that disagrees with the bounds.
 *
 * Restores (nudges of kind 'restore') are always allowed, even when paused, denied, penalised or over budget:
 * they move a knob back to a value it held before, toward the state the administrator set, which is always the safe
 * direction. Refusing them would leave the system changed by an agent that has been told to stop.
 */
import path from 'node:path';
import type { GuardrailsConfig } from '../config/types.js';
import type { Nudge } from '../core/types.js';
import type { PenaltySource } from './closed-loop.js';
import { formatPercent } from './format.js';
import type { KnobValues } from './strategy.js';
import type { DeviceScope } from '../block/devices.js';

export interface KnobBounds {
  min: number;
  max: number;
  /** Largest absolute change per nudge, in the knob's units. */
  maxStep?: number;
  /** Largest change per nudge relative to the current value (0.5 = at most half of it). */
  maxStepFraction?: number;
}

/** Per action, per knob key in `desired`: each action declares its own (`Action.bounds`, src/actions). */
export type ActionBounds = Readonly<Record<string, Readonly<Record<string, KnobBounds>>>>;

export type RefusalCode =
  | 'DENIED'
  | 'DEVICE_NOT_IN_SCOPE'
  | 'PAUSED'
  | 'PENALISED'
  | 'UNBOUNDED'
  | 'OUT_OF_BOUNDS'
  | 'NO_CURRENT'
  | 'STEP_TOO_LARGE'
  | 'COOLDOWN'
  | 'BUDGET';

export type CheckResult = { ok: true } | { ok: false; reason: string; code: RefusalCode };

export interface GuardrailsOptions {
  /** Target names and cgroup paths never to change; a path also covers its subtree. Added to config.denyCgroups. */
  deny?: readonly string[];
  /** The cgroup directory a target resolves to, for path-based deny; undefined for targets that are not cgroups. */
  cgroupOf?: (target: string) => string | undefined;
  /** Cgroup roots (never written, their children are fine). Defaults to DEFAULT_CGROUP_ROOTS. */
  cgroupRoots?: readonly string[];
  /** Where penalties from the closed loop come from. */
  penalties?: PenaltySource;
  /**
   * The block devices the agent may change. A nudge naming a device (`desired.major`/`minor`, as io_prefetch's does)
   * is refused unless the device, or the disk it is a partition of, is one of them. Without it (the learner's value
   * checks, replay) devices are not checked here; the KnobWriter, which holds its own device scope, still refuses.
   */
  devices?: DeviceScope;
}

export interface CheckContext {
  /** The knob's current values, for the step limit. */
  current?: KnobValues;
  /** Changes proposed but not yet reported applied or failed; they count against the budget as if done. */
  inFlight?: number;
}

export interface GuardrailsStatus {
  paused: boolean;
  pauseReason?: string;
  changesInWindow: number;
  maxChangesPerMinute: number;
}

const BUDGET_WINDOW_MS = 60_000;

/**
 * The v2 root and the usual v1 controller mounts. On a v2 host a child cgroup with one of these names would be
 * denied too; over-denying is the safe mistake.
 */
export const DEFAULT_CGROUP_ROOTS: readonly string[] = [
  '/sys/fs/cgroup',
  ...[
    'cpu',
    'cpuacct',
    'cpu,cpuacct',
    'cpuacct,cpu',
    'cpuset',
    'memory',
    'blkio',
    'io',
    'pids',
    'devices',
    'freezer',
    'net_cls',
    'net_prio',
    'net_cls,net_prio',
    'perf_event',
    'hugetlb',
    'rdma',
    'misc',
    'systemd',
    'unified',
  ].map((c) => `/sys/fs/cgroup/${c}`),
];

export class Guardrails {
  readonly #config: GuardrailsConfig;
  readonly #bounds: ActionBounds;
  readonly #denyTargets: Set<string>;
  readonly #denyPaths: string[];
  readonly #roots: Set<string>;
  readonly #cgroupOf: ((target: string) => string | undefined) | undefined;
  readonly #penalties: PenaltySource | undefined;
  readonly #devices: DeviceScope | undefined;
  readonly #lastChange = new Map<string, number>();
  /** Times of recorded changes, oldest first, pruned to the budget window. */
  readonly #changes: number[] = [];
  #paused = false;
  #pauseReason: string | undefined;

  constructor(config: GuardrailsConfig, bounds: ActionBounds, options: GuardrailsOptions = {}) {
    this.#config = config;
    this.#bounds = bounds;
    const deny = [...config.denyCgroups, ...(options.deny ?? [])];
    this.#denyTargets = new Set(deny.filter((d) => !d.startsWith('/')));
    this.#denyPaths = deny.filter((d) => d.startsWith('/')).map(normalize);
    this.#roots = new Set((options.cgroupRoots ?? DEFAULT_CGROUP_ROOTS).map(normalize));
    this.#cgroupOf = options.cgroupOf;
    this.#penalties = options.penalties;
    this.#devices = options.devices;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Kill switch: refuse every change except restores until resume(). */
  pause(reason?: string): void {
    this.#paused = true;
    this.#pauseReason = reason;
  }

  resume(): void {
    this.#paused = false;
    this.#pauseReason = undefined;
  }

  check(nudge: Nudge, now: number, ctx: CheckContext = {}): CheckResult {
    if (nudge.kind === 'restore') return { ok: true };

    const denied = this.#denied(nudge.target);
    if (denied !== undefined) return refuse('DENIED', denied);

    if (this.#paused) {
      return refuse('PAUSED', `changes are paused${this.#pauseReason !== undefined ? `: ${this.#pauseReason}` : ''}`);
    }

    if (this.#penalties?.penalised(nudge.rule, nudge.target, now) === true) {
      return refuse('PENALISED', `${nudge.rule} on ${nudge.target} is penalised: its last change there did not help`);
    }

    const knobs = this.#bounds[nudge.action];
    if (knobs === undefined) return refuse('UNBOUNDED', `action ${nudge.action} has no declared bounds`);
    for (const [key, value] of Object.entries(nudge.desired)) {
      if (typeof value !== 'number') continue;
      const b = knobs[key];
      if (b === undefined) return refuse('UNBOUNDED', `${nudge.action}.${key} has no declared bounds`);
      if (!Number.isFinite(value) || value < b.min || value > b.max) {
        return refuse('OUT_OF_BOUNDS', `${nudge.action}.${key} = ${value} is outside [${b.min}, ${b.max}]`);
      }
      if (b.maxStep === undefined && b.maxStepFraction === undefined) continue;
      const cur = ctx.current?.[key];
      if (cur === undefined || !Number.isFinite(cur)) {
        return refuse('NO_CURRENT', `${nudge.action}.${key} on ${nudge.target}: current value unknown, so the step cannot be bounded`);
      }
      const step = Math.abs(value - cur);
      if (b.maxStep !== undefined && step > b.maxStep) {
        return refuse('STEP_TOO_LARGE', `${nudge.action}.${key} ${cur} → ${value} moves ${step}, more than the ${b.maxStep} allowed`);
      }
      if (b.maxStepFraction !== undefined && step > b.maxStepFraction * Math.abs(cur)) {
        return refuse(
          'STEP_TOO_LARGE',
          `${nudge.action}.${key} ${cur} → ${value} moves ${formatPercent(cur === 0 ? 1 : step / Math.abs(cur))}, more than the ${formatPercent(b.maxStepFraction)} allowed`,
        );
      }
    }

    // After the bounds, which check that the numbers can name a device at all.
    const { major, minor } = nudge.desired;
    const dev = `${String(major)}:${String(minor)}`;
    if (this.#devices !== undefined && typeof major === 'number' && typeof minor === 'number' && this.#devices.of(dev) === undefined) {
      const name = this.#devices.nameOf(dev);
      return refuse(
        'DEVICE_NOT_IN_SCOPE',
        `block device ${name === dev ? dev : `${name} (${dev})`} is not among the configured devices (${this.#devices.describe()}), so ` +
          `${nudge.action} only observes it — fix: add it to devices: in the config to let the agent change it`,
      );
    }

    const last = this.#lastChange.get(nudge.target);
    if (last !== undefined && now - last < this.#config.cooldownMs) {
      return refuse(
        'COOLDOWN',
        `${nudge.target} changed ${seconds(now - last)} ago; cooldown is ${seconds(this.#config.cooldownMs)}`,
      );
    }

    this.#prune(now);
    const used = this.#changes.length + (ctx.inFlight ?? 0);
    if (used >= this.#config.maxChangesPerMinute) {
      return refuse(
        'BUDGET',
        `${used} changes in the last 60 s (including in flight) reach the budget of ${this.#config.maxChangesPerMinute}`,
      );
    }
    return { ok: true };
  }

  /**
   * Account for a change that was applied. Restores count too: they are writes, and counting them damps a loop that
   * keeps stepping and restoring the same target.
   */
  record(nudge: Nudge, now: number): void {
    this.#lastChange.set(nudge.target, now);
    this.#changes.push(now);
    this.#prune(now);
  }

  status(now: number): GuardrailsStatus {
    this.#prune(now);
    const s: GuardrailsStatus = {
      paused: this.#paused,
      changesInWindow: this.#changes.length,
      maxChangesPerMinute: this.#config.maxChangesPerMinute,
    };
    if (this.#pauseReason !== undefined) s.pauseReason = this.#pauseReason;
    return s;
  }

  /** Why no change (other than a restore) will ever be allowed on `target`, or undefined when one may be. */
  denied(target: string): string | undefined {
    return this.#denied(target);
  }

  #denied(target: string): string | undefined {
    if (this.#denyTargets.has(target)) return `${target} is on the deny list`;
    const raw = this.#cgroupOf?.(target);
    if (raw === undefined) return undefined;
    const cg = normalize(raw);
    if (this.#roots.has(cg)) return `${target} is the root cgroup ${cg}`;
    for (const d of this.#denyPaths) {
      if (cg === d || cg.startsWith(`${d}/`)) return `${target} (${cg}) is under denied cgroup ${d}`;
    }
    return undefined;
  }

  #prune(now: number): void {
    let drop = 0;
    while (drop < this.#changes.length && now - this.#changes[drop]! >= BUDGET_WINDOW_MS) drop++;
    if (drop > 0) this.#changes.splice(0, drop);
  }
}

function refuse(code: RefusalCode, reason: string): CheckResult {
  return { ok: false, code, reason };
}

function normalize(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function seconds(ms: number): string {
  return `${String(Number((ms / 1000).toFixed(1)))} s`;
}
