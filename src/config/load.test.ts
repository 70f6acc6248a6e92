import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isTunerError } from '../core/errors.js';
import { BUILT_IN_SOURCE, DEFAULTS, defaultConfig } from './defaults.js';
import { ConfigError, keyPosition, loadConfig, parseConfig } from './load.js';
import { closestKey, editDistance, formatPath } from './schema.js';

const SRC = '/etc/x.yaml';

function fail(text: string): ConfigError {
  try {
    parseConfig(text, SRC);
  } catch (e) {
    expect(isTunerError(e, 'CONFIG_INVALID')).toBe(true);
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`expected the config to be rejected:\n${text}`);
}

function firstIssue(text: string) {
  const e = fail(text);
  return e.issues[0];
}

const tmp = mkdtempSync(join(tmpdir(), 'config-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('devices', () => {
  it.each([
    ['devices: sda', 'devices', /expected a list of block devices, got "sda" — fix: write e.g. devices: \[sda\]/],
    ['devices: [../sda]', 'devices[0]', /expected a device name \(sda\), a \/dev path \(\/dev\/sda\) or major:minor/],
    ['devices: [8]', 'devices[0]', /expected a device name, path or major:minor, got 8/],
  ])('%s is refused at %s, with the fix', (text, where, message) => {
    expect(fail(text).issues[0]).toMatchObject({ path: where, message: expect.stringMatching(message) });
  });
});

describe('defaults', () => {
  it('no file gives the built-in config', () => {
    const c = loadConfig();
    expect(c.source).toBe(BUILT_IN_SOURCE);
    expect(c).toEqual({ source: BUILT_IN_SOURCE, ...DEFAULTS });
  });

  it('an empty file, a comments-only file and "{}" all equal the built-in defaults', () => {
    for (const text of ['', '\n\n', '# nothing here\n', '{}', '---\n', '\uFEFF# with a BOM\n']) {
      expect(parseConfig(text, 'f.yaml')).toEqual({ ...defaultConfig(), source: 'f.yaml' });
    }
  });

  it('has the documented values', () => {
    expect(DEFAULTS).toEqual({
      tickMs: 1000,
      ewmaAlpha: 0.3,
      signals: {
        runqlat: { enabled: true, perThread: false, attach: 'auto' },
        psi: { enabled: true, triggers: [] },
        cgstat: { enabled: true },
        net: { enabled: true, attach: 'auto' },
        futex: { enabled: true, attach: 'auto' },
        blkio: { enabled: true, attach: 'auto' },
      },
      targets: [],
      devices: [],
      policy: {
        noisyNeighbor: {
          enabled: true,
          p99ThresholdUs: 4000,
          waitShareThreshold: 1,
          triggerTicks: 2,
          eventDriven: false,
          calmTicks: 10,
          calmFraction: 0.5,
          releaseBelowCpus: 0.1,
          stepFraction: 0.5,
          minWeight: 10,
          idleAtFloor: true,
          maxNoisyPerStep: 1,
        },
        cpusetSpread: {
          enabled: true,
          mode: 'affinity',
          minPileup: 2,
          idleBelow: 0.5,
          triggerTicks: 3,
          calmTicks: 30,
          pinCpus: '',
        },
        numaRebalance: {
          enabled: true,
          move: 'cpus',
          remoteThreshold: 0.5,
          dominance: 0.75,
          calmFraction: 0.8,
          minMemoryMb: 64,
          triggerTicks: 5,
          calmTicks: 30,
          sampleTicks: 5,
        },
        pressureBackoff: {
          enabled: true,
          psiSomeAvg10Threshold: 20,
          triggerTicks: 3,
          calmTicks: 30,
          decreaseFactor: 0.5,
          increaseStepCpus: 0.25,
          floorCpus: 0.2,
        },
        ioPrefetch: {
          enabled: true,
          seqRatioThreshold: 0.8,
          maxRequestKb: 64,
          minIosPerS: 50,
          triggerTicks: 3,
          calmTicks: 10,
          readAheadKb: 1024,
          prefetchMb: 0,
        },
      },
      guardrails: { cooldownMs: 3000, maxChangesPerMinute: 30, denyCgroups: [] },
      closedLoop: { windowTicks: 5, margin: 0.1, penaltyMs: 300_000, significance: 0.05, warmupTicks: 2 },
    });
  });

  it('hands out independent copies', () => {
    const a = loadConfig();
    a.targets.push({ name: 'x', role: 'noisy', pids: [1] });
    a.guardrails.denyCgroups.push('/x');
    a.signals.runqlat.enabled = false;
    const b = parseConfig('', 'b');
    expect(b.targets).toEqual([]);
    expect(b.guardrails.denyCgroups).toEqual([]);
    expect(b.signals.runqlat.enabled).toBe(true);
    expect(loadConfig().targets).toEqual([]);
  });

  it('a key with no value means the default', () => {
    const c = parseConfig('tick:\ntargets:\nsignals:\n  runqlat:\nguardrails:\n  deny_cgroups:\n', SRC);
    expect(c).toEqual({ ...defaultConfig(), source: SRC });
  });
});

describe('a full document', () => {
  it('maps snake_case YAML into the camelCase Config', () => {
    const text = `
tick: 250ms
ewma_alpha: 0.5
signals:
  runqlat: { enabled: false, per_thread: true, attach: raw_tp }
  psi: { triggers: [{ resource: memory, kind: full, stall: 150ms, window: 2s }] }
  cgstat: { enabled: false }
  net: { enabled: false, attach: raw_tp }
  futex: { enabled: false, attach: tracepoint }
  blkio: { enabled: false }
targets:
  - name: web
    role: protect
    cgroup: /sys/fs/cgroup//web.slice/
  - name: batch_1
    role: noisy
    pids: [1234, 5678]
devices: [sda, /dev/nvme0n1, "8:16", 259:1]
policy:
  noisy_neighbor:
    enabled: false
    p99_threshold_us: 2500
    trigger_ticks: 3
    calm_ticks: 20
    calm_fraction: 0.25
    release_below_cpus: 0.5
    step_fraction: 0.3
    min_weight: 5
    idle_at_floor: false
    max_noisy_per_step: 2
guardrails:
  cooldown: 1.5s
  max_changes_per_minute: 12
  deny_cgroups: [/sys/fs/cgroup/system.slice, /sys/fs/cgroup/init.scope]
closed_loop:
  window_ticks: 3
  margin: 0
  penalty: 20s
`;
    expect(parseConfig(text, SRC)).toEqual({
      source: SRC,
      tickMs: 250,
      ewmaAlpha: 0.5,
      signals: {
        runqlat: { enabled: false, perThread: true, attach: 'raw_tp' },
        psi: { enabled: true, triggers: [{ resource: 'memory', kind: 'full', stallUs: 150_000, windowUs: 2_000_000 }] },
        cgstat: { enabled: false },
        net: { enabled: false, attach: 'raw_tp' },
        futex: { enabled: false, attach: 'tracepoint' },
        blkio: { enabled: false, attach: 'auto' },
      },
      targets: [
        { name: 'web', role: 'protect', cgroup: '/sys/fs/cgroup/web.slice' },
        { name: 'batch_1', role: 'noisy', pids: [1234, 5678] },
      ],
      devices: ['sda', '/dev/nvme0n1', '8:16', '259:1'],
      policy: {
        noisyNeighbor: {
          enabled: false,
          p99ThresholdUs: 2500,
          waitShareThreshold: 1,
          triggerTicks: 3,
          eventDriven: false,
          calmTicks: 20,
          calmFraction: 0.25,
          releaseBelowCpus: 0.5,
          stepFraction: 0.3,
          minWeight: 5,
          idleAtFloor: false,
          maxNoisyPerStep: 2,
        },
        cpusetSpread: DEFAULTS.policy.cpusetSpread,
        numaRebalance: DEFAULTS.policy.numaRebalance,
        pressureBackoff: DEFAULTS.policy.pressureBackoff,
        ioPrefetch: DEFAULTS.policy.ioPrefetch,
      },
      guardrails: {
        cooldownMs: 1500,
        maxChangesPerMinute: 12,
        denyCgroups: ['/sys/fs/cgroup/system.slice', '/sys/fs/cgroup/init.scope'],
      },
      closedLoop: { windowTicks: 3, margin: 0, penaltyMs: 20_000, significance: 0.05, warmupTicks: 2 },
    });
  });

  it('fills in the defaults of a partial section', () => {
    const c = parseConfig('policy:\n  noisy_neighbor:\n    trigger_ticks: 5\n', SRC);
    expect(c.policy.noisyNeighbor).toEqual({ ...DEFAULTS.policy.noisyNeighbor, triggerTicks: 5 });
    expect(c.guardrails).toEqual(DEFAULTS.guardrails);
  });

  it('targets carry only the scope they were given', () => {
    const c = parseConfig('targets:\n  - {name: a, role: noisy, pids: [7]}\n', SRC);
    expect(Object.keys(c.targets[0]).sort()).toEqual(['name', 'pids', 'role']);
  });
});

describe('durations', () => {
  it.each([
    ['250ms', 250],
    ['1s', 1000],
    ['1.5s', 1500],
    ['"2 s"', 2000],
    ['1m', 60_000],
    ['100', 100],
    ['60000', 60_000],
    ['.5s', 500],
    ['100.4ms', 100],
  ])('tick: %s is %d ms', (v, ms) => {
    expect(parseConfig(`tick: ${v}`, SRC).tickMs).toBe(ms);
  });

  it.each(['0', '0s', '0ms', '-1s', '-5', '-0.5s'])('tick: %s is refused as not positive', (v) => {
    const i = firstIssue(`tick: ${v}`);
    expect(i.path).toBe('tick');
    expect(i.message).toMatch(/^must be a positive duration, got .* — fix: use a duration from 100ms to 60s, e.g. tick: 1s$/);
  });

  it.each([
    ['10ms', /^expected a duration from 100ms to 60s, got "10ms"/],
    ['2m', /^expected a duration from 100ms to 60s, got "2m"/],
    ['99', /^expected a duration from 100ms to 60s, got 99/],
    ['fast', /^expected a duration like "1s" or "250ms" \(units ms, s, m, h\), or a number of milliseconds, got "fast"/],
    ['1sec', /^expected a duration like "1s"/],
    ['"1000"', /^expected a duration with a unit \(ms, s, m, h\), got "1000"/],
    ['true', /^expected a duration like "1s" or "250ms", or a number of milliseconds, got true/],
    ['.inf', /got \.inf/],
    ['[1s]', /got a list/],
  ])('tick: %s is refused', (v, re) => {
    const i = firstIssue(`tick: ${v}`);
    expect(i.path).toBe('tick');
    expect(i.message).toMatch(re);
    expect(i.message).toContain(' — fix: ');
  });

  it('cooldown may be zero but not negative', () => {
    expect(parseConfig('guardrails: {cooldown: 0s}', SRC).guardrails.cooldownMs).toBe(0);
    expect(parseConfig('guardrails: {cooldown: 0}', SRC).guardrails.cooldownMs).toBe(0);
    const i = firstIssue('guardrails: {cooldown: -3s}');
    expect(i.path).toBe('guardrails.cooldown');
    expect(i.message).toMatch(/^must not be negative, got "-3s" — fix: /);
    expect(firstIssue('guardrails: {cooldown: 2h}').message).toMatch(/^expected a duration from 0ms to 1h/);
  });
});

describe('error messages', () => {
  it('name the file, the field, the problem and the fix', () => {
    const e = fail('targets:\n  - name: a\n    role: noisy\n    pids: [1, abc]\n');
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toBe(
      'load config /etc/x.yaml: targets[0].pids[1]: expected a positive integer, got "abc" — fix: list process ids as numbers',
    );
    expect(e.issues).toEqual([
      {
        path: 'targets[0].pids[1]',
        message: 'expected a positive integer, got "abc" — fix: list process ids as numbers',
        line: 4,
        column: 15,
      },
    ]);
    expect(JSON.parse(JSON.stringify(e))).toMatchObject({ code: 'CONFIG_INVALID', source: SRC, issues: e.issues });
  });

  it('collect every issue, in file order, and lead with the first', () => {
    const e = fail(`
guardrails:
  max_changes_per_minute: 0
tick: 5ms
ewma_alpha: 2
signals:
  runqlat:
    enabled: "yes"
`);
    expect(e.issues.map((i) => [i.path, i.line])).toEqual([
      ['guardrails.max_changes_per_minute', 3],
      ['tick', 4],
      ['ewma_alpha', 5],
      ['signals.runqlat.enabled', 8],
    ]);
    expect(e.message).toMatch(/^load config \/etc\/x\.yaml: guardrails\.max_changes_per_minute: expected a whole number from 1 to 10000, got 0 — fix: .* \(and 3 more issues\)$/);
    expect(e.issues[3].message).toBe('expected true or false, got "yes" — fix: write true or false (not yes/no or on/off)');
  });

  it.each([
    ['ewma_alpha: 0', 'ewma_alpha', /^expected a number greater than 0 and at most 1, got 0/],
    ['ewma_alpha: "0.3"', 'ewma_alpha', /got "0.3"/],
    ['policy: {noisy_neighbor: {step_fraction: 1}}', 'policy.noisy_neighbor.step_fraction', /less than 1, got 1 /],
    ['policy: {noisy_neighbor: {min_weight: 0}}', 'policy.noisy_neighbor.min_weight', /from 1 to 10000/],
    ['policy: {noisy_neighbor: {trigger_ticks: 1.5}}', 'policy.noisy_neighbor.trigger_ticks', /whole number.*got 1.5/],
    ['policy: {noisy_neighbor: {p99_threshold_us: -1}}', 'policy.noisy_neighbor.p99_threshold_us', /microseconds/],
    ['policy: {noisy_neighbor: {max_noisy_per_step: 1025}}', 'policy.noisy_neighbor.max_noisy_per_step', /from 1 to 1024/],
    ['policy: {noisy_neighbor: 3}', 'policy.noisy_neighbor', /^expected a mapping of policy settings, got 3/],
    ['guardrails: {deny_cgroups: system.slice}', 'guardrails.deny_cgroups', /^expected a list of cgroup paths/],
    ['guardrails: {deny_cgroups: [rel/path]}', 'guardrails.deny_cgroups[0]', /^expected an absolute path/],
    ['signals: []', 'signals', /^expected a mapping of signals, got a list/],
    ['closed_loop: {margin: 1}', 'closed_loop.margin', /^expected a number from 0 up to \(not including\) 1, got 1 /],
    ['closed_loop: {window_ticks: 0}', 'closed_loop.window_ticks', /from 1 to 1000, got 0/],
    ['closed_loop: {penalty: 2d}', 'closed_loop.penalty', /^expected a duration like "1s"/],
    ['closed_loop: {significance: 0.5}', 'closed_loop.significance', /^expected a number above 0 and below 0.5, got 0.5 /],
    ['closed_loop: {significance: 0}', 'closed_loop.significance', /^expected a number above 0 and below 0.5, got 0 /],
    ['closed_loop: {warmup_ticks: -1}', 'closed_loop.warmup_ticks', /from 0 to 1000, got -1/],
  ])('%s', (text, path, re) => {
    const i = firstIssue(text);
    expect(i.path).toBe(path);
    expect(i.message).toMatch(re);
  });

  it('a document that is not a mapping says so', () => {
    expect(firstIssue('- a\n- b\n')).toMatchObject({ path: '', message: expect.stringMatching(/^expected a mapping of settings.*got a list/) });
    expect(fail('just words').message).toMatch(/^load config \/etc\/x\.yaml: expected a mapping of settings \(key: value lines\), got "just words" — fix: /);
  });
});

describe('unknown keys', () => {
  it.each([
    ['tik: 1s', 'tik', 'tick'],
    ['ewmaAlpha: 0.3', 'ewmaAlpha', 'ewma_alpha'],
    ['ewma-alpha: 0.3', 'ewma-alpha', 'ewma_alpha'],
    ['policy: {noisy_neighbour: {}}', 'policy.noisy_neighbour', 'noisy_neighbor'],
    ['policy: {noisy_neighbor: {p99_threshold: 10}}', 'policy.noisy_neighbor.p99_threshold', 'p99_threshold_us'],
    ['guardrails: {cooldown_ms: 10}', 'guardrails.cooldown_ms', 'cooldown'],
    ['guardrails: {deny_cgroup: []}', 'guardrails.deny_cgroup', 'deny_cgroups'],
    ['targets: [{name: a, role: noisy, pid: [1]}]', 'targets[0].pid', 'pids'],
    ['signals: {runqlat: {perthread: true}}', 'signals.runqlat.perthread', 'per_thread'],
  ])('%s → suggests the closest key', (text, path, guess) => {
    const i = firstIssue(text);
    expect(i.path).toBe(path);
    expect(i.message).toBe(`unknown key — fix: did you mean "${guess}"?`);
  });

  it('lists the known keys when nothing is close', () => {
    const i = firstIssue('signals: {cpu_pressure: {}}');
    expect(i).toMatchObject({ path: 'signals.cpu_pressure', message: 'unknown key — fix: remove it; known keys here: runqlat, psi, cgstat, net, futex, blkio', line: 1 });
  });

  it('reports each unknown key separately, even without a value', () => {
    const e = fail('zzz:\ntick: 1s\nqqq: 1\n');
    expect(e.issues.map((i) => [i.path, i.line])).toEqual([
      ['zzz', 1],
      ['qqq', 3],
    ]);
  });

  it('treats __proto__ as an ordinary unknown key', () => {
    const e = fail('__proto__:\n  tick: 5\n');
    expect(e.issues[0].path).toBe('__proto__');
    expect(({} as Record<string, unknown>).tick).toBeUndefined();
  });

  it('quotes keys that are not identifiers', () => {
    expect(firstIssue('"a b": 1').path).toBe('["a b"]');
  });
});

describe('targets', () => {
  const t = (body: string) => `targets:\n${body}`;

  it('needs exactly one of cgroup and pids', () => {
    expect(firstIssue(t('  - {name: a, role: noisy, cgroup: /sys/fs/cgroup/a, pids: [1]}'))).toMatchObject({
      path: 'targets[0]',
      message: expect.stringMatching(/^has both cgroup and pids — fix: keep one/),
    });
    expect(firstIssue(t('  - {name: a, role: noisy}'))).toMatchObject({
      path: 'targets[0]',
      message: expect.stringMatching(/^has neither cgroup nor pids — fix: /),
    });
  });

  it('carries every process scope into the Config', () => {
    const c = parseConfig(
      t(
        '  - {name: a, role: protect, pidfile: /run/a.pid}\n' +
          '  - {name: b, role: noisy, comm: worker, children: true}\n' +
          '  - {name: c, role: noisy, pids: [7], children: false}\n',
      ),
      SRC,
    );
    expect(c.targets).toEqual([
      { name: 'a', role: 'protect', pidfile: '/run/a.pid' },
      { name: 'b', role: 'noisy', comm: 'worker', children: true },
      { name: 'c', role: 'noisy', pids: [7], children: false },
    ]);
  });

  it('checks names', () => {
    for (const bad of ['Web', 'a.b', '""', 'x'.repeat(65), '12 34']) {
      const i = firstIssue(t(`  - {name: ${bad}, role: noisy, pids: [1]}`));
      expect(i.path).toBe('targets[0].name');
      expect(i.message).toMatch(/^expected a name of 1 to 64 characters from a-z, 0-9, _ and -, got/);
    }
    expect(firstIssue(t('  - {role: noisy, pids: [1]}'))).toMatchObject({
      path: 'targets[0].name',
      message: expect.stringMatching(/, got nothing — fix: /),
    });
  });

  it('names must be unique', () => {
    const e = fail(t('  - {name: a, role: noisy, pids: [1]}\n  - {name: b, role: noisy, pids: [2]}\n  - {name: a, role: protect, pids: [3]}'));
    expect(e.issues).toEqual([
      expect.objectContaining({
        path: 'targets[2].name',
        message: 'duplicate name "a" (also targets[0]) — fix: give each target its own name',
        line: 4,
      }),
    ]);
  });

  it('a cgroup or a pid belongs to one target only', () => {
    const e = fail(
      t(
        '  - {name: a, role: protect, cgroup: /sys/fs/cgroup/a}\n  - {name: b, role: noisy, cgroup: "/sys/fs/cgroup/a/"}\n' +
          '  - {name: c, role: noisy, pids: [5, 6]}\n  - {name: d, role: noisy, pids: [6]}\n  - {name: e, role: noisy, pids: [9, 9]}',
      ),
    );
    expect(e.issues.map((i) => [i.path, i.message.split(' — ')[0]])).toEqual([
      ['targets[1].cgroup', 'same cgroup as targets[0] (a)'],
      ['targets[3].pids[0]', 'pid 6 is also in targets[2] (c)'],
      ['targets[4].pids[1]', 'pid 9 is listed twice (also pids[0])'],
    ]);
  });

  it('checks roles, cgroup paths and pids', () => {
    expect(firstIssue(t('  - {name: a, role: protected, pids: [1]}'))).toMatchObject({
      path: 'targets[0].role',
      message: expect.stringMatching(/^expected "protect" or "noisy", got "protected" — fix: /),
    });
    expect(firstIssue(t('  - {name: a, role: noisy, cgroup: web.slice}'))).toMatchObject({
      path: 'targets[0].cgroup',
      message:
        'expected an absolute path (starting with /), got "web.slice" — fix: write the full path of the cgroup directory, e.g. cgroup: /sys/fs/cgroup/web.slice',
    });
    expect(firstIssue(t('  - {name: a, role: noisy, cgroup: /sys/fs/cgroup/../etc}')).message).toMatch(/without \. or \.\. segments/);
    expect(firstIssue(t('  - {name: a, role: noisy, pids: []}')).message).toMatch(/^expected a non-empty list of process ids, got a list/);
    expect(firstIssue(t('  - {name: a, role: noisy, pids: [0]}')).message).toMatch(/^expected a positive integer, got 0/);
    expect(firstIssue(t('  - {name: a, role: noisy, pids: [1.5]}')).message).toMatch(/^expected a positive integer, got 1.5/);
    expect(firstIssue(t('  - {name: a, role: noisy, pids: [99999999]}')).message).toMatch(/no larger than 4194304/);
    expect(firstIssue(t('  - {name: a, role: noisy, pids: 42}')).message).toMatch(/^expected a non-empty list of process ids, got 42/);
    expect(firstIssue(t('  - web')).message).toMatch(/^expected a mapping with name, role, and one of cgroup, cgroup_pattern, pids, pidfile or comm, got "web"/);
    expect(firstIssue(t('  -')).path).toBe('targets[0]');
  });

  it('at most 1024', () => {
    const many = Array.from({ length: 1025 }, (_, i) => `  - {name: t${i}, role: noisy, pids: [${i + 1}]}`).join('\n');
    expect(firstIssue(t(many))).toMatchObject({ path: 'targets', message: expect.stringMatching(/^expected at most 1024 targets, got 1025/) });
    expect(parseConfig(t(many.split('\n').slice(0, 64).join('\n')), SRC).targets).toHaveLength(64);
  });

  it('reports field and cross-field problems in one pass', () => {
    const e = fail(t('  - {name: a, role: noisy, pids: [1]}\n  - {name: a, role: bogus}'));
    expect(e.issues.map((i) => i.path).sort()).toEqual(['targets[1]', 'targets[1].name', 'targets[1].role']);
  });
});

describe('YAML syntax', () => {
  it('gives line and column', () => {
    const e = fail('tick: 1s\ntargets:\n  - name: a\n   role: noisy\n');
    expect(e.issues[0].line).toBe(4);
    expect(e.message).toMatch(/^load config \/etc\/x\.yaml: line 4, column \d+: .+ — fix: /);
  });

  it('refuses duplicate keys', () => {
    const e = fail('tick: 1s\ntick: 2s\n');
    expect(e.message).toBe('load config /etc/x.yaml: line 2, column 1: Map keys must be unique — fix: keep only one of the repeated keys');
  });

  it('refuses tabs, unclosed brackets and several documents', () => {
    expect(fail('signals:\n\trunqlat: {}\n').message).toMatch(/line 2, column 1: .* — fix: indent with spaces, not tabs/);
    expect(fail('targets: [1, 2\n').issues[0].line).toBeGreaterThanOrEqual(1);
    expect(fail('tick: 1s\n---\ntick: 2s\n').message).toMatch(/fix: keep a single document/);
  });

  it('lists at most the first 10 syntax errors', () => {
    const e = fail(`tick: ${'['.repeat(500)}`);
    expect(e.issues.length).toBeLessThanOrEqual(10);
    expect(e.issues.every((i) => i.line !== undefined)).toBe(true);
  });

  it('calls runaway nesting what it is', () => {
    const deep = Array.from({ length: 3000 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n');
    expect(fail(deep).message).toMatch(/the document is nested too deeply — fix: check that this is the config file/);
  });

  it('refuses dangling aliases', () => {
    expect(fail('tick: *nowhere\n').message).toMatch(/^load config \/etc\/x\.yaml: cannot read the YAML: .*alias/i);
  });

  it('expands aliases that are defined', () => {
    const c = parseConfig('guardrails:\n  deny_cgroups: &d [/a, /b]\ntargets:\n  - {name: a, role: noisy, pids: [1]}\n', SRC);
    expect(c.guardrails.denyCgroups).toEqual(['/a', '/b']);
  });
});

describe('files', () => {
  it('reads a file and names it as the source', () => {
    const f = join(tmp, 'ok.yaml');
    writeFileSync(f, 'tick: 2s\n');
    expect(loadConfig(f)).toMatchObject({ source: f, tickMs: 2000 });
  });

  it('an empty file is the built-in default', () => {
    const f = join(tmp, 'empty.yaml');
    writeFileSync(f, '');
    expect(loadConfig(f)).toEqual({ ...defaultConfig(), source: f });
  });

  it('names a missing path', () => {
    const f = join(tmp, 'nope.yaml');
    expect(() => loadConfig(f)).toThrow(`load config ${f}: file not found — fix: check the path`);
    try {
      loadConfig(f);
    } catch (e) {
      expect((e as ConfigError).issues).toEqual([{ path: '', message: 'file not found — fix: check the path' }]);
      expect((e as ConfigError).cause).toBeDefined();
    }
  });

  it('refuses a directory and a non-regular file', () => {
    const d = join(tmp, 'dir');
    mkdirSync(d);
    expect(() => loadConfig(d)).toThrow(`load config ${d}: is a directory`);
    expect(() => loadConfig('/dev/null')).toThrow('load config /dev/null: is not a regular file');
  });

  it('puts the file name in schema errors', () => {
    const f = join(tmp, 'bad.yaml');
    writeFileSync(f, 'tick: -1s\n');
    expect(() => loadConfig(f)).toThrow(`load config ${f}: tick: must be a positive duration`);
  });
});

describe('helpers', () => {
  it('formatPath', () => {
    expect(formatPath([])).toBe('');
    expect(formatPath(['targets', 1, 'cgroup'])).toBe('targets[1].cgroup');
    expect(formatPath(['a b', 0])).toBe('["a b"][0]');
  });

  it('editDistance counts a transposition as one edit', () => {
    expect(editDistance('tick', 'tikc')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });

  it('closestKey does not guess wildly', () => {
    expect(closestKey('colour', ['tick', 'targets'])).toBeUndefined();
    expect(closestKey('TICK', ['tick', 'targets'])).toBe('tick');
  });
});

describe('signals.psi.triggers', () => {
  it('takes durations and hands them on in microseconds', () => {
    const c = parseConfig('signals:\n  psi:\n    triggers:\n      - { resource: cpu, kind: some, stall: 0.2s, window: 10s }\n', SRC);
    expect(c.signals.psi.triggers).toEqual([{ resource: 'cpu', kind: 'some', stallUs: 200_000, windowUs: 10_000_000 }]);
  });

  it.each([
    ['{ resource: cpu, kind: some, stall: 3s, window: 2s }', 'signals.psi.triggers[0].stall', /longer than the window 2s — fix: /],
    ['{ resource: cpu, kind: some, stall: 100ms, window: 100ms }', 'signals.psi.triggers[0].window', /from 500ms to 10s/],
    ['{ resource: irq, kind: some, stall: 100ms, window: 1s }', 'signals.psi.triggers[0].resource', /expected cpu, memory or io/],
    ['{ resource: cpu, kind: half, stall: 100ms, window: 1s }', 'signals.psi.triggers[0].kind', /expected some or full/],
  ])('%s → an issue on the field with a fix', (trigger, path, message) => {
    const i = firstIssue(`signals:\n  psi:\n    triggers: [${trigger}]\n`);
    expect(i.path).toBe(path);
    expect(i.message).toMatch(message);
  });
});

describe('cgroup_pattern targets', () => {
  const cfg = (body: string) => parseConfig(`targets:\n${body}`, 'test.yaml');
  it('takes a glob and a slot reservation, with a default', () => {
    const c = cfg('  - {name: pods, role: noisy, cgroup_pattern: /sys/fs/cgroup/kubepods.slice/*/cri-containerd-*.scope}\n');
    expect(c.targets[0]).toEqual({ name: 'pods', role: 'noisy', cgroupPattern: '/sys/fs/cgroup/kubepods.slice/*/cri-containerd-*.scope', maxMatches: 64 });
    expect(cfg('  - {name: svc, role: protect, cgroup_pattern: /sys/fs/cgroup/app.slice/*.service, max_matches: 8}\n').targets[0].maxMatches).toBe(8);
  });
  it('refuses max_matches without a pattern, a pattern beside another scope, and more slots than the kernel side has', () => {
    expect(() => cfg('  - {name: a, role: noisy, cgroup: /sys/fs/cgroup/a, max_matches: 4}\n')).toThrow(/max_matches applies to cgroup_pattern targets/);
    expect(() => cfg('  - {name: a, role: noisy, cgroup: /sys/fs/cgroup/a, cgroup_pattern: /sys/fs/cgroup/*}\n')).toThrow(/more than one of cgroup, cgroup_pattern/);
    expect(() => cfg('  - {name: a, role: noisy, cgroup_pattern: relative/*}\n')).toThrow(/absolute path/);
    const many = Array.from({ length: 17 }, (_, i) => `  - {name: p${i}, role: noisy, cgroup_pattern: /sys/fs/cgroup/s${i}/*}\n`).join('');
    expect(() => cfg(many)).toThrow(/reserve 1088 slots/);
  });
});

describe('keyPosition', () => {
  it('finds a key, or its nearest enclosing one, for problems found after loading', () => {
    const text = 'tick: 1s\ntargets:\n  - name: a\n    role: noisy\n    pidfile: /run/a.pid\n  - {name: b, role: noisy, pids: [1]}\ndevices: [sda, vda]\n';
    expect(keyPosition(text, ['targets', 0, 'pidfile'])).toEqual({ line: 5, column: 5 });
    expect(keyPosition(text, ['targets', 1, 'pids'])).toEqual({ line: 6, column: 28 });
    expect(keyPosition(text, ['devices', 1])).toEqual({ line: 7, column: 16 });
    expect(keyPosition(text, ['targets', 1, 'cgroup'])).toEqual({ line: 6, column: 5 });
    expect(keyPosition('a: [', ['a'])).toBeUndefined();
  });
});
