import { request } from 'node:http';
import parsePrometheusTextFormat, { type PromFamily } from 'parse-prometheus-text-format';
import { afterEach, describe, expect, it } from 'vitest';
import { channels } from '../core/events.js';
import { isTunerError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import { FakeControl, openEventStream, publishDecision, publishTick, syntheticDecision, syntheticSnapshot } from './fake-control.js';
import { isLoopbackHost, parseListen } from './address.js';
import { startHttpServer, type HttpServerHandle, type HttpServerOptions } from './server.js';
import type { DecisionEvent } from '../core/events.js';
import type { RunqlatWindow } from '../signals/runqlat/runqlat.js';
import { cgstatWindow, runqlatWindow } from '../signals/windows.js';

const TOKEN = 'test-token-0123456789abcdef';

const open: HttpServerHandle[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function start(
  over: Partial<HttpServerOptions> = {},
): Promise<{ url: string; control: FakeControl; srv: HttpServerHandle }> {
  const control = (over.control as FakeControl | undefined) ?? new FakeControl();
  const srv = await startHttpServer({ listen: '127.0.0.1:0', control, log: silentLogger, ...over });
  open.push(srv);
  return { url: srv.url, control, srv };
}

function decision(i: number, over: Partial<DecisionEvent> = {}): DecisionEvent {
  return syntheticDecision({ id: `d${i}`, time: 1_700_000_000_000 + i * 1000, reason: `web p99 above threshold (${i})`, ...over });
}

/** Raw request, for what fetch will not send (a chunked body, a foreign Host header). */
function raw(
  url: string,
  opts: { method?: string; path: string; headers?: Record<string, string>; chunks?: Buffer[] },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request(
      { host: u.hostname, port: u.port, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    for (const c of opts.chunks ?? []) req.write(c);
    req.end();
  });
}

describe('listen address', () => {
  it('parses host:port and bracketed IPv6', () => {
    expect(parseListen('127.0.0.1:9479')).toEqual({ host: '127.0.0.1', port: 9479 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseListen('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    for (const bad of ['127.0.0.1', ':9479', '1.2.3.4:99999', '[zz]:1', 'a b:1']) {
      expect(() => parseListen(bad), bad).toThrow(/expected HOST:PORT|not an IPv6/);
    }
  });

  it('counts only 127/8, ::1 and localhost as loopback', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1'])
      expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'myhost', '128.0.0.1']) expect(isLoopbackHost(h), h).toBe(false);
  });

  it('refuses a non-loopback bind without a token, naming the fix', async () => {
    const err = await startHttpServer({ listen: '0.0.0.0:0', control: new FakeControl(), log: silentLogger }).catch(
      (e: unknown) => e,
    );
    expect(isTunerError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toMatch(/0\.0\.0\.0:0.*--token-file/);
    expect(channels.tick.hasSubscribers).toBe(false);
  });

  it('refuses a short token', async () => {
    const err = await startHttpServer({
      control: new FakeControl(),
      log: silentLogger,
      token: 'short',
      listen: '127.0.0.1:0',
    }).catch((e: unknown) => e);
    expect(isTunerError(err, 'CONFIG_INVALID')).toBe(true);
  });

  it('reports a port in use as a config error', async () => {
    const { url } = await start();
    const err = await startHttpServer({
      listen: url.slice('http://'.length),
      control: new FakeControl(),
      log: silentLogger,
    }).catch((e: unknown) => e);
    expect(isTunerError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toMatch(/in use.*--listen/);
  });
});

describe('probes and routing', () => {
  it('answers /healthz always and /readyz once the agent is ready', async () => {
    const { url, control } = await start();
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    control.isReady = false;
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    control.isReady = true;
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });

  it('answers unknown paths with 404 JSON and wrong methods with 405', async () => {
    const { url } = await start();
    const r404 = await fetch(`${url}/nope`);
    expect(r404.status).toBe(404);
    expect(r404.headers.get('content-type')).toMatch(/application\/json/);
    expect(((await r404.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    const r405 = await fetch(`${url}/api/pause`);
    expect(r405.status).toBe(405);
    expect(r405.headers.get('allow')).toBe('POST');
    expect((await fetch(`${url}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('serves only the allow-listed files', async () => {
    const { url } = await start();
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    // The page itself loads only the app; uPlot is fetched when a target's charts are opened.
    expect(await page.text()).toMatch(/<script src="\/app\.js" type="module">/);
    const lib = await fetch(`${url}/vendor/uPlot.iife.min.js`);
    expect(lib.status).toBe(200);
    expect(lib.headers.get('content-type')).toMatch(/javascript/);
    expect(
      (await fetch(`${url}/vendor/uPlot.iife.min.js`, { headers: { 'If-None-Match': lib.headers.get('etag') ?? '' } }))
        .status,
    ).toBe(304);
    for (const p of [
      '/vendor/uPlot.js',
      '/vendor/../package.json',
      '/index.html',
      '/app.js/',
      '/%2e%2e/package.json',
    ]) {
      expect((await raw(url, { path: p })).status, p).toBe(404);
    }
  });

  it('answers only to local Host names when on loopback', async () => {
    const { url } = await start();
    expect((await raw(url, { path: '/api/status', headers: { Host: 'evil.example:9479' } })).status).toBe(403);
    expect((await raw(url, { path: '/api/status', headers: { Host: 'localhost:9479' } })).status).toBe(200);
  });
});

describe('/metrics', () => {
  it('exports signals, decisions, changes, BPF and process cost in the Prometheus text format', async () => {
    const { url, control } = await start();
    control.runPrograms(1000, 250);
    control.write({
      knobId: 'batch/cpu.weight',
      target: 'batch',
      action: 'cpu-weight',
      path: '/sys/fs/cgroup/batch/cpu.weight',
      original: '100',
      value: '80',
    });
    const snap = syntheticSnapshot(1_700_000_000_000, 3);
    publishTick(snap);
    publishDecision(decision(1));
    publishDecision(decision(2));
    publishDecision(decision(3, { kind: 'refused', reason: 'cooldown' }));

    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    const families: PromFamily[] = parsePrometheusTextFormat(text);
    const fam = (n: string): PromFamily => {
      const f = families.find((x) => x.name === n);
      if (!f) throw new Error(`no family ${n} in:\n${text}`);
      return f;
    };
    const value = (n: string, labels?: Record<string, string>): number => {
      const m = fam(n).metrics.find((s) => JSON.stringify(s.labels ?? {}) === JSON.stringify(labels ?? {}));
      if (!m) throw new Error(`no sample ${n}${JSON.stringify(labels)}`);
      return Number(m.value);
    };

    for (const f of families) {
      expect(f.name).toMatch(/^(ebpf_tuner|process|nodejs)_[a-z0-9_]+$/);
      expect(['GAUGE', 'COUNTER', 'HISTOGRAM']).toContain(f.type);
      expect(f.help.length).toBeGreaterThan(0);
      expect(f.name.endsWith('_total'), f.name).toBe(f.type === 'COUNTER');
      for (const s of f.metrics) {
        if ('value' in s) expect(Number.isNaN(Number(s.value)), `${f.name} ${s.value}`).toBe(false);
        expect(Object.keys(s.labels ?? {})).not.toContain('pid');
      }
    }
    expect(new Set(families.map((f) => f.name)).size).toBe(families.length);
    // Nothing per-tick is exported as a level any more: latency lives in the histograms.
    expect(families.map((f) => f.name).filter((n) => /^ebpf_tuner_.*_p(50|90|99)_seconds$/.test(n))).toEqual([]);

    const web = snap.targets.web?.runqlat as RunqlatWindow;
    expect(fam('ebpf_tuner_runqueue_latency_seconds').type).toBe('HISTOGRAM');
    // The parser above folds histogram series together, dropping their labels; read web's lines directly.
    const series = (suffix: string): Map<string, number> =>
      new Map(
        [...text.matchAll(new RegExp(`^ebpf_tuner_runqueue_latency_seconds_${suffix}\\{target="web"(?:,le="([^"]+)")?\\} (\\S+)$`, 'gm'))].map(
          (m) => [m[1] ?? '', Number(m[2])],
        ),
      );
    const buckets = series('bucket');
    // Bucket i of the kernel's log2 µs histogram is le = 2^(i+1) µs; counts are cumulative over buckets.
    let acc = 0;
    for (let i = 0; i < web.hist.counts.length - 1; i++) {
      acc += web.hist.counts[i] ?? 0;
      expect(buckets.get(String(2 ** (i + 1) / 1e6)), `le ${i}`).toBe(acc);
    }
    expect(buckets.size).toBe(web.hist.counts.length);
    expect(buckets.get('+Inf')).toBe(web.hist.count);
    expect(series('count').get('')).toBe(web.hist.count);
    expect(series('sum').get('')).toBeCloseTo(web.hist.sumUs / 1e6, 9);
    expect(value('ebpf_tuner_runqueue_latency_p99_smoothed_seconds', { target: 'web' })).toBeCloseTo(web.p99Ewma / 1e6, 12);
    expect(value('ebpf_tuner_context_switches_total', { target: 'web', kind: 'involuntary' })).toBe(300);
    expect(value('ebpf_tuner_oncpu_seconds_total', { target: 'batch' })).toBeGreaterThan(1);
    expect(value('ebpf_tuner_host_pressure_avg10_ratio', { resource: 'cpu', kind: 'some' })).toBeCloseTo(
      (12 + 5 * Math.sin(0.5)) / 100,
      9,
    );
    expect(value('ebpf_tuner_host_pressure_stalled_seconds_total', { resource: 'cpu', kind: 'some' })).toBeCloseTo(5.36, 9);
    expect(value('ebpf_tuner_decisions_total', { kind: 'applied', action: 'cpu-weight' })).toBe(2);
    expect(value('ebpf_tuner_decisions_total', { kind: 'refused', action: 'cpu-weight' })).toBe(1);
    // Known label sets exist before their first decision.
    expect(value('ebpf_tuner_decisions_total', { kind: 'applied', action: 'cpuset-spread' })).toBe(0);
    expect(value('ebpf_tuner_changes_active')).toBe(1);
    expect(value('ebpf_tuner_bpf_program_run_seconds_total', { program: 'handle_sched_switch' })).toBeCloseTo(250e-6, 12);
    expect(value('ebpf_tuner_bpf_program_runs_total', { program: 'handle_sched_wakeup' })).toBe(1000);
    expect(value('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(value('process_resident_memory_bytes')).toBeGreaterThan(1024 * 1024);
    expect(value('ebpf_tuner_ticks_total')).toBe(1);
    expect(value('ebpf_tuner_tick_window_seconds')).toBe(1);
  });

  it('sums per-tick increases into counters, so a slow scrape misses nothing', async () => {
    const { url } = await start();
    for (let i = 0; i < 15; i++) publishTick(syntheticSnapshot(1_700_000_000_000 + i * 1000, i));
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(/^ebpf_tuner_context_switches_total\{target="web",kind="involuntary"\} 4500$/m);
    expect(text).toMatch(/^ebpf_tuner_cpu_migrations_total\{target="batch"\} 75$/m);
  });

  it('escapes label values so any target name stays parseable', async () => {
    const { url } = await start();
    const name = 'we"b\\x\ny';
    publishTick({
      time: 1,
      windowMs: 1000,
      targets: {
        [name]: {
          name,
          role: 'protect',
          runqlat: runqlatWindow({ count: 1, p50: 1, p90: 2, p99: 3, mean: 1, p99Ewma: 3, waitUs: 1, oncpuUs: 1 }),
          cgstat: cgstatWindow({ memoryBytes: 4096 }),
        },
      },
    });
    const families = parsePrometheusTextFormat(await (await fetch(`${url}/metrics`)).text());
    const f = families.find((x) => x.name === 'ebpf_tuner_cgroup_memory_usage_bytes');
    expect(f?.metrics[0]?.labels).toEqual({ target: name });
  });
});

describe('state-changing endpoints', () => {
  const endpoints = ['/api/pause', '/api/resume', '/api/changes/batch%2Fcpu.weight/revert'];
  const BATCH_WEIGHT = { knobId: 'batch/cpu.weight', target: 'batch', action: 'cpu-weight', path: '/x', original: '100', value: '80' };

  it('are disabled without a configured token, and change nothing', async () => {
    const { url, control } = await start();
    control.write(BATCH_WEIGHT);
    for (const p of endpoints) {
      const r = await fetch(url + p, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(r.status, p).toBe(403);
      expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/--token-file/);
    }
    expect(control.calls).toEqual([]);
    expect(control.isPaused).toBe(false);
    expect(control.knobs.get('batch/cpu.weight')?.state).toBe('active');
  });

  it('need the right bearer token when one is configured', async () => {
    const { url, control } = await start({ token: TOKEN });
    control.write(BATCH_WEIGHT);
    for (const p of endpoints) {
      for (const auth of [
        undefined,
        'Bearer wrong-token-0123456789',
        `Basic ${TOKEN}`,
        `Bearer ${TOKEN}x`,
        'Bearer ',
      ]) {
        const r = await fetch(url + p, { method: 'POST', headers: auth ? { Authorization: auth } : {} });
        expect(r.status, `${p} ${auth}`).toBe(401);
        expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
      }
    }
    expect(control.calls).toEqual([]);

    const auth = { Authorization: `Bearer ${TOKEN}` };
    const paused = await fetch(`${url}/api/pause`, { method: 'POST', headers: auth });
    expect(paused.status).toBe(200);
    expect(await paused.json()).toEqual({ paused: true });
    expect(((await (await fetch(`${url}/api/status`)).json()) as { paused: boolean }).paused).toBe(true);
    expect(
      (await fetch(`${url}/api/resume`, { method: 'POST', headers: { authorization: `bearer ${TOKEN}` } })).status,
    ).toBe(200);
    expect(control.isPaused).toBe(false);

    const reverted = await fetch(`${url}/api/changes/batch%2Fcpu.weight/revert`, { method: 'POST', headers: auth });
    expect(reverted.status).toBe(200);
    expect(control.knobs.get('batch/cpu.weight')?.state).toBe('restored');
    expect(
      (await fetch(`${url}/api/changes/batch%2Fcpu.weight/revert`, { method: 'POST', headers: auth })).status,
    ).toBe(404);
    expect((await fetch(`${url}/api/changes/%E0%A4%A/revert`, { method: 'POST', headers: auth })).status).toBe(400);
  });

  it('refuse a body over the limit with 413 and change nothing', async () => {
    const { url, control } = await start({ token: TOKEN });
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const big = 'x'.repeat(32 * 1024);
    const r = await fetch(`${url}/api/pause`, { method: 'POST', headers: auth, body: big });
    expect(r.status).toBe(413);
    // Without a Content-Length the limit is enforced while reading.
    const chunked = await raw(url, {
      method: 'POST',
      path: '/api/pause',
      headers: { ...auth, 'Transfer-Encoding': 'chunked' },
      chunks: [Buffer.alloc(8 * 1024, 1), Buffer.alloc(8 * 1024, 1), Buffer.alloc(8 * 1024, 1)],
    });
    expect(chunked.status).toBe(413);
    expect(control.calls).toEqual([]);
    expect((await fetch(`${url}/api/pause`, { method: 'POST', headers: auth, body: '{}' })).status).toBe(200);
  });
});

describe('JSON API', () => {
  it('keeps a bounded, ordered history of snapshots', async () => {
    const { url } = await start({ history: 5 });
    for (let i = 0; i < 8; i++) publishTick(syntheticSnapshot(1000 + i * 1000, i));
    const body = (await (await fetch(`${url}/api/signals`)).json()) as {
      windowMs: number;
      last: { time: number };
      history: { time: number }[];
      fields: { key: string; metric: string; unit: string }[];
    };
    expect(body.history.map((s) => s.time)).toEqual([4000, 5000, 6000, 7000, 8000]);
    expect(body.last.time).toBe(8000);
    expect(body.windowMs).toBe(1000);
    expect(body.fields.find((f) => f.key === 'runqlat.p99')).toMatchObject({
      unit: 'seconds',
    });
  });

  it('copies each snapshot, so a publisher reusing its object does not rewrite history', async () => {
    const { url } = await start();
    const s = syntheticSnapshot(1000, 0);
    publishTick(s);
    s.time = 2000;
    publishTick(s);
    const body = (await (await fetch(`${url}/api/signals`)).json()) as { history: { time: number }[] };
    expect(body.history.map((h) => h.time)).toEqual([1000, 2000]);
  });

  it('lists decisions newest first with a bounded, validated limit', async () => {
    const { url } = await start({ decisions: 10 });
    for (let i = 0; i < 15; i++) publishDecision(decision(i));
    const all = (await (await fetch(`${url}/api/decisions`)).json()) as { decisions: DecisionEvent[] };
    expect(all.decisions.map((d) => d.id)).toEqual(['d14', 'd13', 'd12', 'd11', 'd10', 'd9', 'd8', 'd7', 'd6', 'd5']);
    const two = (await (await fetch(`${url}/api/decisions?limit=2`)).json()) as { decisions: DecisionEvent[] };
    expect(two.decisions.map((d) => d.id)).toEqual(['d14', 'd13']);
    const more = (await (await fetch(`${url}/api/decisions?limit=500`)).json()) as { decisions: DecisionEvent[] };
    expect(more.decisions).toHaveLength(10);
    for (const bad of ['0', '1001', 'x', '1.5', '']) {
      const r = await fetch(`${url}/api/decisions?limit=${bad}`);
      expect(r.status, bad).toBe(400);
      expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/limit/);
    }
  });

  it('reports targets, changes and status', async () => {
    const { url, control } = await start({ version: '9.9.9' });
    control.write({ knobId: 'k1', target: 'batch', action: 'cpu-weight', path: '/x', original: '100', value: '80' });
    expect(await (await fetch(`${url}/api/targets`)).json()).toEqual({ targets: control.targets() });
    const changes = (await (await fetch(`${url}/api/changes`)).json()) as {
      changes: { knobId: string; state: string }[];
    };
    expect(changes.changes).toMatchObject([{ knobId: 'k1', state: 'active' }]);
    channels.lifecycle.publish({ state: 'ready' });
    const status = (await (await fetch(`${url}/api/status`)).json()) as Record<string, unknown>;
    expect(status).toMatchObject({ version: '9.9.9', paused: false, ready: true, state: 'ready', writable: false });
    expect(status.uptimeSeconds).toBeTypeOf('number');
  });

  it('survives malformed bus payloads and counts them', async () => {
    const { url } = await start();
    channels.tick.publish({ nope: true });
    channels.decision.publish(42);
    // A cycle inside a target's signals: what the server keeps of a tick cannot be written.
    const sig: Record<string, unknown> = { name: 'a', role: 'protect' };
    sig.self = sig;
    channels.tick.publish({ time: 1, targets: { a: sig } });
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(/^ebpf_tuner_bus_events_dropped_total 3$/m);
  });
});

describe('/api/stream', () => {
  const openStream = (url: string) => openEventStream(`${url}/api/stream`);

  it('pushes ticks and decisions as they are published, and forgets closed clients', async () => {
    const { url } = await start();
    const s = await openStream(url);
    const tick = s.next('tick');
    const dec = s.next('decision');
    publishTick(syntheticSnapshot(42_000, 1));
    publishDecision(decision(7));
    expect((JSON.parse(await tick) as { time: number }).time).toBe(42_000);
    expect((JSON.parse(await dec) as { id: string }).id).toBe('d7');
    const clients = async (): Promise<string | undefined> =>
      /^ebpf_tuner_http_sse_clients (\d+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1];
    expect(await clients()).toBe('1');
    s.close();
    await expect.poll(clients).toBe('0');
  });

  it('caps the number of clients', async () => {
    const { url } = await start({ limits: { maxSseClients: 2 } });
    const a = await openStream(url);
    const b = await openStream(url);
    await expect(openStream(url)).rejects.toThrow(/503/);
    a.close();
    b.close();
  });

  it('sends heartbeats and ends streams on close', async () => {
    const { url, srv } = await start({ limits: { sseHeartbeatMs: 20 } });
    const body = await new Promise<string>((resolve, reject) => {
      request(`${url}/api/stream`, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
          if (text.includes(': ping')) void srv.close();
        });
        res.on('end', () => resolve(text));
      })
        .on('error', reject)
        .end();
    });
    expect(body).toMatch(/^retry: \d+/);
    expect(body).toContain(': ping\n\n');
    await srv.close();
    expect(channels.tick.hasSubscribers).toBe(false);
  });
});
