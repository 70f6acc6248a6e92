import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load.js';
import { DEFAULTS } from '../../config/defaults.js';
import type { PressureBackoffPolicy } from '../../config/types.js';
import type { TargetSignals, TickSnapshot } from '../../core/types.js';
import { Guardrails } from '../guardrails.js';
import type { StrategyHold } from '../holds.js';
import { type DecideInput, type StrategyNudge, type StrategyTarget } from '../strategy.js';
import {
  PRESSURE_BACKOFF_ACTION,
  PressureBackoffRule,
  decreaseObjective,
  decreaseQuota,
  increaseQuota,
  worstPressure,
} from './pressure-backoff.js';
import { psiResource, runqlatWindow } from '../../signals/windows.js';
import { ACTION_BOUNDS } from '../../actions/index.js';

// The defaults, with a short calm streak.
const policy: PressureBackoffPolicy = { ...DEFAULTS.policy.pressureBackoff, calmTicks: 6 };

const targets: StrategyTarget[] = [
  { name: 'web', role: 'protect' },
  { name: 'batch', role: 'noisy' },
  { name: 'backup', role: 'noisy' },
];

type Psi = Partial<Record<'cpu' | 'memory' | 'io', number>>;
const resources = (p: Psi) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, psiResource({ someAvg10: v, someAvg60: v, fullAvg10: 0 })]));

interface Tick {
  host?: Psi;
  web?: Psi;
  /** CPUs used in the window per noisy target. */
  usage?: Record<string, number>;
}

function snapshot(i: number, t: Tick): TickSnapshot {
  const out: Record<string, TargetSignals> = { web: { name: 'web', role: 'protect' } };
  if (t.web) out.web!.psi = { host: {}, ...resources(t.web) };
  for (const [name, cpus] of Object.entries(t.usage ?? { batch: 1.8, backup: 0.3 })) {
    out[name] = {
      name,
      role: 'noisy',
      runqlat: runqlatWindow({ count: 10, p50: 1, p90: 1, p99: 1, mean: 1, p99Ewma: 1, waitUs: 0, oncpuUs: cpus * 1_000_000 }),
    };
  }
  const s: TickSnapshot = { time: 1_000 * (i + 1), windowMs: 1_000, targets: out };
  if (t.host) s.host = { psi: resources(t.host) };
  return s;
}

/** A host with `hostCpus` CPUs whose noisy targets start unlimited; nudges are applied to it as the agent would. */
class SimulatedKnobs {
  quota = new Map<string, number | 'max'>();
  original = new Map<string, number | 'max'>();
  constructor(readonly hostCpus = 2) {}
  current(t: string): Record<string, number> | undefined {
    if (t === 'web') return undefined;
    const q = this.quota.get(t) ?? 'max';
    return q === 'max' ? { quotaCpus: this.hostCpus, unlimited: 1 } : { quotaCpus: q, unlimited: 0 };
  }
  apply(n: StrategyNudge): void {
    if (!this.original.has(n.target)) this.original.set(n.target, this.quota.get(n.target) ?? 'max');
    if (n.kind === 'restore') {
      this.quota.set(n.target, this.original.get(n.target)!);
      this.original.delete(n.target);
    } else this.quota.set(n.target, n.desired.quotaCpus as number);
  }
  input(snap: TickSnapshot, history: TickSnapshot[], tgts = targets): DecideInput {
    return {
      now: snap.time,
      snapshot: snap,
      history,
      targets: tgts,
      current: (t, a) => (a === PRESSURE_BACKOFF_ACTION ? this.current(t) : undefined),
      changed: (t) => this.original.has(t),
      original: (t) => {
        const o = this.original.get(t);
        return o === undefined ? undefined : o === 'max' ? { quotaCpus: this.hostCpus, unlimited: 1 } : { quotaCpus: o, unlimited: 0 };
      },
    };
  }
}

/** Runs the rule over the ticks, applying every nudge; returns each tick's nudges. */
function run(ticks: Tick[], knobs = new SimulatedKnobs(), p = policy, tgts = targets): StrategyNudge[][] {
  const rule = new PressureBackoffRule(p);
  const snaps = ticks.map((t, i) => snapshot(i, t));
  return snaps.map((s, i) => {
    const nudges = rule.decide(knobs.input(s, snaps.slice(0, i).slice(-rule.historyTicks).map((h) => rule.recall(h)), tgts));
    for (const n of nudges) knobs.apply(n);
    return nudges;
  });
}

const HOT: Tick = { host: { cpu: 45 } };
const CALM: Tick = { host: { cpu: 3 } };

describe('AIMD arithmetic', () => {
  it('halves down to the floor and adds a fixed step back up', () => {
    const down: number[] = [];
    for (let q = 2, i = 0; i < 6; i++) down.push((q = decreaseQuota(q, policy)));
    expect(down).toEqual([1, 0.5, 0.25, 0.2, 0.2, 0.2]);
    const up: number[] = [];
    for (let q = 0.2, i = 0; i < 4; i++) up.push((q = increaseQuota(q, policy)));
    expect(up).toEqual([0.45, 0.7, 0.95, 1.2]);
  });

  it('the rule walks the whole AIMD sequence on its own: down under pressure, up when calm, back to unlimited', () => {
    const knobs = new SimulatedKnobs(2);
    const seen: (number | 'max')[] = [];
    const rule = new PressureBackoffRule(policy);
    const ticks = [HOT, HOT, HOT, HOT, HOT, CALM, CALM, CALM, CALM, CALM, CALM, HOT, CALM];
    const snaps = ticks.map((t, i) => snapshot(i, { ...t, usage: { batch: 5 } }));
    const tgts = targets.filter((t) => t.name !== 'backup');
    snaps.forEach((s, i) => {
      for (const n of rule.decide(knobs.input(s, snaps.slice(0, i).map((h) => rule.recall(h)), tgts))) knobs.apply(n);
      seen.push(knobs.quota.get('batch') ?? 'max');
    });
    expect(seen).toEqual([
      'max',
      'max',
      1, // three pressured ticks: 2 CPUs (unlimited) × 0.5
      0.5,
      0.25,
      0.5, // calm: + 0.25 per tick
      0.75,
      1,
      1.25,
      1.5,
      'max', // six calm ticks: the original (unlimited) is back
      'max', // one pressured tick is not a trigger
      'max',
    ]);
  });

  it('an increase that would reach the original restores it instead', () => {
    const knobs = new SimulatedKnobs(2);
    knobs.quota.set('batch', 1);
    const out = run([{ ...HOT, usage: { batch: 1 } }, { ...HOT, usage: { batch: 1 } }, { ...HOT, usage: { batch: 1 } }, CALM, CALM], knobs, policy);
    expect(out[2]!.map((n) => n.desired)).toEqual([{ quotaCpus: 0.5, cause: expect.any(String) }]);
    expect(out[3]!.map((n) => n.desired)).toEqual([{ quotaCpus: 0.75, cause: expect.any(String) }]);
    expect(out[4]).toMatchObject([{ kind: 'restore' }]);
    expect(out[4]![0]!.reason).toMatch(/one more step reaches the original; restoring batch CPU quota 0\.75 CPUs → 1 CPU$/);
    expect(knobs.quota.get('batch')).toBe(1);
  });
});

describe('PressureBackoffRule trigger', () => {
  it.each<[string, Tick[], boolean]>([
    ['two pressured ticks', [HOT, HOT], false],
    ['three pressured ticks', [HOT, HOT, HOT], true],
    ['a calm tick breaks the streak', [HOT, HOT, CALM, HOT, HOT], false],
    ['a tick without PSI breaks the streak', [HOT, HOT, {}, HOT, HOT], false],
    ['exactly at the threshold is not pressure', [{ host: { cpu: 20 } }, { host: { cpu: 20 } }, { host: { cpu: 20 } }], false],
    ['memory pressure counts', [{ host: { memory: 30 } }, { host: { memory: 30 } }, { host: { memory: 30 } }], true],
    ['a protect target under pressure counts', [{ web: { io: 60 } }, { web: { io: 60 } }, { web: { io: 60 } }], true],
  ])('%s → decrease: %s', (_name, ticks, decreases) => {
    const out = run(ticks).at(-1)!;
    expect(out.length > 0).toBe(decreases);
    if (decreases) expect(out[0]).toMatchObject({ action: 'pressure_backoff', target: 'batch', rule: 'pressure-backoff' });
  });

  it('explains itself and judges the decrease on what was pressured', () => {
    const [n] = run([HOT, HOT, HOT]).at(-1)!;
    expect(n!.reason).toBe(
      'host cpu PSI some avg10 45% > 20% for 3 ticks; batch is the busiest noisy target (1.8 CPUs used); CPU quota unlimited → 0.9 CPUs',
    );
    expect(n!.desired).toEqual({ quotaCpus: 0.9, cause: 'host cpu PSI some avg10 45% > 20% for 3 ticks' });
    expect(n!.evidence).toEqual({
      psiSomeAvg10: 45,
      threshold: 20,
      hotTicks: 3,
      fromQuotaCpus: 2,
      fromUnlimited: 1,
      toQuotaCpus: 0.9,
      usageCpus: 1.8,
    });
    expect(n!.objective).toEqual({ metric: 'runqlat.p99', better: 'lower', unit: 'us', baselineTicks: 3 });
    const web = run([{ web: { io: 60 } }, { web: { io: 60 } }, { web: { io: 60 } }]).at(-1)![0]!;
    expect(web.objective).toEqual({ targets: ['web'], metric: 'psi.io.someAvg10', better: 'lower', baselineTicks: 3 });
    expect(decreaseObjective({ source: 'host', resource: 'memory', value: 30 })).toEqual({ metric: 'psi.memory.someAvg10', better: 'lower' });
  });

  it('names the worst reading among the host and the protect targets', () => {
    const s = snapshot(0, { host: { cpu: 25, memory: 30 }, web: { io: 31 } });
    expect(worstPressure(s, ['web'])).toEqual({ source: 'web', resource: 'io', value: 31 });
    expect(worstPressure(s, [])).toEqual({ source: 'host', resource: 'memory', value: 30 });
    expect(worstPressure(snapshot(0, {}), ['web'])).toBeUndefined();
  });

  it('does nothing when disabled', () => {
    expect(run([HOT, HOT, HOT], new SimulatedKnobs(), { ...policy, enabled: false }).flat()).toEqual([]);
  });
});

describe('PressureBackoffRule choice of offender', () => {
  const decide = (usage: Record<string, number> | undefined, knobs = new SimulatedKnobs(), tgts = targets) =>
    run([0, 1, 2].map(() => ({ ...HOT, ...(usage ? { usage } : {}) })), knobs, policy, tgts).at(-1)!;

  it('takes the busiest noisy target, one per tick', () => {
    expect(decide({ batch: 0.3, backup: 1.2 }).map((n) => [n.target, n.desired?.quotaCpus])).toEqual([['backup', 0.6]]);
  });

  it('ties go by name, and an idle target is no suspect', () => {
    expect(decide({ batch: 1, backup: 1 }).map((n) => n.target)).toEqual(['backup']);
    expect(decide({ batch: 0, backup: 0 })).toEqual([]);
  });

  it('without any activity data every noisy target is a suspect, in name order', () => {
    const tgts = targets;
    const rule = new PressureBackoffRule(policy);
    const snaps = [0, 1, 2].map((i) => ({ ...snapshot(i, HOT), targets: { web: { name: 'web', role: 'protect' as const } } }));
    const out = rule.decide(new SimulatedKnobs().input(snaps[2]!, snaps.slice(0, 2).map((h) => rule.recall(h)), tgts));
    expect(out.map((n) => [n.target, n.desired?.quotaCpus])).toEqual([['backup', 1]]);
  });

  it('skips a target at the floor or without a readable quota for the next one', () => {
    const knobs = new SimulatedKnobs();
    knobs.quota.set('batch', 0.2);
    expect(decide({ batch: 1.8, backup: 0.3 }, knobs).map((n) => [n.target, n.desired?.quotaCpus])).toEqual([['backup', 0.2]]);
    const pidsOnly = new SimulatedKnobs();
    pidsOnly.current = (t) => (t === 'backup' ? { quotaCpus: 2, unlimited: 1 } : undefined);
    expect(decide({ batch: 1.8, backup: 0.3 }, pidsOnly).map((n) => n.target)).toEqual(['backup']);
  });

  it('cuts from what the target used when that is below its quota', () => {
    const knobs = new SimulatedKnobs(64);
    expect(decide({ batch: 1.2 }, knobs, targets.filter((t) => t.name !== 'backup'))[0]!.desired?.quotaCpus).toBe(0.6);
  });
});

describe('PressureBackoffRule when calm', () => {
  it('restores every capped target after calm_ticks, with values left to the journal', () => {
    const knobs = new SimulatedKnobs();
    knobs.quota.set('batch', 0.2);
    knobs.original.set('batch', 'max');
    knobs.quota.set('backup', 0.2);
    knobs.original.set('backup', 0.5);
    const rule = new PressureBackoffRule({ ...policy, increaseStepCpus: 0.01 });
    const snaps = [0, 1, 2, 3, 4, 5].map((i) => snapshot(i, CALM));
    const out = rule.decide(knobs.input(snaps[5]!, snaps.slice(0, 5)));
    expect(out.map((n) => [n.target, n.kind, n.desired])).toEqual([
      ['backup', 'restore', undefined],
      ['batch', 'restore', undefined],
    ]);
    expect(out[1]!.reason).toBe(
      'calm: no PSI some avg10 above 20% for 6 ticks (worst now host cpu PSI some avg10 3%); restoring batch CPU quota 0.2 CPUs → unlimited',
    );
    expect(out[1]!.evidence).toMatchObject({ calmTicks: 6, fromQuotaCpus: 0.2, toQuotaCpus: 2, toUnlimited: 1 });
  });

  it('gives back a step at a time before that, judged on the target using it', () => {
    const knobs = new SimulatedKnobs();
    knobs.quota.set('batch', 0.2);
    knobs.original.set('batch', 'max');
    const [n] = run([CALM], knobs);
    expect(n).toMatchObject([{ target: 'batch', desired: { quotaCpus: 0.45 } }]);
    expect(n![0]!.objective).toEqual({ targets: ['batch'], metric: 'runqlat.oncpuUs', better: 'higher', unit: 'us', baselineTicks: 1 });
  });

  it('holds while pressured for fewer than trigger_ticks, and proposes nothing for targets it does not hold', () => {
    const knobs = new SimulatedKnobs();
    knobs.quota.set('batch', 0.5);
    knobs.original.set('batch', 'max');
    expect(run([CALM, HOT], knobs).at(-1)).toEqual([]);
    expect(run([CALM, CALM, CALM, CALM, CALM, CALM]).flat()).toEqual([]);
  });
});

describe('pressure_backoff reports the caps it holds while pressured', () => {
  function holdsAt(ticks: Tick[], knobs: SimulatedKnobs): StrategyHold[] {
    const rule = new PressureBackoffRule(policy);
    const snaps = ticks.map((t, i) => snapshot(i, t));
    const holds: StrategyHold[] = [];
    const last = snaps.length - 1;
    rule.decide({ ...knobs.input(snaps[last]!, snaps.slice(0, last).slice(-rule.historyTicks).map((h) => rule.recall(h))), hold: (h) => holds.push(h) });
    return holds;
  }
  const capped = (): SimulatedKnobs => {
    const knobs = new SimulatedKnobs();
    knobs.quota.set('batch', 0.5);
    knobs.original.set('batch', 'max');
    return knobs;
  };

  it('while pressured, not yet for trigger_ticks and for longer alike, under one cause', () => {
    const early = holdsAt([CALM, HOT], capped());
    expect(early).toEqual([
      {
        action: PRESSURE_BACKOFF_ACTION,
        target: 'batch',
        rule: 'pressure-backoff',
        cause: 'pressured',
        reason: 'host cpu PSI some avg10 45% > 20%: the quota is given back only once no PSI some avg10 is above it',
        evidence: { psiSomeAvg10: 45, threshold: 20 },
      },
    ]);
    expect(holdsAt([HOT, HOT, HOT, HOT], capped()).map((h) => [h.target, h.cause])).toEqual([['batch', 'pressured']]);
  });

  it('not while calm (the quota is being given back), nor for a target it has not capped', () => {
    expect(holdsAt([HOT, CALM], capped())).toEqual([]);
    expect(holdsAt([HOT, HOT], new SimulatedKnobs())).toEqual([]);
  });
});

describe('pressure_backoff and guardrails', () => {
  it("accepts every nudge the rule makes with the default policy and bounds", () => {
    const g = new Guardrails({ cooldownMs: 0, maxChangesPerMinute: 1000, denyCgroups: [] }, ACTION_BOUNDS);
    const knobs = new SimulatedKnobs();
    const all = run([HOT, HOT, HOT, HOT, HOT, HOT, CALM, CALM, CALM], knobs, DEFAULTS.policy.pressureBackoff).flat();
    expect(all.length).toBeGreaterThan(3);
    for (const [i, n] of all.entries()) expect(g.check(n, i, { current: knobs.current(n.target) })).toEqual({ ok: true });
    expect(g.check({ ...all[0]!, desired: { quotaCpus: 0.001 } }, 0)).toMatchObject({ ok: false, code: 'OUT_OF_BOUNDS' });
    // Lifting a limit is a restore's job, never a forward change's.
    expect(g.check({ ...all[0]!, desired: { unlimited: 1 } }, 0)).toMatchObject({ ok: false, code: 'UNBOUNDED' });
  });
});

describe('policy.pressure_backoff config', () => {
  it('parses every key and fills in the rest', () => {
    const c = parseConfig(
      'policy:\n  pressure_backoff:\n    psi_some_avg10_threshold: 12.5\n    trigger_ticks: 4\n    calm_ticks: 40\n' +
        '    decrease_factor: 0.7\n    increase_step_cpus: 0.5\n    floor_cpus: 0.1\n',
      'f.yaml',
    );
    expect(c.policy.pressureBackoff).toEqual({
      enabled: true,
      psiSomeAvg10Threshold: 12.5,
      triggerTicks: 4,
      calmTicks: 40,
      decreaseFactor: 0.7,
      increaseStepCpus: 0.5,
      floorCpus: 0.1,
    });
    expect(parseConfig('', 'f.yaml').policy.pressureBackoff).toEqual(DEFAULTS.policy.pressureBackoff);
  });

  it.each<[string, RegExp]>([
    ['psi_some_avg10_threshold: 0', /percentage greater than 0 and at most 100/],
    ['psi_some_avg10_threshold: 101', /percentage greater than 0 and at most 100/],
    ['decrease_factor: 1', /greater than 0 and less than 1/],
    ['floor_cpus: 0.001', /from 0.01 to 1024/],
    ['increase_step_cpus: 0', /from 0.01 to 1024/],
    ['trigger_ticks: 0', /whole number of ticks/],
    ['decrease: 0.5', /did you mean "decrease_factor"/],
  ])('%s is refused with advice', (line, message) => {
    expect(() => parseConfig(`policy:\n  pressure_backoff:\n    ${line}\n`, 'f.yaml')).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(message) }),
    );
  });
});
