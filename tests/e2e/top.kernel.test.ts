/**
 * `top`, through the real CLI: `--once --json` prints one snapshot after one window, every target by its configured
 * name; the table fits the width it is given (80 when not a terminal) and shows more columns when wider; a value is
 * highlighted only when it is past its threshold (run-queue p99 above noisy_neighbor's, PSI above pressure_backoff's,
 * any throttling, which the test checks against the cgroup's own cpu.stat).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import { COLUMNS } from '../../src/cli/top-view.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup } from '../../src/testing/cgroups.js';
import { runCli, tempDir } from './helpers.js';

afterAll(async () => {
  await cleanupAll();
});

const ANSI = /\x1b\[[0-9;]*m/g;
const RED = '\x1b[1;31m';
/** Display columns: every code point one (µ, —, … included), escape sequences none. */
const columns = (line: string) => Array.from(line.replace(ANSI, '')).length;

/** The signal columns a table shows, in order. */
function shownColumns(table: string): string[] {
  const head = table.split('\n').find((l) => l.replace(ANSI, '').startsWith('target'));
  expect(head, table).toBeDefined();
  return COLUMNS.map((c) => c.header).filter((h) => head!.includes(h));
}

/** One row's cells by column header, each with its text and whether it is highlighted. */
function row(table: string, name: string): Map<string, { text: string; red: boolean }> {
  const line = table.split('\n').find((l) => l.replace(ANSI, '').startsWith(`${name} `));
  expect(line, `no row ${name} in\n${table}`).toBeDefined();
  // Cells hold no spaces: a highlighted one is the escape, padding, value and reset.
  const tokens = line!.match(/\x1b\[1;31m\s*\S+?\x1b\[0m|\S+/g)!.slice(2);
  const heads = shownColumns(table);
  expect(tokens).toHaveLength(heads.length);
  return new Map(heads.map((h, i) => [h, { text: tokens[i].replace(ANSI, '').trim(), red: tokens[i].startsWith(RED) }]));
}

/** A displayed duration or percentage back as a number (µs, or percent). */
function value(text: string): number {
  const m = /^([\d.]+)(µs|ms|s|%)$/.exec(text);
  expect(m, `not a value: ${text}`).not.toBeNull();
  const n = Number(m![1]);
  return m![2] === 'ms' ? n * 1000 : m![2] === 's' ? n * 1e6 : n;
}

function cpuStat(dir: string): Record<string, number> {
  return Object.fromEntries(
    readFileSync(join(dir, 'cpu.stat'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' '))
      .map(([k, v]) => [k, Number(v)]),
  );
}

describe('top', () => {
  it('--once --json prints one snapshot with each target by name', async () => {
    const cg = makeTestCgroup('cpu');
    const dir = tempDir();
    const victim = await spawnInCgroup(cg.path, toolPath('victim'), ['--period-us', '2000', '--work-us', '200', '--quiet']);
    try {
      const config = dir.file('c.yaml', `targets:\n  - {name: svc, cgroup: ${cg.path}, role: protect}\n`);
      const r = runCli(['top', '--once', '--json', '--config', config]);
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(1);
      const snap = JSON.parse(lines[0]) as { windowMs: number; targets: Record<string, { role: string; runqlat: { count: number; oncpuRatio: number } }> };
      expect(Object.keys(snap.targets)).toEqual(['svc']);
      expect(snap.targets.svc.role).toBe('protect');
      expect(snap.targets.svc.runqlat.count).toBeGreaterThan(100);
      expect(snap.targets.svc.runqlat.oncpuRatio).toBeGreaterThan(0);
      expect(snap.targets.svc.runqlat.oncpuRatio).toBeLessThanOrEqual(1);
    } finally {
      await killAndWait(victim);
      cg.remove();
      dir.remove();
    }
  });

  it('fits the table in 80 columns when not a terminal, and shows more columns when given more', async () => {
    const cg = makeTestCgroup('cpu');
    const dir = tempDir();
    const victim = await spawnInCgroup(cg.path, toolPath('victim'), ['--period-us', '2000', '--work-us', '200', '--quiet']);
    try {
      const config = dir.file('c.yaml', `targets:\n  - {name: svc, cgroup: ${cg.path}, role: protect}\n`);
      const narrow = runCli(['top', '--once', '--config', config]);
      expect(narrow.code, narrow.stderr).toBe(0);
      expect(narrow.stdout).toMatch(/^svc\s+protect\s/m);
      expect(narrow.stdout).toMatch(/^\(host\)\s/m);
      for (const line of narrow.stdout.split('\n')) expect(columns(line), JSON.stringify(line)).toBeLessThanOrEqual(80);
      expect(narrow.stdout).not.toMatch(/\dus\b/);
      expect(narrow.stdout).toMatch(/\dµs\b|\d\.\dms\b/);
      expect(shownColumns(narrow.stdout)).toContain('rq p99');

      const same = runCli(['top', '--once', '--width', '80', '--config', config]);
      expect(same.code, same.stderr).toBe(0);
      expect(shownColumns(same.stdout)).toEqual(shownColumns(narrow.stdout));
      for (const line of same.stdout.split('\n')) expect(columns(line), JSON.stringify(line)).toBeLessThanOrEqual(80);

      const wide = runCli(['top', '--once', '--width', '200', '--config', config]);
      expect(wide.code, wide.stderr).toBe(0);
      for (const line of wide.stdout.split('\n')) expect(columns(line), JSON.stringify(line)).toBeLessThanOrEqual(200);
      expect(shownColumns(wide.stdout).length).toBeGreaterThan(shownColumns(narrow.stdout).length);
      expect(shownColumns(wide.stdout)).toEqual(expect.arrayContaining(shownColumns(narrow.stdout)));

      const bad = runCli(['top', '--once', '--width', '0']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^ebpf-tuner top: parse command line: .*--width/);
    } finally {
      await killAndWait(victim);
      cg.remove();
      dir.remove();
    }
  });

  it('highlights a value only when it is past its threshold', async () => {
    const throttled = makeTestCgroup('cpu');
    const free = makeTestCgroup('cpu');
    const dir = tempDir();
    // 10% of a CPU wanted, 1% allowed: throttled in nearly every period.
    if (throttled.version === 1) writeFileSync(join(throttled.path, 'cpu.cfs_quota_us'), '1000');
    else writeFileSync(join(throttled.path, 'cpu.max'), '1000 100000');
    const victims = [
      await spawnInCgroup(throttled.path, toolPath('victim'), ['--period-us', '2000', '--work-us', '200', '--quiet']),
      await spawnInCgroup(free.path, toolPath('victim'), ['--period-us', '2000', '--work-us', '200', '--quiet']),
    ];
    try {
      const targets = `targets:\n  - {name: capped, cgroup: ${throttled.path}, role: noisy}\n  - {name: free, cgroup: ${free.path}, role: protect}\n`;
      // Every run-queue p99 of a busy cgroup is above 1 µs; no PSI reading can be above 100%.
      const low = dir.file(
        'low.yaml',
        `${targets}policy:\n  noisy_neighbor:\n    enabled: false\n    p99_threshold_us: 1\n  pressure_backoff:\n    enabled: false\n    psi_some_avg10_threshold: 100\n`,
      );
      // No run-queue p99 in a one-second window reaches 10 s; PSI above 0.01% highlights.
      const high = dir.file(
        'high.yaml',
        `${targets}policy:\n  noisy_neighbor:\n    enabled: false\n    p99_threshold_us: 10000000\n  pressure_backoff:\n    enabled: false\n    psi_some_avg10_threshold: 0.01\n`,
      );
      const thresholds = { low: { runq: 1, psi: 100 }, high: { runq: 10_000_000, psi: 0.01 } };

      for (const [which, config] of [['low', low], ['high', high]] as const) {
        const before = cpuStat(throttled.path);
        const r = runCli(['top', '--once', '--color', 'always', '--width', '200', '--config', config]);
        const after = cpuStat(throttled.path);
        expect(r.code, r.stderr).toBe(0);
        const th = thresholds[which];
        const rows = { capped: row(r.stdout, 'capped'), free: row(r.stdout, 'free'), host: row(r.stdout, '(host)') };
        for (const [name, cells] of Object.entries(rows)) {
          for (const [header, cell] of cells) {
            const what = `${which}: ${name} ${header} ${cell.text}`;
            if (cell.text === '-') {
              expect(cell.red, what).toBe(false);
              continue;
            }
            if (header === 'rq p99' || header === 'p99 ewma') {
              // Shown rounded (to 1 µs, 0.1 ms, 0.1 s): a reading that rounds to the threshold could go either way.
              const step = cell.text.endsWith('µs') ? 0.5 : cell.text.endsWith('ms') ? 50 : 50_000;
              if (Math.abs(value(cell.text) - th.runq) > step) expect(cell.red, what).toBe(value(cell.text) > th.runq);
            }
            else if (header.startsWith('psi ')) {
              // Shown to 0.1%: a reading that rounds to the threshold could go either way.
              if (Math.abs(value(cell.text) - th.psi) > 0.05) expect(cell.red, what).toBe(value(cell.text) > th.psi);
            } else if (header === 'throttle') expect(cell.red, what).toBe(value(cell.text) > 0);
            else expect(cell.red, `${what}: a column without a threshold is never highlighted`).toBe(false);
          }
        }
        // The run-queue p99 of both busy cgroups: always above 1 µs, never above 10 s.
        expect(rows.free.get('rq p99')!.red, which).toBe(which === 'low');
        // The kernel throttled the capped cgroup while top watched, and top highlighted it; the free one is not.
        expect(after.nr_throttled).toBeGreaterThan(before.nr_throttled);
        expect(rows.capped.get('throttle')!.red, r.stdout).toBe(true);
        expect(rows.free.get('throttle')).toEqual({ text: '0%', red: false });
      }

      const plain = runCli(['top', '--once', '--config', low]);
      expect(plain.code, plain.stderr).toBe(0);
      expect(plain.stdout).not.toMatch(/\x1b/);
    } finally {
      for (const v of victims) await killAndWait(v);
      throttled.remove();
      free.remove();
      dir.remove();
    }
  });
});
