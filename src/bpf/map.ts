/**
 * A loaded BPF map, read in bulk. One FFI call costs about a microsecond, so a tick reads a whole map with
 * BPF_MAP_LOOKUP_BATCH (kernel 5.6+) into preallocated buffers; kernels or map types without batch support fall
 * back to key iteration once, and remember that.
 */
import { TunerError } from '../core/errors.js';
import { bpf, BPF_ANY, koffi, MapType, strerror, type Ptr } from './libbpf.js';

const PERCPU_TYPES = new Set<number>([MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH]);
const ENOENT = 2;

export const possibleCpus: number = bpf.libbpf_num_possible_cpus() as number;

export class BpfMap {
  readonly name: string;
  readonly fd: number;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly perCpu: boolean;
  /** Bytes one key's value occupies in a lookup result: per-CPU values are 8-byte aligned, one per possible CPU. */
  readonly stride: number;
  private batchSupported = true;
  private keysBuf: Buffer;
  private valuesBuf: Buffer;
  private readonly countBuf = new Uint32Array(1);
  private readonly outBatch = Buffer.alloc(8);

  constructor(handle: Ptr) {
    this.name = String(bpf.bpf_map__name(handle));
    this.fd = bpf.bpf_map__fd(handle) as number;
    this.type = bpf.bpf_map__type(handle) as number;
    this.keySize = bpf.bpf_map__key_size(handle) as number;
    this.valueSize = bpf.bpf_map__value_size(handle) as number;
    this.maxEntries = bpf.bpf_map__max_entries(handle) as number;
    this.perCpu = PERCPU_TYPES.has(this.type);
    this.stride = this.perCpu ? Math.ceil(this.valueSize / 8) * 8 * possibleCpus : this.valueSize;
    this.keysBuf = Buffer.alloc(this.keySize * this.maxEntries);
    this.valuesBuf = Buffer.alloc(this.stride * this.maxEntries);
  }

  private fail(verb: string, rc: number): never {
    throw new TunerError('BPF_MAP', `${verb} map ${this.name}: ${strerror(rc)}`);
  }

  /**
   * Reads every entry. Returns views into buffers owned by the map (valid until the next call): `keys` holds `count`
   * keys of keySize bytes, `values` the matching values of `stride` bytes each.
   */
  readAll(): { count: number; keys: Buffer; values: Buffer } {
    if (this.batchSupported) {
      this.countBuf[0] = this.maxEntries;
      const rc = bpf.bpf_map_lookup_batch(this.fd, null, this.outBatch, this.keysBuf, this.valuesBuf, this.countBuf, null) as number;
      const err = rc < 0 ? koffi.errno() : 0;
      // ENOENT means "no more entries" and still fills count.
      if (rc === 0 || err === ENOENT) return { count: this.countBuf[0], keys: this.keysBuf, values: this.valuesBuf };
      this.batchSupported = false;
    }
    let count = 0;
    const key = Buffer.alloc(this.keySize);
    const next = Buffer.alloc(this.keySize);
    let prev: Buffer | null = null;
    while ((bpf.bpf_map_get_next_key(this.fd, prev, next) as number) === 0 && count < this.maxEntries) {
      next.copy(key);
      const off = count * this.stride;
      if ((bpf.bpf_map_lookup_elem(this.fd, key, this.valuesBuf.subarray(off, off + this.stride)) as number) === 0) {
        key.copy(this.keysBuf, count * this.keySize);
        count++;
      }
      prev = key;
    }
    return { count, keys: this.keysBuf, values: this.valuesBuf };
  }

  update(key: Buffer, value: Buffer, flags = BPF_ANY): void {
    const rc = bpf.bpf_map_update_elem(this.fd, key, value, flags) as number;
    if (rc < 0) this.fail('update', rc);
  }

  delete(key: Buffer): boolean {
    const rc = bpf.bpf_map_delete_elem(this.fd, key) as number;
    if (rc < 0 && koffi.errno() !== ENOENT) this.fail('delete from', rc);
    return rc === 0;
  }

  /** Replaces the whole content of a hash map with `entries` (key hex → value), touching only what changed. */
  sync(entries: Map<string, Buffer>): void {
    const { count, keys, values } = this.readAll();
    const stale: Buffer[] = [];
    const same = new Set<string>();
    for (let i = 0; i < count; i++) {
      const k = keys.subarray(i * this.keySize, (i + 1) * this.keySize);
      const hex = k.toString('hex');
      const want = entries.get(hex);
      if (want === undefined) stale.push(Buffer.from(k));
      else if (want.equals(values.subarray(i * this.stride, i * this.stride + want.length))) same.add(hex);
    }
    for (const k of stale) this.delete(k);
    for (const [hex, value] of entries) if (!same.has(hex)) this.update(Buffer.from(hex, 'hex'), value);
  }
}
