import fc from 'fast-check';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { isTunerError } from '../core/errors.js';
import { ConfigError, parseConfig } from './load.js';
import { LIMITS } from './schema.js';
import type { Config } from './types.js';

const SRC = 'prop.yaml';

/** What any accepted Config must satisfy, whatever the input was. */
function expectSound(c: Config): void {
  expect(c.source).toBe(SRC);
  expect(Number.isInteger(c.tickMs) && c.tickMs >= LIMITS.tickMinMs && c.tickMs <= LIMITS.tickMaxMs).toBe(true);
  expect(c.ewmaAlpha > 0 && c.ewmaAlpha <= 1).toBe(true);
  expect(typeof c.signals.runqlat.enabled).toBe('boolean');
  expect(typeof c.signals.runqlat.perThread).toBe('boolean');
  expect(c.targets.length).toBeLessThanOrEqual(LIMITS.maxTargets);
  expect(new Set(c.targets.map((t) => t.name)).size).toBe(c.targets.length);
  for (const t of c.targets) {
    expect(t.name).toMatch(/^[a-z0-9_-]{1,64}$/);
    expect(['protect', 'noisy']).toContain(t.role);
    expect((t.cgroup === undefined) !== (t.pids === undefined)).toBe(true);
    if (t.cgroup !== undefined) expect(t.cgroup.startsWith('/')).toBe(true);
    for (const p of t.pids ?? []) expect(Number.isInteger(p) && p >= 1 && p <= LIMITS.pidMax).toBe(true);
  }
  const n = c.policy.noisyNeighbor;
  expect(Number.isInteger(n.p99ThresholdUs) && n.p99ThresholdUs >= 1).toBe(true);
  expect(n.stepFraction > 0 && n.stepFraction < 1).toBe(true);
  expect(n.calmFraction > 0 && n.calmFraction <= 1).toBe(true);
  expect(n.minWeight >= 1 && n.minWeight <= 10_000).toBe(true);
  expect(Number.isInteger(c.guardrails.cooldownMs) && c.guardrails.cooldownMs >= 0).toBe(true);
  for (const d of c.guardrails.denyCgroups) expect(d.startsWith('/')).toBe(true);
  expect(Number.isInteger(c.closedLoop.windowTicks) && c.closedLoop.windowTicks >= 1).toBe(true);
  expect(c.closedLoop.margin >= 0 && c.closedLoop.margin < 1).toBe(true);
  expect(Number.isInteger(c.closedLoop.penaltyMs) && c.closedLoop.penaltyMs >= 0).toBe(true);
}

/** The loader's whole contract: a sound Config, or one CONFIG_INVALID error with at least one readable issue. */
function loadsOrExplains(text: string): void {
  let c: Config;
  try {
    c = parseConfig(text, SRC);
  } catch (e) {
    expect(isTunerError(e, 'CONFIG_INVALID')).toBe(true);
    const err = e as ConfigError;
    expect(err.message.startsWith(`load config ${SRC}: `)).toBe(true);
    expect(err.issues.length).toBeGreaterThan(0);
    for (const i of err.issues) {
      expect(typeof i.path).toBe('string');
      expect(i.message.length).toBeGreaterThan(0);
      expect(i.message).not.toContain('undefined');
    }
    return;
  }
  expectSound(c);
}

const VALID = `# a realistic file
tick: 500ms
ewma_alpha: 0.3
signals:
  runqlat:
    enabled: true
    per_thread: false
targets:
  - name: web
    role: protect
    cgroup: /sys/fs/cgroup/web.slice
  - name: batch
    role: noisy
    pids: [1234, 5678]
policy:
  noisy_neighbor:
    enabled: true
    p99_threshold_us: 4000
    trigger_ticks: 2
    calm_ticks: 10
    calm_fraction: 0.5
    step_fraction: 0.5
    min_weight: 10
    max_noisy_per_step: 1
guardrails:
  cooldown: 3s
  max_changes_per_minute: 30
  deny_cgroups: [/sys/fs/cgroup/system.slice]
closed_loop:
  window_ticks: 5
  margin: 0.1
  penalty: 5m
`;

const TOKENS = [
  'tick', 'ewma_alpha', 'signals', 'runqlat', 'enabled', 'per_thread', 'targets', 'name', 'role', 'cgroup', 'pids',
  'policy', 'noisy_neighbor', 'guardrails', 'cooldown', 'deny_cgroups', ':', ': ', ' ', '\n', '  ', '- ', '[', ']',
  '{', '}', ',', '"', "'", '&a ', '*a', '!!str ', '!!int ', '!x ', '#', '---', '...', '1s', '-1', '0', '1e309', '.nan',
  'protect', 'noisy', '/sys/fs/cgroup/x', '\t', '? ', '|', '>', 'null', '~', 'true', '.inf', '__proto__', '<<', '%YAML 1.2',
  'closed_loop', 'window_ticks', 'margin', 'penalty', 'constructor', 'toString', '0x10', '9999999999999999999999', '\u00e9', '\uFEFF', '\r\n', '\\',
];

describe('the loader never crashes', () => {
  it('on arbitrary text', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), loadsOrExplains), { numRuns: 500 });
  });

  it('on YAML-shaped token soup', () => {
    const soup = fc.array(fc.constantFrom(...TOKENS), { maxLength: 80 }).map((ts) => ts.join(''));
    fc.assert(fc.property(soup, loadsOrExplains), { numRuns: 1000 });
  });

  it('on mutations of a valid document', () => {
    const edit = fc.record({
      at: fc.nat({ max: VALID.length }),
      remove: fc.nat({ max: 12 }),
      insert: fc.oneof(fc.constantFrom(...TOKENS), fc.string({ maxLength: 4 })),
    });
    const lineSwap = fc.record({ a: fc.nat(), b: fc.nat() });
    const mutated = fc.tuple(fc.array(edit, { minLength: 1, maxLength: 5 }), fc.option(lineSwap)).map(([edits, swap]) => {
      let s = VALID;
      for (const e of edits) {
        const at = Math.min(e.at, s.length);
        s = s.slice(0, at) + e.insert + s.slice(at + e.remove);
      }
      if (swap) {
        const lines = s.split('\n');
        const a = swap.a % lines.length;
        const b = swap.b % lines.length;
        [lines[a], lines[b]] = [lines[b], lines[a]];
        s = lines.join('\n');
      }
      return s;
    });
    fc.assert(fc.property(mutated, loadsOrExplains), { numRuns: 1000 });
  });

  it('on well-formed YAML of any shape under the known keys', () => {
    const key = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...TOKENS.filter((t) => /^[a-z_]+$/.test(t))) },
      { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
    );
    const scalar = fc.oneof(
      fc.integer({ min: -10, max: 5_000_000 }),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom('1s', '250ms', '-1s', 'protect', 'noisy', '/sys/fs/cgroup/a', 'rel', '', 'web'),
      fc.string({ maxLength: 10 }),
    );
    const { value } = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, tie('list'), tie('map')),
      list: fc.array(tie('value'), { maxLength: 4 }),
      map: fc.dictionary(key, tie('value'), { maxKeys: 6 }),
    }));
    fc.assert(
      fc.property(value, (v) => loadsOrExplains(stringify(v))),
      { numRuns: 1000 },
    );
  });
});

describe('pathological documents', () => {
  it.each([
    ['deep flow nesting', `tick: ${'['.repeat(50_000)}`],
    ['deep block nesting', Array.from({ length: 2000 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n')],
    ['an alias bomb', 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n'],
    ['a long line', `tick: ${'9'.repeat(100_000)}`],
  ])('%s is refused, not crashed on', (_, text) => {
    loadsOrExplains(text);
    expect(() => parseConfig(text, SRC)).toThrow(ConfigError);
  });
});

describe('valid documents load as written', () => {
  const name = fc.stringMatching(/^[a-z0-9_-]{1,12}$/);
  const target = fc.record({
    role: fc.constantFrom('protect' as const, 'noisy' as const),
    scope: fc.oneof(
      fc.stringMatching(/^[a-z0-9][a-z0-9.]{0,9}$/).map((s) => ({ cgroup: `/sys/fs/cgroup/${s}` })),
      fc.uniqueArray(fc.integer({ min: 1, max: LIMITS.pidMax }), { minLength: 1, maxLength: 4 }).map((pids) => ({ pids })),
    ),
  });
  const doc = fc.record({
    tickMs: fc.integer({ min: LIMITS.tickMinMs, max: LIMITS.tickMaxMs }),
    ewmaAlpha: fc.double({ min: 0.01, max: 1, noNaN: true }),
    perThread: fc.boolean(),
    targets: fc.uniqueArray(fc.tuple(name, target), { maxLength: 8, selector: ([n]) => n }),
    stepFraction: fc.double({ min: 0.01, max: 0.99, noNaN: true }),
    cooldownMs: fc.integer({ min: 0, max: LIMITS.cooldownMaxMs }),
  });

  it('round-trips through YAML into the camelCase Config', () => {
    fc.assert(
      fc.property(doc, (d) => {
        // Distinct cgroups and pids across targets are a rule of the schema, so make the generated ones distinct.
        const seen = new Set<string>();
        const targets = d.targets.filter(([, t]) => {
          const keys = 'cgroup' in t.scope ? [t.scope.cgroup] : t.scope.pids.map(String);
          if (keys.some((k) => seen.has(k))) return false;
          keys.forEach((k) => seen.add(k));
          return true;
        });
        const text = stringify({
          tick: `${d.tickMs}ms`,
          ewma_alpha: d.ewmaAlpha,
          signals: { runqlat: { per_thread: d.perThread } },
          targets: targets.map(([n, t]) => ({ name: n, role: t.role, ...t.scope })),
          policy: { noisy_neighbor: { step_fraction: d.stepFraction } },
          guardrails: { cooldown: d.cooldownMs },
        });
        const c = parseConfig(text, SRC);
        expectSound(c);
        expect(c.tickMs).toBe(d.tickMs);
        expect(c.ewmaAlpha).toBe(d.ewmaAlpha);
        expect(c.signals.runqlat.perThread).toBe(d.perThread);
        expect(c.policy.noisyNeighbor.stepFraction).toBe(d.stepFraction);
        expect(c.guardrails.cooldownMs).toBe(d.cooldownMs);
        expect(c.targets).toEqual(targets.map(([n, t]) => ({ name: n, role: t.role, ...t.scope })));
      }),
      { numRuns: 300 },
    );
  });
});
