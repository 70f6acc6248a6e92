/**
 * Ownership and mode checks against real files and directories this test creates, chmods and chowns. chown to
 * another uid needs root, which the agent's tests always have; run as anyone else these tests fail and say why.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTunerError, TunerError, type TunerErrorCode } from '../core/errors.js';
import { assertSafeConfigFile, assertSafePath, assertSafeStateDir, ensureSafeStateDir } from './perms.js';

const OTHER_UID = 12345;
let base: string;

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('perms tests chown files to other uids and must run as root');
  base = mkdtempSync(join(tmpdir(), 'perms-'));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

let seq = 0;
/** A fresh directory of the given mode directly under the safe base. */
function dir(mode = 0o755, uid = 0, parent = base): string {
  const d = join(parent, `d${seq++}`);
  mkdirSync(d);
  chownSync(d, uid, 0);
  chmodSync(d, mode);
  return d;
}
function file(parent: string, mode = 0o644, uid = 0, content = 'tick_ms: 1000\n'): string {
  const f = join(parent, `f${seq++}.yaml`);
  writeFileSync(f, content);
  // chown before chmod: chown clears setuid/setgid bits.
  chownSync(f, uid, 0);
  chmodSync(f, mode);
  return f;
}

function refusal(fn: () => void): TunerError {
  try {
    fn();
  } catch (e) {
    if (e instanceof TunerError) return e;
    throw new Error(`expected a TunerError, got ${String(e)}`);
  }
  throw new Error('expected a refusal, but the check passed');
}
function expectRefused(fn: () => void, code: TunerErrorCode, ...parts: (string | RegExp)[]): void {
  const err = refusal(fn);
  expect(err.code).toBe(code);
  for (const p of parts) {
    if (typeof p === 'string') expect(err.message).toContain(p);
    else expect(err.message).toMatch(p);
  }
}

describe('assertSafeConfigFile', () => {
  it('accepts a root-owned 0644 file in root-owned 0755 directories (under a sticky /tmp)', () => {
    expect(statSync(tmpdir()).mode & 0o1000, `${tmpdir()} must be sticky for this suite`).not.toBe(0);
    assertSafeConfigFile(file(dir()));
    assertSafeConfigFile(file(dir(0o700), 0o400));
  });

  it('refuses a group-writable file, naming path, mode, owner and the fix', () => {
    const f = file(dir(), 0o664);
    expectRefused(() => assertSafeConfigFile(f), 'PERMISSION', f, 'mode 0664', 'owner uid 0', 'writable by group', `chmod go-w ${f}`);
  });

  it('refuses a world-writable file', () => {
    const f = file(dir(), 0o646);
    expectRefused(() => assertSafeConfigFile(f), 'PERMISSION', 'writable by others', `chmod go-w ${f}`);
  });

  it('refuses a file owned by another user', () => {
    const f = file(dir(), 0o644, OTHER_UID);
    expectRefused(() => assertSafeConfigFile(f), 'PERMISSION', `owned by uid ${OTHER_UID}`, `chown root ${f}`);
  });

  it('refuses when the parent directory is writable by others', () => {
    const d = dir(0o777);
    const f = file(d);
    expectRefused(() => assertSafeConfigFile(f), 'PERMISSION', `${d} (mode 0777`, `chmod go-w ${d}\``);
  });

  it('refuses when a grandparent is owned by another user', () => {
    const g = dir(0o755, OTHER_UID);
    const f = file(dir(0o755, 0, g));
    expectRefused(() => assertSafeConfigFile(f), 'PERMISSION', `${g} (mode 0755, owner uid ${OTHER_UID})`, `chown root ${g}\``);
  });

  it('accepts a sticky world-writable parent when the file is root-owned, and refuses it otherwise', () => {
    const d = dir(0o1777);
    assertSafeConfigFile(file(d));
    expectRefused(() => assertSafeConfigFile(file(d, 0o644, OTHER_UID)), 'PERMISSION', 'chown root');
  });

  it('refuses a sticky group-writable file: the sticky bit protects entries, not content', () => {
    expectRefused(() => assertSafeConfigFile(file(dir(), 0o1664)), 'PERMISSION', 'mode 1664');
  });

  it('catches write access granted through a POSIX ACL (the ACL mask shows in the group bits)', () => {
    const f = file(dir(), 0o644);
    // USER_OBJ rw, USER 12345 rw, GROUP_OBJ r, MASK rw, OTHER r, written as the kernel's xattr format.
    execFileSync('python3', [
      '-c',
      `import os,struct,sys
e=[(1,6,0xffffffff),(2,6,${OTHER_UID}),(4,4,0xffffffff),(0x10,6,0xffffffff),(0x20,4,0xffffffff)]
os.setxattr(sys.argv[1],"system.posix_acl_access",struct.pack("<I",2)+b"".join(struct.pack("<HHI",*x) for x in e))`,
      f,
    ]);
    expectRefused(() => assertSafeConfigFile(f), 'PERMISSION', 'writable by group');
  });

  it('follows a symlink and checks the directories it leads into', () => {
    const unsafe = dir(0o777);
    const target = file(unsafe);
    const link = join(dir(), 'config.yaml');
    symlinkSync(target, link);
    expectRefused(() => assertSafeConfigFile(link), 'PERMISSION', `${unsafe} (mode 0777`);
  });

  it('checks the directory holding a symlink, which could swap it', () => {
    const target = file(dir());
    const unsafe = dir(0o777);
    const link = join(unsafe, 'config.yaml');
    symlinkSync(target, link);
    expectRefused(() => assertSafeConfigFile(link), 'PERMISSION', `${unsafe} (mode 0777`);
    const safeLink = join(dir(), 'config.yaml');
    symlinkSync(target, safeLink);
    assertSafeConfigFile(safeLink);
  });

  it('refuses a missing path or a directory as CONFIG_INVALID', () => {
    expectRefused(() => assertSafeConfigFile(join(base, 'missing.yaml')), 'CONFIG_INVALID', 'does not exist');
    expectRefused(() => assertSafeConfigFile(dir()), 'CONFIG_INVALID', 'not a regular file');
    expectRefused(() => assertSafeConfigFile(''), 'CONFIG_INVALID', 'empty path');
  });

  it('when not running as root, also accepts files owned by the agent user, but no one else', () => {
    const d = dir(0o755, OTHER_UID);
    assertSafeConfigFile(file(d, 0o644, OTHER_UID), { uid: OTHER_UID });
    expectRefused(
      () => assertSafeConfigFile(file(d, 0o644, OTHER_UID + 1), { uid: OTHER_UID }),
      'PERMISSION',
      `not root or uid ${OTHER_UID}`,
    );
  });
});

describe('assertSafeStateDir / ensureSafeStateDir', () => {
  it('accepts a root-owned 0700 directory', () => {
    assertSafeStateDir(dir(0o700));
  });

  it('refuses a group-writable state directory with the fix', () => {
    const d = dir(0o770);
    expectRefused(() => assertSafeStateDir(d), 'PERMISSION', `${d} (mode 0770, owner uid 0)`, `chmod go-w ${d}`);
  });

  it('refuses a state directory owned by another user', () => {
    const d = dir(0o700, OTHER_UID);
    expectRefused(() => assertSafeStateDir(d), 'PERMISSION', `chown root ${d}`);
  });

  it('reports a missing directory or a file as JOURNAL, so rollback can tell "nothing to do" from "unsafe"', () => {
    const missing = join(base, 'no-state');
    expectRefused(() => assertSafeStateDir(missing), 'JOURNAL', 'does not exist', `install -d -m 0700 -o root ${missing}`);
    expectRefused(() => assertSafeStateDir(file(dir())), 'JOURNAL', 'not a directory');
  });

  it('ensureSafeStateDir creates a missing directory 0700 and checks an existing one without loosening it', () => {
    const d = join(dir(), 'a', 'b');
    ensureSafeStateDir(d);
    expect(statSync(d).mode & 0o777).toBe(0o700);
    ensureSafeStateDir(d);
    const loose = dir(0o777);
    expectRefused(() => ensureSafeStateDir(loose), 'PERMISSION', 'chmod go-w');
    expect(statSync(loose).mode & 0o777).toBe(0o777);
  });
});

describe('properties', () => {
  const owners = fc.constantFrom(0, OTHER_UID, 65534);
  const modes = fc.integer({ min: 0, max: 0o7777 });

  it('a config file passes exactly when it and its parent are root-owned and not writable by others', () => {
    fc.assert(
      fc.property(modes, owners, modes, owners, (fileMode, fileUid, dirMode, dirUid) => {
        const d = dir(dirMode, dirUid);
        const f = file(d, fileMode, fileUid);
        const dirOk = dirUid === 0 && ((dirMode & 0o022) === 0 || (dirMode & 0o1000) !== 0);
        const fileOk = fileUid === 0 && (fileMode & 0o022) === 0;
        let err: unknown;
        try {
          assertSafeConfigFile(f);
        } catch (e) {
          err = e;
        }
        rmSync(d, { recursive: true, force: true });
        if (err !== undefined && !isTunerError(err, 'PERMISSION')) throw err;
        expect(err === undefined).toBe(dirOk && fileOk);
      }),
      { numRuns: 150 },
    );
  });

  it('the state directory check passes exactly when the directory is root-owned and not writable by others', () => {
    fc.assert(
      fc.property(modes, owners, (mode, uid) => {
        const d = dir(mode, uid);
        let err: unknown;
        try {
          assertSafeStateDir(d);
        } catch (e) {
          err = e;
        }
        rmSync(d, { recursive: true, force: true });
        if (err !== undefined && !isTunerError(err, 'PERMISSION')) throw err;
        expect(err === undefined).toBe(uid === 0 && (mode & 0o022) === 0);
      }),
      { numRuns: 100 },
    );
  });

  it('any path string yields success or a TunerError, never another exception', () => {
    const paths = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({ maxLength: 20 }).map((s) => join(base, s)),
      fc.constantFrom('/', '/etc/passwd', '/proc/self/fd/0', '/dev/null', base, '\0', '/nonexistent/\u00e9'),
    );
    fc.assert(
      fc.property(paths, (p) => {
        for (const check of [assertSafeConfigFile, assertSafeStateDir, (x: string) => assertSafePath(x, 'path')]) {
          try {
            check(p);
          } catch (e) {
            if (!(e instanceof TunerError)) throw e;
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
