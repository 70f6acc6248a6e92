/** Running the real CLI (bin/ebpf-tuner → dist/) as a child process, for end-to-end tests. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../src/bpf/paths.js';
import { spawnTracked, type SpawnedProcess } from '../../src/testing/cgroups.js';

export const CLI = join(projectRoot, 'bin', 'ebpf-tuner');

export interface AgentProcess extends SpawnedProcess {
  /** Every JSON log line so far. */
  lines: Record<string, unknown>[];
  /** Resolves with the first log line `pred` accepts. */
  waitFor(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stderr(): string;
}

export function startAgent(args: string[]): AgentProcess {
  const p = spawnTracked(CLI, ['run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  let buf = '';
  let err = '';
  p.child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const l = JSON.parse(line) as Record<string, unknown>;
        lines.push(l);
        for (const w of waiters.slice()) if (w.pred(l)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(l));
      } catch {
        // not a log line
      }
    }
  });
  p.child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return Object.assign(p, {
    lines,
    stderr: () => err,
    waitFor(pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000) {
      const hit = lines.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise<Record<string, unknown>>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${err}; last lines: ${JSON.stringify(lines.slice(-5))}`)), timeoutMs);
        waiters.push({ pred, resolve: (l) => (clearTimeout(t), resolve(l)) });
        void p.exited.then(() => setTimeout(() => reject(new Error(`agent exited; stderr: ${err}`)), 50));
      });
    },
  });
}

export function runCli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(CLI, args, { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function tempDir(prefix = 'ebpf-tuner-e2e-'): { path: string; file(name: string, text: string): string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    file(name, text) {
      const f = join(path, name);
      writeFileSync(f, text);
      return f;
    },
    remove: () => rmSync(path, { recursive: true, force: true }),
  };
}
