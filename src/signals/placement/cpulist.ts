/**
 * CPU and node sets in the kernel's list format ("0-3,8,10-11", as cpuset.cpus, Cpus_allowed_list and
 * /sys/devices/system/node/node<N>/cpulist print them) and as the byte masks sched_{get,set}affinity take. One
 * parser and one printer, so every knob value and every set compared in the agent has exactly one spelling.
 */
import { TunerError } from '../../core/errors.js';

/** The largest CPU or node number accepted: NR_CPUS tops out at 8192 on every mainline config. */
export const MAX_CPU_ID = 8191;

/**
 * Parse a list like "0-3,8,10-11" (also "", "\n", "0-7:2" with a stride as bitmap_parselist accepts) into sorted,
 * unique numbers. Throws ACTION_FAILED naming `what` for anything else.
 */
export function parseCpuList(text: string, what = 'cpu list'): number[] {
  const s = text.trim();
  if (s === '') return [];
  const out = new Set<number>();
  for (const part of s.split(',')) {
    const m = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part.trim());
    if (m === null) {
      throw new TunerError('ACTION_FAILED', `parse ${what}: ${JSON.stringify(text)} is not a list like 0-3,8`);
    }
    const lo = Number(m[1]);
    const hi = m[2] !== undefined ? Number(m[2]) : lo;
    const stride = m[3] !== undefined ? Number(m[3]) : 1;
    if (hi < lo || hi > MAX_CPU_ID || stride < 1) {
      throw new TunerError('ACTION_FAILED', `parse ${what}: range ${JSON.stringify(part)} is empty or above ${MAX_CPU_ID}`);
    }
    for (let i = lo; i <= hi; i += stride) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

/** The kernel's own spelling: ascending, runs of two or more as "a-b", joined by commas ("" for the empty set). */
export function formatCpuList(ids: Iterable<number>): string {
  const s = [...new Set(ids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < s.length; ) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j]! + 1) j++;
    parts.push(j > i ? `${s[i]}-${s[j]}` : String(s[i]));
    i = j + 1;
  }
  return parts.join(',');
}

/** Same set, whatever the spelling ("0,1" equals "0-1"). */
export function sameCpuList(a: string, b: string): boolean {
  return formatCpuList(parseCpuList(a)) === formatCpuList(parseCpuList(b));
}

/** A cpu_set_t-style mask of `bytes` bytes with the given bits set (little-endian words, as the kernel reads it). */
export function toMask(ids: readonly number[], bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (const id of ids) {
    if (id < 0 || id >= bytes * 8) {
      throw new TunerError('ACTION_FAILED', `build cpu mask: cpu ${id} does not fit a ${bytes * 8}-bit mask`);
    }
    b[id >> 3]! |= 1 << (id & 7);
  }
  return b;
}

export function fromMask(mask: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) {
    const byte = mask[i]!;
    if (byte === 0) continue;
    for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) out.push(i * 8 + bit);
  }
  return out;
}
