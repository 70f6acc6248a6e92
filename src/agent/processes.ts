/**
 * Finding a process target's processes: a pid list, a pidfile, or every process with a given name — optionally with
 * all their descendants. Re-run every few ticks, so a restarted service (new pid in its pidfile) or a new worker
 * (same comm, or a child) is followed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { pidAlive } from '../core/pid.js';
import type { ProcessSource } from '../core/types.js';

function allPids(proc: string): number[] {
  return readdirSync(proc)
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The pid in a pidfile, or undefined when the file is missing, malformed, or names a process that is gone. */
export function readPidfile(path: string): number | undefined {
  const text = read(path)?.trim();
  const pid = text && /^\d+$/.test(text) ? Number(text) : undefined;
  return pid !== undefined && pidAlive(pid) ? pid : undefined;
}

export function findProcesses(source: ProcessSource, proc = '/proc'): number[] {
  const found = new Set<number>();
  for (const p of source.pids ?? []) if (pidAlive(p)) found.add(p);
  if (source.pidfile) {
    const p = readPidfile(source.pidfile);
    if (p !== undefined) found.add(p);
  }
  const needScan = source.comm !== undefined || source.children === true;
  if (!needScan) return [...found].sort((a, b) => a - b);
  const pids = allPids(proc);
  if (source.comm !== undefined) {
    for (const p of pids) if (read(`${proc}/${p}/comm`)?.trimEnd() === source.comm) found.add(p);
  }
  if (source.children) {
    const kids = new Map<number, number[]>();
    for (const p of pids) {
      const stat = read(`${proc}/${p}/stat`);
      if (!stat) continue;
      // The command name is parenthesised and may contain anything; fields after it are space-separated.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = kids.get(ppid) ?? [];
      list.push(p);
      kids.set(ppid, list);
    }
    const queue = [...found];
    while (queue.length) for (const c of kids.get(queue.pop()!) ?? []) if (!found.has(c)) (found.add(c), queue.push(c));
  }
  return [...found].sort((a, b) => a - b);
}
