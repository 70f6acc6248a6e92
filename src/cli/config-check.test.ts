import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkConfigFile, formatOk, formatProblems } from './config-check.js';

const dir = mkdtempSync(join(tmpdir(), 'ebpf-tuner-config-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string, mode = 0o644): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  chmodSync(f, mode);
  return f;
}

describe('checkConfigFile (--schema-only: nothing about this host)', () => {
  it('a valid file: ok, with a one-line summary', () => {
    const f = file('ok.yaml', 'tick: 500ms\ntargets:\n  - {name: a, role: noisy, comm: worker}\n  - {name: b, role: protect, pids: [1, 2]}\n');
    const r = checkConfigFile(f, { schemaOnly: true });
    expect(r).toMatchObject({ ok: true, source: f, hostChecked: false, issues: [] });
    expect(r.summary).toMatchObject({ targets: 2, targetKinds: { comm: 1, pids: 1 }, devices: 0, tickMs: 500, strategy: 'heuristic' });
    // Named as the file spells them, in the schema's order.
    expect(r.summary!.rules).toEqual(['noisy_neighbor', 'cpuset_spread', 'numa_rebalance', 'pressure_backoff', 'io_prefetch']);
    expect(formatOk(r)).toBe(
      `ebpf-tuner config check: ${f}: OK — 2 targets (1 comm, 1 pids), 0 devices, 0 PSI triggers, tick 500ms, 5 of 5 rules on, ` +
        'strategy heuristic; not checked against this host (--schema-only)',
    );
  });

  it('an unsafe file and schema errors: every one of them, the file first', () => {
    const f = file('bad.yaml', 'tick: 5ms\nguardrails: {cooldown: soon}\n', 0o666);
    const r = checkConfigFile(f, { schemaOnly: true });
    expect(r.ok).toBe(false);
    expect(r.summary).toBeUndefined();
    expect(r.issues.map((i) => i.path)).toEqual(['', 'tick', 'guardrails.cooldown']);
    expect(r.issues[0]!.message).toMatch(/writable by group and others — fix: run `chmod go-w /);
    const lines = formatProblems(r).split('\n');
    expect(lines[0]).toMatch(new RegExp(`^ebpf-tuner config check: ${f}: 3 problems, first: check config file `));
    expect(lines.slice(1).map((l) => l.replace(/:.*/, ''))).toEqual(['  check config file ' + f, '  line 1, column 1', '  line 2, column 14']);
  });

  it('a file that is not there, or not a file, is one problem naming it', () => {
    const missing = join(dir, 'missing.yaml');
    expect(checkConfigFile(missing).issues).toEqual([{ path: '', message: 'file not found — fix: check the path' }]);
    expect(checkConfigFile(dir).issues).toEqual([{ path: '', message: 'is a directory — fix: point at the YAML file inside it' }]);
  });
});
