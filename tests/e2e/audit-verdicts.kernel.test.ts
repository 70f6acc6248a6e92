/**
 * The audit of a dry run and the closed loop's verdicts, through the real CLI on the real kernel: a victim and a CPU
 * hog sibling in v1 cgroups the test creates. A dry run records its decisions in the state directory, where `log`
 * and `explain` show them marked as dry-run and without a verdict (nothing was changed, so nothing is judged), and
 * cpu.shares never moves. A real run's change gets a verdict that `explain` shows with its uncertainty.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/audit.js';
import type { TestCgroup } from '../../src/testing/cgroups.js';
import { noisyNeighborConfig, noisyNeighborScene, runCli, startAgent } from './helpers.js';

const shares = (cg: TestCgroup) => Number(readFileSync(join(cg.path, 'cpu.shares'), 'utf8'));

// Victim and hogs share CPU 1: contention the noisy-neighbor rule answers.
const scene = noisyNeighborScene();

function config(): string {
  return scene.state.file('config.yaml', noisyNeighborConfig(scene.web.path, scene.batch.path, 'closed_loop: {window_ticks: 5, warmup_ticks: 2, significance: 0.05}\n'));
}

function log(): AuditRecord[] {
  const r = runCli(['log', '--json', '--state-dir', scene.state.path]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as AuditRecord[];
}

describe('audit of dry runs and verdicts', () => {
  it('a dry run leaves its decisions, marked dry-run, for log and explain, and never a verdict', async () => {
    const agent = startAgent(['--config', config(), '--state-dir', scene.state.path, '--dry-run']);
    scene.procs.push(agent);
    const first = await agent.waitFor((l) => l.kind === 'dry-run' && l.action === 'cpu_weight', 20_000);
    expect(first.dryRun).toBe(true);
    // Long enough for a whole window after the decision, when a verdict would have come had the change been made.
    await new Promise((r) => setTimeout(r, 8_000));
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    expect(shares(scene.batch)).toBe(1024);
    expect(existsSync(join(scene.state.path, 'state.db'))).toBe(false);

    const rows = log();
    const dry = rows.filter((r) => r.kind === 'dry-run');
    expect(dry.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.dryRun === true)).toBe(true);
    expect(dry.map((r) => r.id)).toContain(first.decision);
    expect(rows.filter((r) => r.kind === 'kept' || r.kind === 'reverted' || r.verdict !== undefined)).toEqual([]);
    // The start-up ticks are no baseline: the first forward change waited for a clean one.
    expect(rows.some((r) => r.kind === 'refused' && /BASELINE/.test(r.outcome ?? ''))).toBe(true);

    const text = runCli(['explain', String(first.decision), '--state-dir', scene.state.path]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/dry run, nothing was changed/);
    expect(text.stdout).toMatch(/no verdict: a dry run changes nothing/);
    const json = JSON.parse(runCli(['explain', String(first.decision), '--json', '--state-dir', scene.state.path]).stdout) as {
      decision: AuditRecord;
      related: AuditRecord[];
    };
    expect(json.decision).toMatchObject({ kind: 'dry-run', dryRun: true, target: 'batch' });
    expect(json.related).toEqual([]);
  }, 60_000);

  it('a real run gets a verdict with its uncertainty, and a dry run beside it leaves the live journal alone', async () => {
    const agent = startAgent(['--config', config(), '--state-dir', scene.state.path]);
    scene.procs.push(agent);
    const applied = await agent.waitFor((l) => l.kind === 'applied' && l.action === 'cpu_weight', 20_000);
    // Independent source: the kernel's own file moved.
    expect(shares(scene.batch)).toBeLessThan(1024);

    // A dry run on the live agent's state directory: it runs beside it (no lock taken) and leaves the journal's
    // changes and originals as they were.
    // (The live agent may itself move the knob meanwhile — its verdict can fall due — so compare what it journaled.)
    const changes = () =>
      (JSON.parse(runCli(['status', '--json', '--state-dir', scene.state.path]).stdout) as { changes: { path: string; original: string }[] }).changes.map(
        (c) => [c.path, c.original],
      );
    const before = changes();
    const dry = runCli(['run', '--dry-run', '--duration', '2', '--config', config(), '--state-dir', scene.state.path]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(existsSync(join(scene.state.path, 'dry-run.db'))).toBe(true);
    expect(changes()).toEqual(before);

    const verdict = await agent.waitFor((l) => (l.kind === 'kept' || l.kind === 'reverted') && l.action === 'cpu_weight', 30_000);
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    expect(shares(scene.batch)).toBe(1024); // restored on stop

    const rows = log();
    const judged = rows.find((r) => r.id === verdict.decision)!;
    expect(judged.dryRun).toBeUndefined();
    expect(judged.verdict).toMatchObject({ decisionId: applied.decision, confidence: 0.9 });
    expect(judged.verdict!.samplesBefore).toBeGreaterThanOrEqual(1);
    expect(judged.verdict!.samples).toBeGreaterThanOrEqual(1);
    expect(typeof judged.verdict!.pValue).toBe('number');
    // Dry-run decisions from the run beside it are in the same log, marked, and none of them was judged.
    expect(rows.filter((r) => r.dryRun).every((r) => r.verdict === undefined && r.kind !== 'kept' && r.kind !== 'reverted')).toBe(true);

    const text = runCli(['explain', String(applied.decision), '--state-dir', scene.state.path]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/verdict: (kept|revert) — median \d+ before, \d+ after: \d+% (better|worse) \(.*p = [\d.e-]+; \d+ ticks before, \d+ after\)/);
    expect(text.stdout).not.toMatch(/dry run/);
  }, 90_000);
});
