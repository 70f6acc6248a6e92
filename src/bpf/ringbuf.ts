/**
 * Records from a BPF ring buffer, delivered as they are written: the kernel side wakes us instead of the agent
 * finding them at its next tick.
 *
 * Node's event loop cannot wait on a ring buffer's descriptor, so a worker thread blocks in poll(2) (through koffi)
 * on its own duplicate of the map's fd plus an eventfd that wakes it for shutdown, drains the buffer with libbpf's
 * ring_buffer__consume (the sample callback runs on the worker, which owns the consumer side), and posts each batch
 * of records to the main thread. The duplicate keeps the map alive until the worker has left poll(), so the BPF
 * object may be closed at any time; the fds are closed after the worker exits, so a number is never reused under it.
 *
 * A ring buffer wakes a poller when a record lands in an empty buffer (BPF_RB_NO_WAKEUP/FORCE_WAKEUP aside); since
 * the worker drains it every time, every record wakes it, through irq_work, so the producer may run in any context
 * (the scheduler's tracepoints included).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { closeFds, dupFd, eventfd, stopPollingWorker } from '../core/fd.js';
import type { BpfMap } from './map.js';
import { MapType } from './libbpf.js';
import { TunerError } from '../core/errors.js';

/** Plain JavaScript (eval'd), so it runs the same from the TypeScript sources and the build. pollfd is 8 bytes. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const koffi = require(workerData.koffiPath);
const poll = koffi.load('libc.so.6').func('int poll(void *fds, unsigned long nfds, int timeout)');
let lib;
for (const name of ['libbpf.so.1', 'libbpf.so']) {
  try { lib = koffi.load(name); break; } catch {}
}
const SampleFn = koffi.proto('int ring_buffer_sample_fn(void *ctx, void *data, size_t size)');
const rbNew = lib.func('void *ring_buffer__new(int map_fd, ring_buffer_sample_fn *cb, void *ctx, const void *opts)');
const consume = lib.func('int ring_buffer__consume(void *rb)');
const rbFree = lib.func('void ring_buffer__free(void *rb)');
const POLLIN = 0x1, POLLERR = 0x8, POLLNVAL = 0x20, EINTR = 4;
let batch = [];
const cb = koffi.register((ctx, data, size) => { batch.push(koffi.decode(data, 'uint8_t', Number(size))); return 0; }, koffi.pointer(SampleFn));
const rb = rbNew(workerData.fd, cb, null, null);
if (!rb) {
  parentPort.postMessage({ type: 'failed', errno: koffi.errno(), what: 'ring_buffer__new' });
} else {
  const buf = Buffer.alloc(16);
  buf.writeInt32LE(workerData.fd, 0);
  buf.writeInt16LE(POLLIN, 4);
  buf.writeInt32LE(workerData.wake, 8);
  buf.writeInt16LE(POLLIN, 12);
  for (;;) {
    const r = poll(buf, 2, -1);
    if (r < 0) {
      const errno = koffi.errno();
      if (errno === EINTR) continue;
      parentPort.postMessage({ type: 'failed', errno, what: 'poll' });
      break;
    }
    if (buf.readInt16LE(14) & POLLIN) break;
    const rev = buf.readInt16LE(6);
    buf.writeInt16LE(0, 6);
    if (rev & (POLLERR | POLLNVAL)) {
      parentPort.postMessage({ type: 'failed', errno: 0, what: 'poll revents 0x' + rev.toString(16) });
      break;
    }
    const time = Date.now();
    const n = consume(rb);
    if (n < 0) {
      parentPort.postMessage({ type: 'failed', errno: -n, what: 'ring_buffer__consume' });
      break;
    }
    if (batch.length > 0) {
      parentPort.postMessage({ type: 'records', time, records: batch });
      batch = [];
    }
  }
  rbFree(rb);
}
koffi.unregister(cb);
`;

type WorkerMessage = { type: 'records'; time: number; records: Uint8Array[] } | { type: 'failed'; errno: number; what: string };

export interface RingRecords {
  /** When the worker woke, ms since the epoch. */
  time: number;
  records: Buffer[];
}

export class RingBufferWatcher {
  private readonly worker: Worker;
  private readonly fd: number;
  private readonly wake: number;
  private exited = false;
  private closing?: Promise<void>;

  private constructor(
    readonly name: string,
    fd: number,
    wake: number,
    onRecords: (batch: RingRecords) => void,
    onFailed: (why: string) => void,
  ) {
    this.fd = fd;
    this.wake = wake;
    const koffiPath = createRequire(import.meta.url).resolve('koffi');
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { koffiPath, fd, wake } });
    // A forgotten close() must not keep the process alive.
    this.worker.unref();
    this.worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'records') onRecords({ time: m.time, records: m.records.map((r) => Buffer.from(r.buffer, r.byteOffset, r.byteLength)) });
      else onFailed(`${m.what} failed${m.errno ? ` with errno ${m.errno}` : ''}`);
    });
    this.worker.on('error', (e) => onFailed(`the ring buffer worker failed: ${e.message}`));
    this.worker.once('exit', () => {
      this.exited = true;
      this.release();
    });
  }

  /** Starts delivering the records written to `map` (a BPF_MAP_TYPE_RINGBUF) to `onRecords`, on the main thread. */
  static start(map: BpfMap, onRecords: (batch: RingRecords) => void, onFailed: (why: string) => void): RingBufferWatcher {
    if (map.type !== MapType.RINGBUF) throw new TunerError('INTERNAL', `watch map ${map.name}: type ${map.type} is not a ring buffer`);
    const fd = dupFd(map.fd, `ring buffer ${map.name}`);
    let wake: number;
    try {
      wake = eventfd(`ring buffer ${map.name}`);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return new RingBufferWatcher(map.name, fd, wake, onRecords, onFailed);
  }

  private release(): void {
    closeFds([this.fd, this.wake]);
  }

  /** Wakes the worker out of poll(), waits for it to end, then closes its fds. Idempotent. */
  close(): Promise<void> {
    this.closing ??= stopPollingWorker(this.worker, this.wake, this.exited);
    return this.closing;
  }
}
