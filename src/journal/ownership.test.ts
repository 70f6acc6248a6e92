/**
 * The state-directory lock and host-wide knob claims: a live holder refuses the next one by name, a dead one never
 * blocks — neither a record left by a process that is gone, nor a lock kept alive by a descriptor leaked into an
 * unrelated process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTunerError } from '../core/errors.js';
import { isAlive, KnobClaims, processStartTime, StateDirLock } from './ownership.js';

let dir: string;
let child: ChildProcess | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ownership-test-'));
});

afterEach(async () => {
  if (child && child.exitCode === null) {
    const gone = new Promise((r) => child!.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }
  child = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function busy(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isTunerError(e, 'BUSY')) return e.message;
    throw e;
  }
  throw new Error('expected BUSY');
}

/** A process that is certainly not running: one that has exited. */
async function deadPid(): Promise<number> {
  const p = spawn('true');
  await new Promise((r) => p.once('exit', r));
  return p.pid!;
}

describe('process identity', () => {
  it('is pid plus start time', () => {
    const start = processStartTime(process.pid)!;
    expect(start).toMatch(/^\d+$/);
    expect(isAlive({ pid: process.pid, start })).toBe(true);
    expect(isAlive({ pid: process.pid, start: String(Number(start) + 1) })).toBe(false);
  });
});

describe('StateDirLock', () => {
  it('refuses a second holder, naming the live pid and the fix, until released', () => {
    const a = StateDirLock.acquire(dir, 'run the agent');
    const msg = busy(() => StateDirLock.acquire(dir, 'roll back'));
    expect(msg).toContain(`pid ${process.pid}`);
    expect(msg).toContain('— fix: stop that agent first');
    expect(StateDirLock.holder(dir)?.pid).toBe(process.pid);
    a.release();
    a.release();
    expect(StateDirLock.holder(dir)).toBeUndefined();
    StateDirLock.acquire(dir, 'run the agent').release();
  });

  it('is not blocked by the record of a dead agent', async () => {
    writeFileSync(join(dir, StateDirLock.FILE), JSON.stringify({ pid: await deadPid(), start: '1', since: 0 }));
    StateDirLock.acquire(dir, 'run the agent').release();
  });

  it('breaks a lock held only by a descriptor leaked into another process', async () => {
    const file = join(dir, StateDirLock.FILE);
    writeFileSync(file, JSON.stringify({ pid: await deadPid(), start: '1', since: 0 }));
    // flock(1) holds the lock on that file while the agent it names is gone.
    child = spawn('flock', ['-n', file, 'sleep', '30'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 200));
    expect(child.exitCode).toBeNull();
    const lock = StateDirLock.acquire(dir, 'run the agent');
    expect(StateDirLock.holder(dir)?.pid).toBe(process.pid);
    lock.release();
  });
});

describe('KnobClaims', () => {
  it('one agent per knob, whatever the state directories; the same file under another name is the same knob', () => {
    const run = join(dir, 'run');
    const knob = join(dir, 'cpu.shares');
    writeFileSync(knob, '1024\n');
    symlinkSync(dir, join(dir, 'alias'));
    const a = new KnobClaims({ stateDir: join(dir, 'a'), runDir: run });
    const b = new KnobClaims({ stateDir: join(dir, 'b'), runDir: run });
    a.claim(knob);
    a.claim(knob);
    const msg = busy(() => b.claim(join(dir, 'alias', 'cpu.shares')));
    expect(msg).toContain(`claim ${knob}: another live agent manages it, pid ${process.pid} (state directory ${join(dir, 'a')})`);
    a.releaseAll();
    expect(readdirSync(join(run, 'knobs'))).toEqual([]);
    b.claim(knob);
    expect(b.list()).toEqual([knob]);
    b.releaseAll();
  });

  it('takes over the claim of a dead agent', async () => {
    const run = join(dir, 'run');
    const a = new KnobClaims({ stateDir: join(dir, 'a'), runDir: run });
    a.claim('/sys/fs/cgroup/cpu/x/cpu.shares');
    const [file] = readdirSync(join(run, 'knobs'));
    // What a SIGKILLed agent leaves: its record, and (once the kernel dropped its flock) no lock.
    const record = join(run, 'knobs', file!);
    const held = (a as unknown as { held: Map<string, { fd: number }> }).held;
    for (const h of held.values()) closeSync(h.fd);
    held.clear();
    writeFileSync(record, JSON.stringify({ pid: await deadPid(), start: '1', since: 0 }));
    const b = new KnobClaims({ stateDir: join(dir, 'b'), runDir: run });
    b.claim('/sys/fs/cgroup/cpu/x/cpu.shares');
    b.releaseAll();
  });
});
