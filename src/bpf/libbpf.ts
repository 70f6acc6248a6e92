/**
 * Raw bindings to the system's libbpf.so.1 through koffi (FFI). An FFI layer rather than an N-API addon: nothing to
 * compile at install time, the distribution's libbpf (with its fixes) is used as is, and the API we need is small and
 * C-shaped. Calls cost ~1 µs each, so callers batch: maps are read with lookup_batch, never per key on a tick.
 *
 * Everything here is synchronous and must be called on the main thread (libbpf is not thread-safe per object).
 */
import { constants as osConstants } from 'node:os';
import koffi, { type LibraryHandle } from 'koffi';
import { TunerError } from '../core/errors.js';

export type Ptr = unknown; // an opaque native pointer as koffi represents it

function open(): LibraryHandle {
  for (const name of ['libbpf.so.1', 'libbpf.so']) {
    try {
      return koffi.load(name);
    } catch {
      // try the next name
    }
  }
  throw new TunerError('BPF_NOT_SUPPORTED', 'load libbpf: libbpf.so.1 not found — fix: apt-get install libbpf1 (Debian/Ubuntu) or libbpf (Fedora)');
}

const lib = open();
const libc = koffi.load('libc.so.6');

export const PrintFn = koffi.proto('int libbpf_print_fn(int level, const char *fmt, void *args)');
export const SampleFn = koffi.proto('int ring_buffer_sample_fn(void *ctx, void *data, size_t size)');

export const bpf = {
  libbpf_major_version: lib.func('uint32_t libbpf_major_version()'),
  libbpf_minor_version: lib.func('uint32_t libbpf_minor_version()'),
  libbpf_set_print: lib.func('void *libbpf_set_print(libbpf_print_fn *fn)'),
  libbpf_num_possible_cpus: lib.func('int libbpf_num_possible_cpus()'),
  libbpf_probe_bpf_prog_type: lib.func('int libbpf_probe_bpf_prog_type(int prog_type, const void *opts)'),
  libbpf_probe_bpf_map_type: lib.func('int libbpf_probe_bpf_map_type(int map_type, const void *opts)'),

  bpf_object__open_file: lib.func('void *bpf_object__open_file(const char *path, const void *opts)'),
  bpf_object__load: lib.func('int bpf_object__load(void *obj)'),
  bpf_object__close: lib.func('void bpf_object__close(void *obj)'),
  bpf_object__next_program: lib.func('void *bpf_object__next_program(void *obj, void *prev)'),
  bpf_object__next_map: lib.func('void *bpf_object__next_map(void *obj, void *prev)'),
  bpf_object__find_map_by_name: lib.func('void *bpf_object__find_map_by_name(void *obj, const char *name)'),

  bpf_program__name: lib.func('const char *bpf_program__name(void *prog)'),
  bpf_program__section_name: lib.func('const char *bpf_program__section_name(void *prog)'),
  bpf_program__set_autoload: lib.func('int bpf_program__set_autoload(void *prog, bool autoload)'),
  bpf_program__autoload: lib.func('bool bpf_program__autoload(void *prog)'),
  bpf_program__fd: lib.func('int bpf_program__fd(void *prog)'),
  bpf_program__attach: lib.func('void *bpf_program__attach(void *prog)'),
  bpf_link__destroy: lib.func('int bpf_link__destroy(void *link)'),

  bpf_map__name: lib.func('const char *bpf_map__name(void *map)'),
  bpf_map__fd: lib.func('int bpf_map__fd(void *map)'),
  bpf_map__type: lib.func('int bpf_map__type(void *map)'),
  bpf_map__key_size: lib.func('uint32_t bpf_map__key_size(void *map)'),
  bpf_map__value_size: lib.func('uint32_t bpf_map__value_size(void *map)'),
  bpf_map__max_entries: lib.func('uint32_t bpf_map__max_entries(void *map)'),
  bpf_map__set_autocreate: lib.func('int bpf_map__set_autocreate(void *map, bool autocreate)'),
  bpf_map__set_max_entries: lib.func('int bpf_map__set_max_entries(void *map, uint32_t max_entries)'),
  bpf_map__initial_value: lib.func('void *bpf_map__initial_value(void *map, _Out_ size_t *psize)'),

  bpf_map_lookup_elem: lib.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
  bpf_map_update_elem: lib.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
  bpf_map_delete_elem: lib.func('int bpf_map_delete_elem(int fd, const void *key)'),
  bpf_map_get_next_key: lib.func('int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
  bpf_map_lookup_batch: lib.func(
    'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, const void *opts)',
  ),
  bpf_enable_stats: lib.func('int bpf_enable_stats(int type)'),

  ring_buffer__new: lib.func('void *ring_buffer__new(int map_fd, ring_buffer_sample_fn *cb, void *ctx, const void *opts)'),
  ring_buffer__consume: lib.func('int ring_buffer__consume(void *rb)'),
  ring_buffer__epoll_fd: lib.func('int ring_buffer__epoll_fd(void *rb)'),
  ring_buffer__free: lib.func('void ring_buffer__free(void *rb)'),
};

export const c = {
  vsnprintf: libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *args)'),
  close: libc.func('int close(int fd)'),
  strerror: libc.func('const char *strerror(int errnum)'),
  sigfillset: libc.func('int sigfillset(_Out_ uint8_t *set)'),
  sigdelset: libc.func('int sigdelset(_Inout_ uint8_t *set, int signum)'),
  pthread_sigmask: libc.func('int pthread_sigmask(int how, const uint8_t *set, _Out_ uint8_t *oldset)'),
};

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_STATS_RUN_TIME = 0;

/** libbpf map type numbers we care about (uapi enum bpf_map_type). */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  RINGBUF: 27,
  TASK_STORAGE: 29,
} as const;

/** glibc's sigset_t: 1024 bits. */
const SIGSET_BYTES = 128;
const SIG_BLOCK = 0;
const SIG_SETMASK = 2;
/** Signals a thread raises on itself (faults, abort): blocking them would not defer them but kill the process. */
const SYNCHRONOUS = ['SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGSYS'] as const;

/**
 * Runs `fn` with every asynchronous signal blocked on the calling thread, and delivers what arrived afterwards. The
 * verifier gives up with EAGAIN whenever a signal is pending for the loading thread, and libbpf's few retries do not
 * outlast a sender that keeps sending: `node --cpu-prof` sends the main thread SIGPROF every millisecond, longer than
 * one verification takes, so the agent could not load under the profiler. Signals sent to the process go to another
 * thread meanwhile; those aimed at this one (the profiler's) wait until the load is done.
 */
export function withSignalsBlocked<T>(fn: () => T): T {
  const set = Buffer.alloc(SIGSET_BYTES);
  const old = Buffer.alloc(SIGSET_BYTES);
  c.sigfillset(set);
  for (const name of SYNCHRONOUS) c.sigdelset(set, osConstants.signals[name]);
  const rc = c.pthread_sigmask(SIG_BLOCK, set, old) as number;
  if (rc !== 0) return fn();
  try {
    return fn();
  } finally {
    c.pthread_sigmask(SIG_SETMASK, old, null);
  }
}

export function errnoName(err: number): string {
  const e = Math.abs(err);
  for (const [name, n] of Object.entries(koffi.os.errno)) if (n === e) return name;
  return `errno ${e}`;
}

export function strerror(err: number): string {
  return `${String(c.strerror(Math.abs(err)))} (${errnoName(err)})`;
}

export { koffi };
