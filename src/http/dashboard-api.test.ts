/**
 * The API the dashboard is built on: /api/overview, /api/signals?target=, /api/decisions/ID and the per-view
 * streams. Shapes, sizes, gaps with their reasons, the explain text shared with the CLI, and the token rules.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import { explainText } from '../audit/explain.js';
import type { AuditRecord } from '../audit/audit.js';
import { FakeControl, openEventStream, publishDecision, publishTick, syntheticDecision, syntheticFleet, syntheticSnapshot } from './fake-control.js';
import type { Overview } from './overview.js';
import type { TargetDetails } from './details.js';
import { startHttpServer, type HttpServerHandle, type HttpServerOptions } from './server.js';
import { channels, type DecisionEvent, type HoldEvent } from '../core/events.js';
import { busyHold } from '../testing/holds.js';
import type { AgentStatus } from './api.js';
import type { TargetInfo } from './types.js';

const TOKEN = 'test-token-0123456789abcdef';
const open: HttpServerHandle[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function start(over: Partial<HttpServerOptions> = {}): Promise<{ url: string; control: FakeControl }> {
  const control = (over.control as FakeControl | undefined) ?? new FakeControl();
  const srv = await startHttpServer({ listen: '127.0.0.1:0', control, log: silentLogger, ...over });
  open.push(srv);
  return { url: srv.url, control };
}

const fleet = (n: number): TargetInfo[] =>
  Array.from({ length: n }, (_, k) => ({ name: `svc-${k}`, role: k % 2 ? 'noisy' : 'protect' }));

function decision(id: string, over: Partial<DecisionEvent> = {}): DecisionEvent {
  return syntheticDecision({ id, time: 1_700_000_100_000, reason: 'web p99 above 1 ms for 3 ticks', evidence: { p99Us: 2400, calm: 0.25 }, ...over });
}

async function json<T>(url: string, init?: RequestInit): Promise<{ status: number; body: T; bytes: number }> {
  const r = await fetch(url, init);
  const text = await r.text();
  return { status: r.status, body: JSON.parse(text) as T, bytes: Buffer.byteLength(text) };
}

describe('/api/overview', () => {
  it('has one row per target with role, p99, sparkline, on-CPU, knobs and last decision, and host pressure once', async () => {
    const { url, control } = await start();
    for (let i = 0; i < 30; i++) publishTick(syntheticSnapshot(1_700_000_000_000 + i * 1000, i));
    publishDecision(decision('d1', { target: 'batch' }));
    publishDecision(decision('d0', { target: 'batch', time: 1_700_000_000_000 }));
    control.write({ knobId: 'batch/cpu.weight', target: 'batch', action: 'cpu-weight', path: '/x/cpu.weight', original: '100', value: '80' });
    const { body: o } = await json<Overview & { status: { ready: boolean } }>(`${url}/api/overview`);
    expect(o.status.ready).toBe(true);
    expect(o.history).toBe(600);
    expect(o.spark).toEqual({ from: 1_700_000_000_000, to: 1_700_000_029_000, points: 30 });
    expect(o.targets.map((t) => [t.name, t.role])).toEqual([
      ['web', 'protect'],
      ['batch', 'noisy'],
    ]);
    const [web, batch] = o.targets;
    expect(web!.p99SparkUs).toHaveLength(30);
    expect(web!.p99Us).toBe(web!.p99SparkUs[29]);
    expect(web!.oncpuRatio).toBeGreaterThan(0);
    expect(web!.knobs).toEqual([]);
    expect(web!.lastDecision).toBeNull();
    expect(batch!.knobs).toEqual([{ knobId: 'batch/cpu.weight', action: 'cpu-weight', path: '/x/cpu.weight', original: '100', value: '80' }]);
    // The newest by time, not the last heard.
    expect(batch!.lastDecision).toMatchObject({ id: 'd1', kind: 'applied', reason: 'web p99 above 1 ms for 3 ticks' });
    expect(o.host?.some.cpu).toBeCloseTo(0.12 + 0.05 * Math.sin(29 / 6), 2);
    expect(o.decisions).toBe(2);
    expect(o.changesActive).toBe(1);
  });

  it('names why a target has no p99 rather than showing 0', async () => {
    const control = new FakeControl([
      { name: 'web', role: 'protect' },
      { name: 'idle', role: 'protect' },
    ]);
    const { url } = await start({ control });
    const snap = syntheticSnapshot(1_700_000_000_000, 1);
    delete (snap.targets.web as { runqlat?: unknown }).runqlat;
    publishTick(snap);
    const { body: o } = await json<Overview>(`${url}/api/overview`);
    const web = o.targets.find((t) => t.name === 'web')!;
    expect(web.p99Us).toBeNull();
    expect(web.gap).toMatch(/run-queue signal reported nothing/);
    const idle = o.targets.find((t) => t.name === 'idle')!;
    expect(idle.p99SparkUs).toEqual([null]);
    expect(idle.gap).toMatch(/not in the last tick/);
  });

  it('stays under 300 KB for 10 targets over the default 600 ticks', async () => {
    const targets = fleet(10);
    const { url } = await start({ control: new FakeControl(targets) });
    for (let i = 0; i < 700; i++) publishTick(syntheticFleet(1_700_000_000_000 + i * 1000, i, targets));
    const { body, bytes } = await json<Overview>(`${url}/api/overview`);
    expect(body.targets).toHaveLength(10);
    expect(body.spark.points).toBe(600);
    expect(body.targets.every((t) => t.p99SparkUs.length === 600)).toBe(true);
    const full = await fetch(`${url}/api/signals`).then(async (r) => Buffer.byteLength(await r.text()));
    console.log(`/api/overview for 10 targets × 600 ticks: ${bytes} bytes (the whole /api/signals: ${full} bytes)`);
    expect(bytes).toBeLessThan(300 * 1024);
  });

  it('keeps fewer ticks rather than more memory for many targets, oldest dropped first, and says so', async () => {
    const targets = fleet(200);
    const historyBytes = 4 * 2 ** 20;
    const { url } = await start({ control: new FakeControl(targets), historyBytes });
    const t0 = 1_700_000_000_000;
    for (let i = 0; i < 60; i++) publishTick(syntheticFleet(t0 + i * 1000, i, targets));
    const { body } = await json<Overview>(`${url}/api/overview`);
    const metrics = await fetch(`${url}/metrics`).then((r) => r.text());
    const gauge = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
    const kept = gauge('ebpf_tuner_http_history_ticks');
    const bytes = gauge('ebpf_tuner_http_history_bytes');
    console.log(`200 targets, ${historyBytes} bytes allowed: ${kept} ticks kept, ${bytes} bytes counted`);
    expect(kept).toBeGreaterThan(1);
    expect(kept).toBeLessThan(60);
    expect(bytes).toBeLessThanOrEqual(historyBytes);
    // The newest ticks stay, and the dashboard is told how many it can expect.
    expect(body.spark).toEqual({ from: t0 + (60 - kept) * 1000, to: t0 + 59_000, points: kept });
    expect(body.history).toBe(kept);
    const signals = await json<{ history: { time: number }[] }>(`${url}/api/signals`);
    expect(signals.body.history.map((h) => h.time)).toEqual(Array.from({ length: kept }, (_, k) => t0 + (60 - kept + k) * 1000));
  });

  it('keeps a snapshot\'s text exactly, characters beyond Latin-1 included', async () => {
    const { url } = await start();
    const snap = syntheticSnapshot(1_700_000_000_000, 0);
    const web = snap.targets.web!;
    const reason = 'cpu.pressure: not on cgroup v1 — the unified tree has no cpu controller ✓ 🙂';
    publishTick({ ...snap, targets: { ...snap.targets, web: { ...web, cgstat: { ...web.cgstat!, unavailable: [reason] } } } });
    const { body } = await json<{ last: { targets: Record<string, { cgstat: { unavailable: string[] } }> }; history: { targets: Record<string, { cgstat: { unavailable: string[] } }> }[] }>(`${url}/api/signals`);
    expect(body.last.targets.web!.cgstat.unavailable).toEqual([reason]);
    expect(body.history[0]!.targets.web!.cgstat.unavailable).toEqual([reason]);
  });
});

describe('/api/signals?target=', () => {
  it('returns one target as declared charts with units, gaps with reasons, and facts', async () => {
    const targets = fleet(3);
    const { url } = await start({ control: new FakeControl(targets) });
    for (let i = 0; i < 20; i++) publishTick(syntheticFleet(1_700_000_000_000 + i * 1000, i, targets));
    const { status, body: d } = await json<TargetDetails>(`${url}/api/signals?target=svc-1`);
    expect(status).toBe(200);
    expect(d.target).toBe('svc-1');
    expect(d.role).toBe('noisy');
    expect(d.times).toHaveLength(20);
    const byId = new Map(d.charts.map((c) => [c.id, c]));
    const runq = byId.get('runq')!;
    expect(runq.title).toBe('Run-queue latency');
    expect(runq.unit).toBe('seconds');
    expect(runq.series.map((s) => s.label)).toEqual(['p50', 'p90', 'p99', 'p99 smoothed']);
    // µs in the snapshot, seconds here.
    expect(runq.series[2]!.values.every((v) => v !== null && v > 1e-4 && v < 1e-2)).toBe(true);
    expect(runq.gaps).toEqual([]);
    const switches = byId.get('switches')!;
    expect(switches.unit).toBe('/s');
    // The memory part is unavailable: nulls, and one merged gap with the snapshot's reason.
    const mem = byId.get('memory')!;
    expect(mem.series.every((s) => s.values.every((v) => v === null))).toBe(true);
    expect(mem.gaps).toEqual([{ from: 1_700_000_000_000, to: 1_700_000_019_000, reason: expect.stringMatching(/^memory: the target has no cgroup/) }]);
    expect(byId.get('pressure')!.gaps[0]!.reason).toMatch(/cgroup v1 keeps no per-cgroup pressure/);
    // CPU numbers and limits are facts, not lines; host pressure is not repeated per target.
    expect(d.facts.map((f) => f.label)).toEqual(expect.arrayContaining(['cgroup version', 'CPUs allowed', 'busiest CPU']));
    expect(JSON.stringify(d)).not.toContain('someTotalUs');
    expect(d.unavailable).toHaveLength(2);
  });

  it('answers 404 for an unknown target and 400 for a bad name', async () => {
    const { url } = await start();
    publishTick(syntheticSnapshot(1_700_000_000_000, 1));
    const r = await json<{ error: { code: string; message: string } }>(`${url}/api/signals?target=nope`);
    expect(r.status).toBe(404);
    expect(r.body.error.message).toMatch(/find target nope: no such target/);
    expect((await fetch(`${url}/api/signals?target=`)).status).toBe(400);
    expect((await fetch(`${url}/api/signals?target=a%01b`)).status).toBe(400);
  });
});

describe('/api/decisions/ID', () => {
  it('returns the decision with the text of `explain`, from the agent’s audit trail first', async () => {
    const verdictLater: AuditRecord = { ...decision('d2'), id: 'd2-kept', kind: 'kept', ref: 'd2', time: 1_700_000_200_000, reason: 'p99 fell 40%' };
    const control = new FakeControl();
    const audit = new Map<string, { decision: AuditRecord; related: AuditRecord[] }>([['d2', { decision: { ...decision('d2'), outcome: 'kept' }, related: [verdictLater] }]]);
    (control as FakeControl & { decision(id: string): unknown }).decision = (id: string) => audit.get(id);
    const { url } = await start({ control });
    publishDecision(decision('d2'));
    publishDecision(decision('only-heard', { kind: 'dry-run' }));
    const a = await json<{ source: string; explain: string; decision: AuditRecord; related: AuditRecord[] }>(`${url}/api/decisions/d2`);
    expect(a.status).toBe(200);
    expect(a.body.source).toBe('audit');
    expect(a.body.explain).toBe(explainText(audit.get('d2')!.decision, [verdictLater]));
    expect(a.body.explain).toMatch(/^d2 at 2023-11-14 22:1\d:\d\dZ: applied — cpu-weight on batch, by noisy-neighbor\nwhy: /);
    expect(a.body.explain).toContain('outcome: kept');
    expect(a.body.explain).toContain('then d2-kept at');
    const b = await json<{ source: string; explain: string }>(`${url}/api/decisions/only-heard`);
    expect(b.body.source).toBe('recent');
    expect(b.body.explain).toContain('evidence:\n  p99Us = 2400\n  calm = 0.250');
    // A shadow choice of the learned strategy travels the same channel: kept and explained, not dropped.
    channels.decision.publish({ ...decision('shadow-1'), kind: 'shadow', reason: 'shadow: learner would choose cpu_weight' });
    const s = await json<{ source: string; explain: string }>(`${url}/api/decisions/shadow-1`);
    expect(s.body.source).toBe('recent');
    expect(s.body.explain).toMatch(/^shadow-1 at .*: shadow — cpu-weight on batch, by noisy-neighbor\nwhy: shadow: learner would choose/);
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/^ebpf_tuner_bus_events_dropped_total 0$/m);
    const c = await json<{ error: { message: string } }>(`${url}/api/decisions/missing`);
    expect(c.status).toBe(404);
    expect(c.body.error.message).toMatch(/explain missing: no such decision/);
  });
});

describe('token rules for the dashboard endpoints', () => {
  it('off loopback, every new endpoint needs the token', async () => {
    const { url } = await start({ listen: '0.0.0.0:0', token: TOKEN });
    const base = url.replace('0.0.0.0', '127.0.0.1');
    publishTick(syntheticSnapshot(1_700_000_000_000, 1));
    publishDecision(decision('d9'));
    for (const path of ['/api/overview', '/api/signals?target=web', '/api/decisions/d9', '/api/stream?view=overview']) {
      expect((await fetch(`${base}${path}`)).status, path).toBe(401);
      const ok = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(ok.status, path).toBe(200);
      await ok.body?.cancel();
    }
  });
});

describe('/api/stream views', () => {
  const stream = (url: string, path: string) => openEventStream(`${url}${path}`);

  it('sends each view only what it draws', async () => {
    const { url } = await start();
    publishTick(syntheticSnapshot(1_700_000_000_000, 0));
    const full = await stream(url, '/api/stream');
    const ov = await stream(url, '/api/stream?view=overview');
    const tg = await stream(url, '/api/stream?view=target&target=web');
    publishTick(syntheticSnapshot(1_700_000_001_000, 1));
    publishDecision(decision('d5'));
    await expect.poll(() => tg.events.length + ov.events.length + full.events.length).toBeGreaterThanOrEqual(6);
    expect(full.events.map((e) => e.event)).toEqual(expect.arrayContaining(['tick', 'decision']));
    expect(ov.events.map((e) => e.event)).toEqual(['overview', 'decision']);
    expect(tg.events.map((e) => e.event)).toEqual(['target', 'decision']);
    const delta = JSON.parse(ov.events[0]!.data) as { time: number; targets: { name: string; p99Us: number }[] };
    expect(delta.time).toBe(1_700_000_001_000);
    expect(delta.targets.map((t) => t.name)).toEqual(['web', 'batch']);
    const t = JSON.parse(tg.events[0]!.data) as { target: string; values: Record<string, (number | null)[]> };
    expect(t.target).toBe('web');
    expect(t.values.runq).toHaveLength(4);
    // A tick is far smaller for the views than for the full stream.
    const size = (s: { events: { event: string; data: string }[] }, ev: string) => s.events.find((e) => e.event === ev)!.data.length;
    expect(size(ov, 'overview')).toBeLessThan(size(full, 'tick') / 3);
    for (const s of [full, ov, tg]) s.close();
    expect((await fetch(`${url}/api/stream?view=target`)).status).toBe(400);
    expect((await fetch(`${url}/api/stream?view=target&target=nope`)).status).toBe(404);
    expect((await fetch(`${url}/api/stream?view=bogus`)).status).toBe(400);
  });
});

describe('changes held on purpose', () => {
  const hold = busyHold(1_700_000_000_000);

  it('are in /api/status, on their target in /api/targets and /api/overview, and announced on the stream once', async () => {
    const { url, control } = await start();
    publishTick(syntheticSnapshot(1_700_000_000_000, 0));
    expect((await json<AgentStatus>(`${url}/api/status`)).body.holds).toEqual([]);
    control.held = [hold];
    expect((await json<AgentStatus>(`${url}/api/status`)).body.holds).toEqual([hold]);
    expect((await json<{ targets: unknown[] }>(`${url}/api/targets`)).body.targets).toEqual([
      { name: 'web', role: 'protect' },
      { name: 'batch', role: 'noisy', holds: [hold] },
    ]);
    const { body: o } = await json<Overview>(`${url}/api/overview`);
    expect(o.targets.map((t) => [t.name, t.holds])).toEqual([
      ['web', []],
      ['batch', [hold]],
    ]);
    const ov = await openEventStream(`${url}/api/stream?view=overview`);
    const ev: HoldEvent = { kind: 'held', hold };
    channels.hold.publish(ev);
    await expect.poll(() => ov.events.length).toBe(1);
    expect(ov.events[0]!.event).toBe('hold');
    expect(JSON.parse(ov.events[0]!.data)).toEqual(ev);
    ov.close();
  });
});
