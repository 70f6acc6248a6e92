/**
 * Which BPF programs a process holds and what each one costs, the same way for our programs, bcc's and bpftrace's:
 * program ids from the process's fds (/proc/<pid>/fdinfo, `prog_id:`), counters from `bpftool prog show --json`
 * (run_time_ns and run_cnt, kept by the kernel while BPF stats are enabled).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { TunerError } from '../core/errors.js';

export interface ProgCounters {
  id: number;
  name: string;
  type: string;
  runTimeNs: number;
  runCnt: number;
}

interface BpftoolProg {
  id: number;
  type: string;
  name?: string;
  run_time_ns?: number;
  run_cnt?: number;
}

/** Parses `bpftool prog show --json` output into counters by id. */
export function parseBpftoolProgs(json: string): Map<number, ProgCounters> {
  const list = JSON.parse(json) as BpftoolProg[];
  if (!Array.isArray(list)) throw new TunerError('INTERNAL', 'parse bpftool prog show --json: expected an array');
  const out = new Map<number, ProgCounters>();
  for (const p of list) {
    out.set(p.id, { id: p.id, name: p.name ?? '', type: p.type, runTimeNs: p.run_time_ns ?? 0, runCnt: p.run_cnt ?? 0 });
  }
  return out;
}

export function bpftoolProgs(): Map<number, ProgCounters> {
  let text: string;
  try {
    text = execFileSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  } catch (e) {
    throw new TunerError('BPF_NOT_SUPPORTED', `list BPF programs with bpftool: ${e instanceof Error ? e.message : String(e)} — fix: apt-get install bpftool`);
  }
  return parseBpftoolProgs(text);
}

/** The program id an fdinfo text names, if the fd is a BPF program. */
export function progIdOfFdinfo(text: string): number | undefined {
  const m = /^prog_id:\s*(\d+)/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Ids of every BPF program `pid` holds an fd to (sorted, deduplicated). */
export function progIdsOf(pid: number): number[] {
  const ids = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`);
  } catch {
    return [];
  }
  for (const fd of fds) {
    try {
      const id = progIdOfFdinfo(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (id !== undefined) ids.add(id);
    } catch {
      // fd closed while we read
    }
  }
  return [...ids].sort((a, b) => a - b);
}

/** Every pid on the host that holds an fd to one of `ids`, by id. */
export function holdersOf(ids: readonly number[]): Map<number, number[]> {
  const want = new Set(ids);
  const out = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    for (const id of progIdsOf(Number(d))) {
      if (!want.has(id)) continue;
      out.set(id, [...(out.get(id) ?? []), Number(d)]);
    }
  }
  return out;
}

export interface ProgDelta {
  id: number;
  name: string;
  type: string;
  runTimeNs: number;
  runCnt: number;
}

/** Counter differences of `ids` between two listings; a program missing from either is left out. */
export function progDeltas(before: Map<number, ProgCounters>, after: Map<number, ProgCounters>, ids: readonly number[]): ProgDelta[] {
  const out: ProgDelta[] = [];
  for (const id of ids) {
    const a = before.get(id);
    const b = after.get(id);
    if (!a || !b) continue;
    out.push({ id, name: b.name, type: b.type, runTimeNs: b.runTimeNs - a.runTimeNs, runCnt: b.runCnt - a.runCnt });
  }
  return out;
}

/** Types whose programs hook kernel events (what "tracing programs" means for a leftover check). */
export const TRACING_TYPES = new Set(['tracing', 'raw_tracepoint', 'tracepoint', 'kprobe', 'perf_event']);
