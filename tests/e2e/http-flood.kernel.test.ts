/**
 * The agent's HTTP server under connection floods, through the real CLI on loopback: idle TCP connections,
 * slowloris clients dribbling their headers, and more event-stream clients than it admits. Throughout each flood a
 * probe asks /healthz ten times a second on a fresh connection; the availability is printed and must stay near
 * 100%. Every flood is bounded in connections and time.
 */
import { get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cleanupAll, killAndWait, type SpawnedProcess } from '../../src/testing/cgroups.js';
import { startAgent, tempDir } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const procs: SpawnedProcess[] = [];
const sockets: Socket[] = [];
let state: ReturnType<typeof tempDir> | undefined;

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const p of procs.splice(0)) await killAndWait(p);
  state?.remove();
});

afterAll(async () => {
  await cleanupAll();
});

function probe(url: string, timeoutMs = 2000): Promise<{ ok: boolean; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = get(`${url}/healthz`, { agent: false, timeout: timeoutMs, headers: { Connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ok: res.statusCode === 200, ms: performance.now() - t0 }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ ok: false, ms: performance.now() - t0 }));
  });
}

/** Probes /healthz every 100 ms for `ms`; returns how many answered and the slowest answer. */
async function availability(url: string, ms: number): Promise<{ ok: number; total: number; worstMs: number }> {
  const runs: Promise<{ ok: boolean; ms: number }>[] = [];
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) runs.push(probe(url));
  const results = await Promise.all(runs);
  return { ok: results.filter((r) => r.ok).length, total: results.length, worstMs: Math.max(...results.map((r) => r.ms)) };
}

function open(url: string, first?: string): Socket {
  const { hostname, port } = new URL(url);
  const s = connect({ host: hostname, port: Number(port) });
  s.on('error', () => {});
  if (first !== undefined) s.write(first);
  sockets.push(s);
  return s;
}

function report(what: string, a: { ok: number; total: number; worstMs: number }): void {
  console.log(`${what}: /healthz answered ${a.ok}/${a.total} (${((100 * a.ok) / a.total).toFixed(1)}%), slowest ${a.worstMs.toFixed(0)} ms`);
}

describe('http server under connection floods', () => {
  it('keeps /healthz answering through idle, slowloris and event-stream floods', async () => {
    state = tempDir();
    const agent = startAgent(['--state-dir', `${state.path}/state`, '--listen', '127.0.0.1:0']);
    procs.push(agent);
    const url = String((await agent.waitFor((l) => l.msg === 'serve http: listening')).url);
    const results: Record<string, { ok: number; total: number; worstMs: number }> = {};

    // 1. 300 connections that never send a byte.
    for (let i = 0; i < 300; i++) open(url);
    await sleep(200);
    results.idle = await availability(url, 6000);
    report('300 idle connections', results.idle);
    for (const s of sockets.splice(0)) s.destroy();

    // 2. 300 slowloris clients: a request line, then one header line a second, never the blank line.
    for (let i = 0; i < 300; i++) open(url, 'GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const drip = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write(`X-Slow-${Date.now() % 1000}: 1\r\n`);
    }, 1000);
    await sleep(200);
    results.slowloris = await availability(url, 8000);
    clearInterval(drip);
    report('300 slowloris connections', results.slowloris);
    for (const s of sockets.splice(0)) s.destroy();

    // 3. 40 event-stream clients (16 admitted, the rest answered 503 and left idle on keep-alive) and 200 idle ones.
    for (let i = 0; i < 40; i++) open(url, 'GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
    for (let i = 0; i < 200; i++) open(url);
    await sleep(200);
    results.streams = await availability(url, 6000);
    report('40 stream clients + 200 idle connections', results.streams);

    for (const [what, a] of Object.entries(results)) expect(a.ok / a.total, what).toBeGreaterThanOrEqual(0.95);
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
  });
});
