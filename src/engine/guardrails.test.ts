import { describe, expect, it } from 'vitest';
import type { GuardrailsConfig } from '../config/types.js';
import type { Nudge } from '../core/types.js';
import { Guardrails, type CheckResult } from './guardrails.js';
import { ACTION_BOUNDS } from '../actions/index.js';

const config: GuardrailsConfig = { cooldownMs: 30_000, maxChangesPerMinute: 3, denyCgroups: ['/sys/fs/cgroup/system.slice'] };

const cgroups: Record<string, string> = {
  batch: '/sys/fs/cgroup/work/batch',
  batch2: '/sys/fs/cgroup/work/batch2',
  journald: '/sys/fs/cgroup/system.slice/systemd-journald.service',
  slice: '/sys/fs/cgroup/system.slice/',
  root: '/sys/fs/cgroup',
  v1root: '/sys/fs/cgroup/cpu,cpuacct',
  sneaky: '/sys/fs/cgroup/work/../system.slice/x',
};

function step(target: string, weight = 75, rule = 'noisy-neighbor'): Nudge {
  return { kind: 'set', action: 'cpu_weight', target, desired: { weight }, reason: 'test', rule, evidence: {} };
}

function restore(target: string): Nudge {
  return { kind: 'restore', action: 'cpu_weight', target, desired: { weight: 100 }, reason: 'calm', rule: 'noisy-neighbor', evidence: {} };
}

function guards(extra: ConstructorParameters<typeof Guardrails>[2] = {}, cfg = config): Guardrails {
  return new Guardrails(cfg, ACTION_BOUNDS, { cgroupOf: (t) => cgroups[t], ...extra });
}

const current = { current: { weight: 100 } };
const code = (r: CheckResult): string => (r.ok ? 'ok' : r.code);

describe('Guardrails cooldown', () => {
  it.each<[string, string, number, string]>([
    ['same target inside the cooldown', 'batch', 29_999, 'COOLDOWN'],
    ['same target when the cooldown ends', 'batch', 30_000, 'ok'],
    ['another target is not affected', 'batch2', 1_000, 'ok'],
  ])('%s', (_name, target, at, expected) => {
    const g = guards();
    g.record(step('batch'), 0);
    expect(code(g.check(step(target), at, current))).toBe(expected);
  });

  it('says how long ago and how long the cooldown is', () => {
    const g = guards();
    g.record(step('batch'), 0);
    expect(g.check(step('batch'), 12_000, current)).toEqual({
      ok: false,
      code: 'COOLDOWN',
      reason: 'batch changed 12 s ago; cooldown is 30 s',
    });
  });
});

describe('Guardrails budget', () => {
  const at = (g: Guardrails, times: number[]): Guardrails => {
    times.forEach((t, i) => g.record(step(`t${i}`), t));
    return g;
  };

  it.each<[string, number[], number, number, string]>([
    ['under budget', [0, 10_000], 20_000, 0, 'ok'],
    ['at budget', [0, 10_000, 20_000], 30_000, 0, 'BUDGET'],
    ['the window slides: the oldest change leaves after 60 s', [0, 10_000, 20_000], 60_000, 0, 'ok'],
    ['just before it leaves', [0, 10_000, 20_000], 59_999, 0, 'BUDGET'],
    ['changes in flight count', [0, 10_000], 20_000, 1, 'BUDGET'],
  ])('%s', (_name, times, now, inFlight, expected) => {
    const g = at(guards({}, { ...config, cooldownMs: 0 }), times);
    expect(code(g.check(step('batch'), now, { ...current, inFlight }))).toBe(expected);
  });

  it('reports how much of the budget is used', () => {
    const g = at(guards(), [0, 10_000]);
    expect(g.status(30_000)).toEqual({ paused: false, changesInWindow: 2, maxChangesPerMinute: 3 });
    expect(g.status(65_000)).toMatchObject({ changesInWindow: 1 });
  });
});

describe('Guardrails deny list', () => {
  it.each<[string, string, string[], string]>([
    ['a target named on the deny list', 'batch', ['batch'], 'DENIED'],
    ['a cgroup path on the deny list', 'batch', ['/sys/fs/cgroup/work/batch'], 'DENIED'],
    ['a cgroup under a denied path', 'batch', ['/sys/fs/cgroup/work'], 'DENIED'],
    ['a sibling sharing the prefix is not under it', 'batch2', ['/sys/fs/cgroup/work/batch'], 'ok'],
    ['a cgroup under denyCgroups from the config', 'journald', [], 'DENIED'],
    ['a denied path itself, given with a trailing slash', 'slice', [], 'DENIED'],
    ['a path that escapes with ..', 'sneaky', [], 'DENIED'],
    ['the v2 root cgroup', 'root', [], 'DENIED'],
    ['a v1 controller root', 'v1root', [], 'DENIED'],
    ['a target with no cgroup (pids) and not named', 'pids-only', [], 'ok'],
  ])('%s → %s', (_name, target, deny, expected) => {
    expect(code(guards({ deny }).check(step(target), 0, current))).toBe(expected);
  });
});

describe('Guardrails pause', () => {
  it('refuses changes while paused and allows them after resume', () => {
    const g = guards();
    g.pause('operator request');
    expect(g.paused).toBe(true);
    expect(g.check(step('batch'), 0, current)).toEqual({ ok: false, code: 'PAUSED', reason: 'changes are paused: operator request' });
    expect(g.status(0)).toMatchObject({ paused: true, pauseReason: 'operator request' });
    g.resume();
    expect(g.paused).toBe(false);
    expect(code(g.check(step('batch'), 0, current))).toBe('ok');
  });
});

describe('Guardrails bounds and step', () => {
  const bounds = {
    cpu_weight: { weight: { min: 10, max: 1_000, maxStepFraction: 0.5 } },
    cpu_max: { quotaUs: { min: 1_000, max: 1_000_000, maxStep: 50_000 } },
    nice: { value: { min: -20, max: 19 } },
  };
  const g = (): Guardrails => new Guardrails({ ...config, cooldownMs: 0, maxChangesPerMinute: 100 }, bounds);
  const n = (action: string, desired: Record<string, number | string>): Nudge => ({
    kind: 'set',
    action,
    target: 'batch',
    desired,
    reason: '',
    rule: 'r',
    evidence: {},
  });

  it.each<[string, Nudge, Record<string, number> | undefined, string]>([
    ['inside bounds, small step', n('cpu_weight', { weight: 75 }), { weight: 100 }, 'ok'],
    ['below the minimum is refused, not clamped', n('cpu_weight', { weight: 5 }), { weight: 8 }, 'OUT_OF_BOUNDS'],
    ['above the maximum', n('cpu_weight', { weight: 2_000 }), { weight: 1_000 }, 'OUT_OF_BOUNDS'],
    ['not a number', n('cpu_weight', { weight: Number.NaN }), { weight: 100 }, 'OUT_OF_BOUNDS'],
    ['a relative step too large', n('cpu_weight', { weight: 40 }), { weight: 100 }, 'STEP_TOO_LARGE'],
    ['a relative step at the limit', n('cpu_weight', { weight: 50 }), { weight: 100 }, 'ok'],
    ['an absolute step too large', n('cpu_max', { quotaUs: 100_000 }), { quotaUs: 200_000 }, 'STEP_TOO_LARGE'],
    ['an absolute step within the limit', n('cpu_max', { quotaUs: 150_000 }), { quotaUs: 200_000 }, 'ok'],
    ['a step limit with no current value', n('cpu_weight', { weight: 75 }), undefined, 'NO_CURRENT'],
    ['no step limit needs no current value', n('nice', { value: 5 }), undefined, 'ok'],
    ['an action without declared bounds', n('cpu_pin', { cpus: 3 }), {}, 'UNBOUNDED'],
    ['a knob without declared bounds', n('cpu_weight', { burst: 3 }), {}, 'UNBOUNDED'],
    ['string values are not numeric knobs', n('nice', { policy: 'batch' }), undefined, 'ok'],
  ])('%s → %s', (_name, nudge, cur, expected) => {
    expect(code(g().check(nudge, 0, cur === undefined ? {} : { current: cur }))).toBe(expected);
  });

  it('explains a refused step in words', () => {
    const r = g().check(n('cpu_weight', { weight: 40 }), 0, { current: { weight: 100 } });
    expect(r).toEqual({ ok: false, code: 'STEP_TOO_LARGE', reason: 'cpu_weight.weight 100 → 40 moves 60%, more than the 50% allowed' });
  });
});

describe('Guardrails penalties', () => {
  it('refuses a penalised (rule, target) pair and only that pair', () => {
    const g = guards({ penalties: { penalised: (rule, target, now) => rule === 'noisy-neighbor' && target === 'batch' && now < 100 } });
    expect(code(g.check(step('batch'), 50, current))).toBe('PENALISED');
    expect(code(g.check(step('batch', 75, 'other-rule'), 50, current))).toBe('ok');
    expect(code(g.check(step('batch2'), 50, current))).toBe('ok');
    expect(code(g.check(step('batch'), 100, current))).toBe('ok');
  });
});

describe('Guardrails restores', () => {
  it.each<[string, (g: Guardrails) => void, string]>([
    ['paused', (g) => g.pause(), 'batch'],
    ['in cooldown', (g) => g.record(step('batch'), 0), 'batch'],
    ['over budget', (g) => [0, 1, 2].forEach((i) => g.record(step(`t${i}`), i)), 'batch'],
    ['denied', () => {}, 'journald'],
    ['penalised', () => {}, 'batch'],
  ])('are allowed when %s', (_name, setup, target) => {
    const g = guards({ penalties: { penalised: () => true } });
    setup(g);
    expect(g.check(restore(target), 10, {})).toEqual({ ok: true });
  });

  it('count toward cooldown and budget once applied', () => {
    const g = guards();
    g.record(restore('batch'), 0);
    expect(code(g.check(step('batch'), 1_000, current))).toBe('COOLDOWN');
    expect(g.status(1_000).changesInWindow).toBe(1);
  });
});
