/**
 * The command line's edges, through the real CLI: every usage and config error exits 2 with one line
 * "ebpf-tuner <cmd>: <what>: <why> — fix: <what to do>" before anything is created or attached; off loopback the
 * token guards every request but the health probes, and a token file made readable by others after start is
 * noticed. The agent binds 0.0.0.0, the test connects only through 127.0.0.1.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cleanupAll, killAndWait, type SpawnedProcess } from '../../src/testing/cgroups.js';
import { CLI, runCli, startAgent, tempDir } from './helpers.js';

const ERROR_LINE = /^ebpf-tuner [a-z ]+: [^:]+.*: .+ — fix: .+$/;
const procs: SpawnedProcess[] = [];
let state: ReturnType<typeof tempDir>;

afterEach(async () => {
  for (const p of procs.splice(0)) await killAndWait(p);
  state?.remove();
});

afterAll(async () => {
  await cleanupAll();
});

function bpfPrograms(): number {
  return (JSON.parse(execFileSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8' })) as unknown[]).length;
}

function expectUsageError(r: { code: number | null; stdout: string; stderr: string }, cmd: string, ...parts: string[]): void {
  expect(r.code, r.stderr).toBe(2);
  const first = r.stderr.split('\n')[0] ?? '';
  expect(first).toMatch(ERROR_LINE);
  expect(first.startsWith(`ebpf-tuner ${cmd}: `)).toBe(true);
  for (const p of parts) expect(first).toContain(p);
  expect(r.stderr).not.toMatch(/\n\s+at |libbpf|Unhandled/);
}

describe('usage and config errors', () => {
  it('exit 2 with one "— fix:" line, before anything is created or attached', () => {
    state = tempDir();
    chmodSync(state.path, 0o755);
    const sd = join(state.path, 'state');
    const before = bpfPrograms();
    const run = (...args: string[]) => runCli(['run', '--state-dir', sd, '--duration', '1', ...args]);

    expectUsageError(runCli(['replay', join(state.path, 'missing.gz')]), 'replay', 'no such file');
    expectUsageError(run('--listen', 'bogus'), 'run', 'bogus');
    expectUsageError(run('--listen', '0.0.0.0:0'), 'run', '--token-file');
    const ww = state.file('ww.yaml', 'tick: 1s\n');
    chmodSync(ww, 0o666);
    expectUsageError(run('-c', ww), 'run', 'writable by group and others', 'chmod go-w');
    expectUsageError(run('-c', state.path), 'run', 'a directory');
    expectUsageError(run('-c', '/dev/zero'), 'run', 'a character device');
    spawnSync('mkfifo', [join(state.path, 'fifo')]);
    expectUsageError(run('-c', join(state.path, 'fifo')), 'run', 'a FIFO');
    expectUsageError(run('--log-level', 'loud'), 'run', '--log-level');
    const file = state.file('not-a-dir', '');
    expectUsageError(runCli(['run', '--state-dir', file]), 'run', 'not a directory');
    const open = join(state.path, 'open');
    mkdirSync(open, { mode: 0o777 });
    chmodSync(open, 0o777);
    expectUsageError(runCli(['run', '--state-dir', open]), 'run', 'writable by group and others');

    expect(existsSync(sd)).toBe(false);
    expect(bpfPrograms()).toBeLessThanOrEqual(before);
  });

  it('a config the user cannot read is named, with its fix, and exits 2 (root reads any file, so a non-root user runs it)', () => {
    state = tempDir();
    chmodSync(state.path, 0o755);
    const config = state.file('secret.yaml', 'tick: 1s\n');
    chmodSync(config, 0o000);
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', CLI, 'run', '-c', config, '--state-dir', '/nonexistent/state'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(ERROR_LINE);
    expect(r.stderr).toContain(`load config ${config}: permission denied — fix: make the file readable by the user the agent runs as`);
  });

  it('a non-root run is told which privileges it lacks, not libbpf\'s text', () => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', CLI, 'run', '--state-dir', '/nonexistent/state'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(ERROR_LINE);
    expect(r.stderr).toContain('ebpf-tuner run: load BPF programs: uid 65534 lacks CAP_BPF');
    expect(r.stderr).not.toMatch(/libbpf|EPERM/);
  });
});

describe('off loopback, the token guards everything but the health probes', () => {
  async function agentOn(extra: string[] = []) {
    const token = state.file('token', 'tok-0123456789abcdef-0123456789\n');
    chmodSync(token, 0o600);
    const a = startAgent(['--state-dir', join(state.path, 'state'), '--listen', '0.0.0.0:0', '--token-file', token, ...extra]);
    procs.push(a);
    const url = String((await a.waitFor((l) => l.msg === 'serve http: listening')).url);
    const base = `http://127.0.0.1:${new URL(url).port}`;
    for (let t0 = Date.now(); (await fetch(base + '/readyz')).status !== 200; ) {
      if (Date.now() - t0 > 15_000) throw new Error('agent not ready within 15 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    return { a, token, base, auth: { Authorization: 'Bearer tok-0123456789abcdef-0123456789' } };
  }

  it('answers /healthz and /readyz to anyone, everything else only with the token; a token file opened up is refused', async () => {
    state = tempDir();
    const { a, token, base, auth } = await agentOn();
    for (const p of ['/healthz', '/readyz']) expect((await fetch(base + p)).status, p).toBe(200);
    for (const p of ['/api/status', '/api/targets', '/api/signals', '/api/decisions', '/api/changes', '/metrics', '/']) {
      expect((await fetch(base + p)).status, p).toBe(401);
      expect((await fetch(base + p, { headers: auth })).status, p).toBe(200);
    }
    chmodSync(token, 0o644);
    const r = await fetch(base + '/api/status', { headers: auth });
    expect(r.status).toBe(503);
    expect(((await r.json()) as { error: { message: string } }).error.message).toContain(`chmod 600 ${token}`);
    expect((await fetch(base + '/healthz')).status).toBe(200);
    await a.waitFor((l) => l.msg === 'check http token: refusing every request that needs the token until the file is fixed');
    chmodSync(token, 0o600);
    expect((await fetch(base + '/api/status', { headers: auth })).status).toBe(200);
    a.child.kill('SIGTERM');
    expect((await a.exited).code).toBe(0);
  });

  it('--public-metrics opens /metrics and nothing else', async () => {
    state = tempDir();
    const { a, base } = await agentOn(['--public-metrics']);
    expect((await fetch(base + '/metrics')).status).toBe(200);
    expect((await fetch(base + '/api/status')).status).toBe(401);
    a.child.kill('SIGTERM');
    expect((await a.exited).code).toBe(0);
  });
});
