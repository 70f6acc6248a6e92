/** Process targets: pid lists, pidfiles, comm matches and descendants, against a faithful fake /proc. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findProcesses, readPidfile } from './processes.js';

let proc: string;

/** /proc/<pid>/{comm,stat} for live pids only (process.kill(pid, 0) must succeed), so this process and its parent. */
function fakeProc(entries: { pid: number; ppid: number; comm: string }[]): void {
  for (const e of entries) {
    mkdirSync(join(proc, String(e.pid)));
    writeFileSync(join(proc, String(e.pid), 'comm'), `${e.comm}\n`);
    writeFileSync(join(proc, String(e.pid), 'stat'), `${e.pid} (${e.comm}) S ${e.ppid} 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n`);
  }
}

beforeEach(() => {
  proc = mkdtempSync(join(tmpdir(), 'fake-proc-'));
});
afterEach(() => rmSync(proc, { recursive: true, force: true }));

describe('findProcesses', () => {
  const me = process.pid;
  const parent = process.ppid;

  it('keeps only live pids of a list', () => {
    expect(findProcesses({ pids: [me, 999_999_999] }, proc)).toEqual([me]);
  });

  it('matches comm exactly, including names with spaces and parentheses', () => {
    fakeProc([
      { pid: parent, ppid: 1, comm: 'my (odd) name' },
      { pid: me, ppid: parent, comm: 'node' },
    ]);
    expect(findProcesses({ comm: 'my (odd) name' }, proc)).toEqual([parent]);
    expect(findProcesses({ comm: 'nod' }, proc)).toEqual([]);
  });

  it('follows descendants with children: true', () => {
    fakeProc([
      { pid: parent, ppid: 1, comm: 'shell' },
      { pid: me, ppid: parent, comm: 'node' },
    ]);
    expect(findProcesses({ comm: 'shell', children: true }, proc)).toEqual([me, parent].sort((a, b) => a - b));
  });

  it('reads a pidfile, and ignores one that is missing, malformed or stale', () => {
    const f = join(proc, 'svc.pid');
    writeFileSync(f, `${me}\n`);
    expect(readPidfile(f)).toBe(me);
    expect(findProcesses({ pidfile: f }, proc)).toEqual([me]);
    writeFileSync(f, 'not a pid');
    expect(readPidfile(f)).toBeUndefined();
    writeFileSync(f, '999999999');
    expect(readPidfile(f)).toBeUndefined();
    expect(readPidfile(join(proc, 'missing.pid'))).toBeUndefined();
  });
});
