/**
 * The bearer token that guards the HTTP endpoint: loaded once from a file only root can read, and compared in
 * constant time so neither its content nor its length leaks through response timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { errnoCode, TunerError } from '../core/errors.js';
import { assertSafePath, type PermsOptions } from './perms.js';

export const MIN_TOKEN_LENGTH = 16;
/** A token is a line, not a document; anything longer is the wrong file. */
const MAX_TOKEN_BYTES = 4096;

const mode8 = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

/**
 * Reads the token from `file`. Refuses (TunerError) a file that group or others can read ('PERMISSION'), that sits
 * under a directory others could swap it in ('PERMISSION', see assertSafePath), or whose content is empty, shorter
 * than MIN_TOKEN_LENGTH, longer than 4 KiB or not a single line of visible ASCII ('CONFIG_INVALID'). Surrounding
 * whitespace, such as the newline `echo` adds, is dropped.
 */
export function loadToken(file: string, opts?: PermsOptions): string {
  const generate = `(umask 077; head -c 32 /dev/urandom | base64 > ${file})`;
  const checked = assertSafePath(file, 'token file', opts);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new TunerError('PERMISSION', `read token file ${file}: ${errnoCode(e) ?? String(e)} — fix: check the path, and run as root`, { cause: e });
  }
  let text: string;
  try {
    // The mode is judged on the file actually opened, so a rename between the path check and the open is caught.
    const st = fstatSync(fd);
    if (st.dev !== checked.dev || st.ino !== checked.ino) {
      throw new TunerError('PERMISSION', `read token file ${file}: it was replaced while being checked — fix: try again`);
    }
    if (!st.isFile()) {
      throw new TunerError('CONFIG_INVALID', `read token file ${file}: not a regular file (mode ${mode8(st.mode)}) — fix: pass the file holding the token`);
    }
    if ((st.mode & 0o044) !== 0) {
      const by = [st.mode & 0o040 ? 'group' : '', st.mode & 0o004 ? 'others' : ''].filter(Boolean).join(' and ');
      throw new TunerError(
        'PERMISSION',
        `read token file ${file}: readable by ${by} (mode ${mode8(st.mode)}, owner uid ${st.uid}); run \`chmod 600 ${file}\``,
      );
    }
    const buf = Buffer.alloc(MAX_TOKEN_BYTES + 1);
    let len = 0;
    for (let n; len < buf.length && (n = readSync(fd, buf, len, buf.length - len, null)) > 0; ) len += n;
    if (len > MAX_TOKEN_BYTES) {
      throw new TunerError('CONFIG_INVALID', `read token file ${file}: larger than ${MAX_TOKEN_BYTES} bytes — fix: pass the file holding the token`);
    }
    text = buf.subarray(0, len).toString('utf8').trim();
  } finally {
    closeSync(fd);
  }
  if (text.length === 0) {
    throw new TunerError('CONFIG_INVALID', `read token file ${file}: empty — fix: generate one with \`${generate}\``);
  }
  if (!/^[\x21-\x7e]+$/.test(text)) {
    // It travels in an Authorization header; whitespace or control bytes inside mean a mangled or wrong file.
    throw new TunerError(
      'CONFIG_INVALID',
      `read token file ${file}: must be one line of visible ASCII without spaces — fix: generate one with \`${generate}\``,
    );
  }
  if (text.length < MIN_TOKEN_LENGTH) {
    throw new TunerError(
      'CONFIG_INVALID',
      `read token file ${file}: ${text.length} characters, fewer than ${MIN_TOKEN_LENGTH} — fix: generate one with \`${generate}\``,
    );
  }
  return text;
}

/**
 * Constant-time comparison: both sides are hashed first, so timingSafeEqual always compares 32 bytes and the time
 * taken says nothing about the expected token's length or how many leading characters matched. UTF-16 code units
 * are hashed (not UTF-8) because UTF-8 encoding maps every lone surrogate to U+FFFD, which would make distinct
 * strings compare equal.
 */
export function tokenEquals(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf16le').digest();
  const db = createHash('sha256').update(b, 'utf16le').digest();
  return timingSafeEqual(da, db);
}

/** The token as the file holds it now; `current()` throws (TunerError) while the file is unsafe or unusable. */
export interface TokenSource {
  current(): string;
}

/**
 * The token file, checked again whenever it is read: each `current()` stats the file, and when anything about it
 * changed (content, mode, owner, a replacement) loads it again through loadToken — so a token file made readable by
 * others after start is refused from the next request on, and a rotated token takes effect without a restart. The
 * first load happens here, so a bad file is reported at start.
 */
export function tokenSource(file: string, opts?: PermsOptions): TokenSource {
  const stamp = (): string => {
    try {
      const st = statSync(file);
      return `${st.dev}:${st.ino}:${st.mode}:${st.uid}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    } catch (e) {
      return `error:${errnoCode(e) ?? String(e)}`;
    }
  };
  let seen = stamp();
  let token: string | undefined = loadToken(file, opts);
  let error: TunerError | undefined;
  return {
    current(): string {
      const now = stamp();
      if (now !== seen) {
        seen = now;
        try {
          token = loadToken(file, opts);
          error = undefined;
        } catch (e) {
          token = undefined;
          error = e instanceof TunerError ? e : new TunerError('PERMISSION', `read token file ${file}: ${String(e)}`, { cause: e });
        }
      }
      if (token === undefined) throw error ?? new TunerError('INTERNAL', `read token file ${file}: no token`);
      return token;
    },
  };
}
