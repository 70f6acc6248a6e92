/**
 * Best-effort pre-reading of the files a target streams: posix_fadvise(POSIX_FADV_WILLNEED) on the range just ahead
 * of each stream's offset, which asks the kernel to start reading it into the page cache and returns without waiting.
 * Called through koffi because Node has no fadvise; libc is loaded on first use, so hosts that never pre-read never
 * load it.
 */
import fs from 'node:fs';
import koffi from 'koffi';
import type { Stream } from './evidence.js';

const POSIX_FADV_WILLNEED = 3;
/**
 * The kernel reads at most max(io_pages, read-ahead) pages per WILLNEED call (force_page_cache_ra), so a bigger
 * range is asked for in pieces no larger than the smallest default read-ahead.
 */
export const FADVISE_CHUNK = 128 * 1024;

type Fadvise = (fd: number, offset: number, len: number, advice: number) => number;
let fadvise: Fadvise | undefined;

function binding(): Fadvise {
  fadvise ??= koffi.load('libc.so.6').func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)') as Fadvise;
  return fadvise;
}

export interface PrefetchResult {
  /** Files a range was requested for. */
  files: number;
  /** Bytes requested in total; never more than the budget. */
  bytes: number;
  /** Streams skipped because opening or advising failed (the file went away, say). */
  failed: number;
}

export type Prefetcher = (streams: readonly Stream[], budgetBytes: number) => PrefetchResult;

/**
 * Ask for up to `budgetBytes` in total, the fastest streams first, each from its current offset to at most its end.
 * posix_fadvise returns an error number rather than setting errno, so a non-zero return is a failure.
 */
export const fadvisePrefetch: Prefetcher = (streams, budgetBytes) => {
  const out: PrefetchResult = { files: 0, bytes: 0, failed: 0 };
  let left = Math.max(0, Math.floor(budgetBytes));
  for (const s of [...streams].sort((a, b) => b.advanced - a.advanced)) {
    if (left <= 0) break;
    const len = Math.min(left, s.size - s.pos);
    if (len <= 0) continue;
    let fd: number | undefined;
    try {
      fd = fs.openSync(s.fdPath, fs.constants.O_RDONLY | fs.constants.O_NOATIME);
    } catch {
      try {
        // O_NOATIME needs ownership of the file; without it, an ordinary open.
        fd = fs.openSync(s.fdPath, fs.constants.O_RDONLY);
      } catch {
        out.failed++;
        continue;
      }
    }
    try {
      const advise = binding();
      let done = 0;
      while (done < len) {
        const n = Math.min(FADVISE_CHUNK, len - done);
        if (advise(fd, s.pos + done, n, POSIX_FADV_WILLNEED) !== 0) break;
        done += n;
      }
      if (done === 0) {
        out.failed++;
        continue;
      }
      out.files++;
      out.bytes += done;
      left -= done;
    } finally {
      fs.closeSync(fd);
    }
  }
  return out;
};
