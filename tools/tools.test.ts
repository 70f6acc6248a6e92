// The workload programs that kernel tests and benchmarks lean on: they build,
// report parseable numbers and stop cleanly when told to.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

const toolsDir = dirname(fileURLToPath(import.meta.url));
const bin = (name: string) => join(toolsDir, 'bin', name);

interface Report {
  t: number;
  count: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  max_us: number;
  final?: boolean;
}

const started: ChildProcess[] = [];

function start(name: string, args: string[]): ChildProcess {
  const child = spawn(bin(name), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  return child;
}

async function finish(child: ChildProcess): Promise<{ code: number | null; signal: string | null; stdout: string }> {
  let stdout = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.resume();
  const [code, signal] = (await once(child, 'close')) as [number | null, string | null];
  return { code, signal, stdout };
}

function parseLines(stdout: string): Report[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Report);
}

function expectSane(r: Report): void {
  expect(r.count).toBeGreaterThan(0);
  expect(r.p50_us).toBeGreaterThan(0);
  expect(r.p50_us).toBeLessThanOrEqual(r.p90_us);
  expect(r.p90_us).toBeLessThanOrEqual(r.p99_us);
  expect(r.p99_us).toBeLessThanOrEqual(r.max_us);
  // Not a speed assertion: a p99 of seconds means the schedule or the units are broken.
  expect(r.p99_us).toBeLessThan(1_000_000);
}

beforeAll(() => {
  execFileSync('make', ['-s', '-C', toolsDir], { stdio: 'inherit' });
}, 60_000);

afterEach(() => {
  for (const child of started.splice(0)) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGKILL');
    }
  }
});

describe('victim', () => {
  it('reports interval and final latency lines as JSON', async () => {
    const { code, stdout } = await finish(start('victim', ['--duration-s', '2', '--report-ms', '500']));
    expect(code).toBe(0);

    const lines = parseLines(stdout);
    const final = lines.at(-1)!;
    const intervals = lines.slice(0, -1);
    expect(final.final).toBe(true);
    expect(intervals.length).toBeGreaterThanOrEqual(3);
    expect(intervals.length).toBeLessThanOrEqual(4);
    for (const r of intervals) expect(r.final).toBeUndefined();

    expectSane(final);
    // The default schedule allows at most one request per 5 ms in 2 s.
    expect(final.count).toBeLessThanOrEqual(401);
    // Each request includes ~1000 us of calibrated CPU work.
    expect(final.p50_us).toBeGreaterThan(500);
    // The final line covers the intervals plus any partial one after the last report.
    expect(intervals.reduce((n, r) => n + r.count, 0)).toBeLessThanOrEqual(final.count);
  }, 30_000);

  it('prints the final line and exits 0 on SIGTERM', async () => {
    const child = start('victim', ['--report-ms', '200', '--work-us', '200']);
    const result = finish(child);
    await new Promise((r) => setTimeout(r, 1000));
    process.kill(child.pid!, 'SIGTERM');
    const { code, signal, stdout } = await result;
    expect(signal).toBeNull();
    expect(code).toBe(0);
    const final = parseLines(stdout).at(-1)!;
    expect(final.final).toBe(true);
    expectSane(final);
  }, 30_000);
});

describe('hog', () => {
  it('spins two threads and exits 0 on SIGTERM', async () => {
    const child = start('hog', ['--threads', '2']);
    const result = finish(child);
    await new Promise((r) => setTimeout(r, 1000));
    expect(child.exitCode).toBeNull();
    process.kill(child.pid!, 'SIGTERM');
    const { code, signal } = await result;
    expect(signal).toBeNull();
    expect(code).toBe(0);
  }, 30_000);
});

describe('futex-contend', () => {
  it('contends for the lock and reports acquisitions', async () => {
    const { code, stdout } = await finish(start('futex-contend', ['--threads', '2', '--duration-s', '1']));
    expect(code).toBe(0);
    const [final] = parseLines(stdout) as unknown as { acquisitions: number; threads: number; final: boolean }[];
    expect(final!.final).toBe(true);
    expect(final!.threads).toBe(2);
    expect(final!.acquisitions).toBeGreaterThan(0);
  }, 30_000);
});

describe('numa-touch', () => {
  it('writes every page of its memory, says so, keeps it resident, and exits 0 on SIGTERM', async () => {
    const child = start('numa-touch', ['--mib', '32', '--threads', '2']);
    const result = finish(child);
    const rssKb = () => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
    for (let i = 0; i < 100 && rssKb() < 32 * 1024; i++) await new Promise((r) => setTimeout(r, 50));
    expect(rssKb()).toBeGreaterThanOrEqual(32 * 1024);
    await new Promise((r) => setTimeout(r, 300));
    expect(child.exitCode).toBeNull();
    process.kill(child.pid!, 'SIGTERM');
    const { code, signal, stdout } = await result;
    expect(signal).toBeNull();
    expect(code).toBe(0);
    expect(JSON.parse(stdout.trim())).toEqual({ ready: true, mib: 32, threads: 2 });
  }, 30_000);
});
