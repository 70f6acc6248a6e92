/**
 * An interface file (cgroupfs, procfs) read every tick through one descriptor opened once: each read is a `pread`
 * from offset 0, which makes the kernel generate the file's content afresh, so the text is as current as a new
 * open would give, without the path walk and open/close of reading it by name. At 100 targets with four files each
 * that is 400 opens a tick saved.
 *
 * A descriptor outlives nothing it describes: when the cgroup is removed the kernel answers ENODEV on the old
 * descriptor (kernfs deactivates its files), and a file on NFS-like mounts may answer ESTALE; then the file is
 * opened again by name once, so a cgroup removed and made again at the same path is followed, and one that is gone
 * stays an error (ENOENT) as `readFileSync` would report it. The owner closes it when the target goes.
 */
import fs from 'node:fs';
import { errnoCode } from '../core/errors.js';
import { CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC } from './layout.js';

const PROC_SUPER_MAGIC = 0x9fa0;
const SYSFS_MAGIC = 0x62656572;
/** File systems whose files fail on a kept descriptor once they are removed (kernfs: ENODEV; procfs: ESRCH). */
const FAILS_WHEN_GONE = new Set([CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, PROC_SUPER_MAGIC, SYSFS_MAGIC]);

/** Errors that mean the descriptor no longer names the file at its path, and a fresh open may. */
const REOPEN = new Set(['ENODEV', 'ESTALE', 'ENOENT', 'ESRCH']);

/** Shared scratch space: reads are synchronous, so one buffer serves every kept file. Grown on demand. */
let scratch = Buffer.allocUnsafe(16 * 1024);

export class KeptFile {
  #fd: number | undefined;
  /**
   * Whether a removed file still reads through the kept descriptor (a plain file, as in a fake tree): then each
   * read first checks the link count, so "removed" reads the same as it does on cgroupfs.
   */
  #checkLinks = false;

  constructor(readonly path: string) {}

  /** Whether a descriptor is open now (for tests and for counting what a signal holds). */
  get isOpen(): boolean {
    return this.#fd !== undefined;
  }

  /** The whole file as text. Throws the errno error of the open or the read, like `readFileSync`. */
  read(): string {
    if (this.#fd !== undefined) {
      try {
        if (this.#checkLinks && fs.fstatSync(this.#fd).nlink === 0) throw Object.assign(new Error(`${this.path}: removed`), { code: 'ENOENT' });
        return this.#readAll(this.#fd);
      } catch (e) {
        this.close();
        if (!REOPEN.has(errnoCode(e) ?? '')) throw e;
      }
    }
    // libuv opens every descriptor close-on-exec.
    const fd = fs.openSync(this.path, fs.constants.O_RDONLY);
    this.#fd = fd;
    try {
      this.#checkLinks = !FAILS_WHEN_GONE.has(fs.statfsSync(this.path).type);
      return this.#readAll(fd);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  #readAll(fd: number): string {
    let n = 0;
    for (;;) {
      if (n === scratch.length) {
        const bigger = Buffer.allocUnsafe(scratch.length * 2);
        scratch.copy(bigger, 0, 0, n);
        scratch = bigger;
      }
      const got = fs.readSync(fd, scratch, n, scratch.length - n, n);
      if (got === 0) break;
      n += got;
    }
    return scratch.toString('utf8', 0, n);
  }

  /** Idempotent. */
  close(): void {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd === undefined) return;
    try {
      fs.closeSync(fd);
    } catch {
      // already closed: nothing held any more
    }
  }
}

/**
 * Kept files by path, for an owner that reads a changing set of files: `read` opens on first use, `retain` closes
 * every file not in the given set (the targets that went).
 */
export class KeptFiles {
  readonly #files = new Map<string, KeptFile>();

  read(path: string): string {
    let f = this.#files.get(path);
    if (f === undefined) {
      f = new KeptFile(path);
      this.#files.set(path, f);
    }
    try {
      return f.read();
    } catch (e) {
      // Nothing held for a file that cannot be read: a later read opens it again by name.
      this.#files.delete(path);
      f.close();
      throw e;
    }
  }

  /** Close and forget every file whose path `keep` rejects. */
  retain(keep: (path: string) => boolean): void {
    for (const [p, f] of this.#files) {
      if (keep(p)) continue;
      f.close();
      this.#files.delete(p);
    }
  }

  /** How many descriptors are open. */
  get size(): number {
    let n = 0;
    for (const f of this.#files.values()) if (f.isOpen) n++;
    return n;
  }

  close(): void {
    for (const f of this.#files.values()) f.close();
    this.#files.clear();
  }
}
