/**
 * Crash durability: a child process journals and writes a real cpu.shares through the KnobWriter and is SIGKILLed
 * with the journal still open; a fresh Journal in this process must still know the original and put it back.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import { readKnob } from '../cgroup/cgroup.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnTracked } from '../testing/cgroups.js';
import { Journal } from './journal.js';
import { restoreAll } from './restore.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, '../..');
const childScript = path.join(projectRoot, 'src/testing/crash-child.ts');

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('kernel tests create cgroups under /sys/fs/cgroup: run them as root');
  // The child runs the TypeScript sources through tsx (a devDependency); without it this test cannot run.
  if (!fs.existsSync(path.join(projectRoot, 'node_modules/tsx'))) throw new Error('crash test needs tsx: npm install');
});
afterAll(async () => {
  await cleanupAll();
});

function firstLine(stream: NodeJS.ReadableStream, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`child printed nothing within ${timeoutMs} ms: ${buf}`)), timeoutMs);
    stream.on('data', (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) {
        clearTimeout(timer);
        resolve(buf.slice(0, i));
      }
    });
    stream.on('end', () => {
      clearTimeout(timer);
      reject(new Error(`child exited before reporting: ${buf}`));
    });
  });
}

describe('journal survives SIGKILL', () => {
  it('a fresh process restores the original a killed writer journaled', async () => {
    const cg = makeTestCgroup('cpu');
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-crash-'));
    try {
      const knobPath = path.join(cg.child('victim').path, 'cpu.shares');
      fs.writeFileSync(knobPath, '1500');
      const child = spawnTracked(
        process.execPath,
        ['--import', 'tsx', childScript, JSON.stringify({ stateDir, knobPath, value: '77' })],
        { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const line = await firstLine(child.child.stdout!, 60_000).catch((e: Error) => {
        throw new Error(`${e.message}\nstderr: ${stderr}`);
      });
      expect(JSON.parse(line)).toMatchObject({ status: 'written', previous: '1500', value: '77', firstWrite: true });
      expect(readKnob(knobPath)).toBe('77');

      await killAndWait(child, 'SIGKILL');
      expect(child.child.signalCode).toBe('SIGKILL');
      // The killed process never closed the database; its WAL must hold the committed entry.
      expect(fs.existsSync(path.join(stateDir, 'state.db-wal'))).toBe(true);

      const journal = Journal.open(stateDir, silentLogger);
      try {
        expect(journal.active()).toMatchObject([{ path: knobPath, original: '1500', lastWritten: '77', pending: null }]);
        const r = restoreAll(journal, silentLogger);
        expect(r.restored).toMatchObject([{ path: knobPath, wrote: true }]);
        expect(readKnob(knobPath)).toBe('1500');
        expect(journal.active()).toEqual([]);
      } finally {
        journal.close();
      }
    } finally {
      cg.remove();
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
