/**
 * The C allocator's side of the agent's memory. glibc gives each thread that meets contention an arena of its own, up
 * to 8 per CPU, and keeps what is freed in them for reuse; Node runs a dozen threads (libuv's pool, V8's platform
 * workers) and the agent's native libraries (libbpf, koffi, SQLite) allocate and free in bursts — a config reload
 * opens every BPF object again — so resident memory climbs in steps that are never returned. Two arenas and a trim
 * after each burst keep it level (the soak benchmark, `ebpf-tuner bench --sections soak`, measures it).
 */
import koffi from 'koffi';

/** mallopt(3) parameter: the most arenas the allocator may create. */
const M_ARENA_MAX = -8;
/** The arenas the agent allows: the main one and one for every other thread to share. */
export const ARENAS = 2;

let libc: { mallopt: (param: number, value: number) => number; malloc_trim: (pad: number) => number } | undefined;
function c() {
  if (libc === undefined) {
    const lib = koffi.load('libc.so.6');
    libc = {
      mallopt: lib.func('int mallopt(int param, int value)') as (param: number, value: number) => number,
      malloc_trim: lib.func('int malloc_trim(size_t pad)') as (pad: number) => number,
    };
  }
  return libc;
}

/**
 * Caps the allocator's arenas, unless the operator chose a number already (MALLOC_ARENA_MAX in the environment, read
 * by glibc at start). Arenas already made stay; new threads share the capped set. Returns whether the cap was set.
 */
export function capMallocArenas(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.MALLOC_ARENA_MAX !== undefined || env.GLIBC_TUNABLES?.includes('glibc.malloc.arena_max') === true) return false;
  try {
    return c().mallopt(M_ARENA_MAX, ARENAS) === 1;
  } catch {
    return false; // not glibc (musl has no arenas to cap)
  }
}

/** Gives the allocator's free memory back to the kernel (after a burst of native frees, e.g. a reload). */
export function trimMalloc(): void {
  try {
    c().malloc_trim(0);
  } catch {
    // not glibc
  }
}
