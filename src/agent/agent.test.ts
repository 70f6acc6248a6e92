/**
 * The agent's decision path on cgroup v2, against the faithful fake cgroup2 tree (this host's v2 hierarchy has no cpu
 * controller): a signal reporting a hurting protect target makes the agent lower the noisy target's cpu.weight, the
 * original is journaled first, and stop() puts it back. Signals are injected; the BPF side is covered by kernel tests.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import type { Signal, TargetSignals } from '../core/types.js';
import { parseConfig } from '../config/load.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../cgroup/fake-cgroup2.js';
import { Journal } from '../journal/journal.js';
import { Agent } from './agent.js';
import { runqlatWindow } from '../signals/windows.js';

/** Reports a fixed run-queue p99 for the protect target and on-CPU time for the noisy one. */
class ScriptedSignal implements Signal {
  readonly name = 'runqlat';
  p99 = 10_000;
  /** batch's on-CPU µs per 1 s tick: 0.9 CPU, and a ninth of that waiting. */
  batchOncpuUs = 9e5;
  start(): void {}
  collect(_now: number, out: Record<string, TargetSignals>): void {
    out.web.runqlat = runqlatWindow({ count: 500, p50: 100, p90: 1000, p99: this.p99, mean: 300, p99Ewma: this.p99, waitUs: 1e5, oncpuUs: 1e5 });
    out.batch.runqlat = runqlatWindow({ count: 500, p50: 100, p90: 1000, p99: 20_000, mean: 3000, p99Ewma: 20_000, waitUs: this.batchOncpuUs / 9, oncpuUs: this.batchOncpuUs });
  }
  close(): void {}
}

let fake: FakeCgroup2;
let state: string;

beforeEach(() => {
  fake = createFakeCgroup2();
  fake.mkdir('app/web');
  fake.mkdir('app/batch');
  state = mkdtempSync(join(tmpdir(), 'agent-test-'));
  // Knob claims of the fake tree's knobs go to a private registry, not the host's /run/ebpf-tuner.
  process.env.EBPF_TUNER_RUN_DIR = join(state, 'run');
});

afterEach(() => {
  delete process.env.EBPF_TUNER_RUN_DIR;
  fake.remove();
  rmSync(state, { recursive: true, force: true });
});

function config(dryRun = false) {
  const text = `tick: 1s
policy: {noisy_neighbor: {p99_threshold_us: 4000, trigger_ticks: 2, calm_ticks: 3}}
guardrails: {cooldown: 0s}
closed_loop: {warmup_ticks: 0}
targets:
  - {name: web, cgroup: ${fake.path('app/web')}, role: protect}
  - {name: batch, cgroup: ${fake.path('app/batch')}, role: noisy}
`;
  void dryRun;
  return parseConfig(text, 'test.yaml');
}

const weight = (rel: string) => readFileSync(join(fake.path(rel), 'cpu.weight'), 'utf8').trim();

describe('agent on cgroup v2 (fake tree)', () => {
  it('lowers the noisy cpu.weight after trigger ticks, journals first, restores on stop', async () => {
    const signal = new ScriptedSignal();
    const agent = new Agent({ config: config(), log: silentLogger, stateDir: state, layout: fake.layout, probe: fake.probe, signals: [signal] });
    await agent.start();
    expect(agent.targetList.map((t) => t.scope.kind === 'cgroup' && t.scope.version)).toEqual([2, 2]);
    let t = Date.now();
    agent.tick((t += 1000));
    expect(weight('app/batch')).toBe('100');
    agent.tick((t += 1000));
    expect(weight('app/batch')).toBe('50');
    expect(weight('app/web')).toBe('100');
    // The original was durable before the write: a second reader of the journal sees it.
    const j = Journal.open(state, silentLogger);
    expect(j.active().map((e) => [e.path, e.original])).toEqual([[join(fake.path('app/batch'), 'cpu.weight'), '100']]);
    j.close();
    const report = await agent.stop();
    expect(report?.restored).toHaveLength(1);
    expect(weight('app/batch')).toBe('100');
  });

  it('restores once the protect target has been calm and the noisy one quiet for calm_ticks', async () => {
    const signal = new ScriptedSignal();
    const agent = new Agent({ config: config(), log: silentLogger, stateDir: state, layout: fake.layout, probe: fake.probe, signals: [signal] });
    await agent.start();
    let t = Date.now();
    agent.tick((t += 1000));
    agent.tick((t += 1000));
    expect(weight('app/batch')).toBe('50');
    // Calm while batch still wants its CPU: the step is what made it calm, so it holds.
    signal.p99 = 500;
    for (let i = 0; i < 10; i++) agent.tick((t += 1000));
    expect(weight('app/batch')).toBe('50');
    signal.batchOncpuUs = 0;
    for (let i = 0; i < 10 && weight('app/batch') !== '100'; i++) agent.tick((t += 1000));
    expect(weight('app/batch')).toBe('100');
    await agent.stop();
  });

  it('dry-run decides the same but writes nothing', async () => {
    const signal = new ScriptedSignal();
    const agent = new Agent({ config: config(), log: silentLogger, stateDir: state, layout: fake.layout, probe: fake.probe, signals: [signal], dryRun: true });
    await agent.start();
    let t = Date.now();
    agent.tick((t += 1000));
    agent.tick((t += 1000));
    expect(weight('app/batch')).toBe('100');
    await agent.stop();
  });

  it('ticks early when a signal wakes it (a PSI trigger), instead of waiting for the next tick', async () => {
    const signal = new ScriptedSignal();
    let wake: ((reason: string) => void) | undefined;
    const waking = Object.assign(signal, { onWake: (fn: (r: string) => void) => ((wake = fn), () => (wake = undefined)) });
    const slow = parseConfig(`tick: 60s\ntargets:\n  - {name: web, cgroup: ${fake.path('app/web')}, role: protect}\n  - {name: batch, cgroup: ${fake.path('app/batch')}, role: noisy}\n`, 't.yaml');
    const agent = new Agent({ config: slow, log: silentLogger, stateDir: state, layout: fake.layout, probe: fake.probe, signals: [waking] });
    await agent.start();
    expect(agent.last).toBeUndefined();
    await new Promise((r) => setTimeout(r, 150));
    wake?.('psi trigger');
    expect(agent.last?.targets.web.runqlat?.p99).toBe(10_000);
    await agent.stop();
    expect(wake).toBeUndefined();
  });

  it('reverts a nudge that did not help, records why, and does not try that rule on that target again for a while', async () => {
    const signal = new ScriptedSignal(); // p99 stays at 10 ms whatever the agent does
    const text = `tick: 1s
policy: {noisy_neighbor: {p99_threshold_us: 4000, trigger_ticks: 2, calm_ticks: 3}}
guardrails: {cooldown: 0s}
closed_loop: {window_ticks: 3, margin: 0.1, penalty: 5m, warmup_ticks: 0}
targets:
  - {name: web, cgroup: ${fake.path('app/web')}, role: protect}
  - {name: batch, cgroup: ${fake.path('app/batch')}, role: noisy}
`;
    const agent = new Agent({ config: parseConfig(text, 't.yaml'), log: silentLogger, stateDir: state, layout: fake.layout, probe: fake.probe, signals: [signal] });
    const seen: { kind: string; outcome?: string; reason?: string }[] = [];
    const { channels } = await import('../core/events.js');
    const onDecision = (d: unknown) => seen.push(d as { kind: string; outcome?: string; reason?: string });
    channels.decision.subscribe(onDecision);
    try {
      await agent.start();
      let t = Date.now();
      agent.tick((t += 1000));
      agent.tick((t += 1000));
      expect(weight('app/batch')).toBe('50');
      for (let i = 0; i < 4; i++) agent.tick((t += 1000));
      expect(weight('app/batch')).toBe('100');
      const reverted = seen.find((d) => d.kind === 'reverted');
      expect(reverted?.reason ?? '').toMatch(/closed loop: .*keeping needs p ≤ 0.05 and ≥ 10% better/);
      // Still hot, but penalised: the same rule on the same target is refused, not retried.
      for (let i = 0; i < 3; i++) agent.tick((t += 1000));
      expect(weight('app/batch')).toBe('100');
      expect(seen.some((d) => d.kind === 'refused' && /PENALISED/.test(d.outcome ?? ''))).toBe(true);
      await agent.stop();
    } finally {
      channels.decision.unsubscribe(onDecision);
    }
  });
});

