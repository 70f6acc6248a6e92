/**
 * Ownership and mode checks for the files a root agent trusts: the config (which names the cgroups it may write)
 * and the state directory (whose journal says what to write back on rollback). Whoever can change either can make
 * the agent write as root, so both, and every directory above them, must be changeable only by root (or, when the
 * agent runs unprivileged, by its own user).
 */
import { mkdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { errnoCode, TunerError, type TunerErrorCode } from '../core/errors.js';

export interface PermsOptions {
  /** The uid the agent runs as; defaults to process.getuid(). Owners allowed: root and this uid. */
  uid?: number;
}

/** What the path is, for messages: "config file", "state directory", "token file", "BPF object". */
type Kind = string;

const fmtMode = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

function allowedOwners(opts: PermsOptions | undefined): Set<number> {
  const uid = opts?.uid ?? process.getuid?.() ?? 0;
  return new Set([0, uid]);
}

/** `/a/b/c` → `['/', '/a', '/a/b', '/a/b/c']`. */
function chain(p: string): string[] {
  const out: string[] = [];
  for (let cur = p; ; cur = dirname(cur)) {
    out.unshift(cur);
    if (dirname(cur) === cur) return out;
  }
}

/**
 * A path that is missing or cannot be resolved is not unsafe, it is wrong: a distinct code lets `rollback` treat a
 * missing state directory as nothing to do, and the config loader report a missing file as a config error.
 */
function unusableCode(kind: Kind): TunerErrorCode {
  return kind === 'state directory' ? 'JOURNAL' : 'CONFIG_INVALID';
}

function statOrThrow(kind: Kind, subject: string, p: string): Stats {
  try {
    return statSync(p);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const fix = kind === 'state directory' ? ` — fix: create it with \`install -d -m 0700 -o root ${subject}\`` : ' — fix: check the path';
      throw new TunerError(unusableCode(kind), `check ${kind} ${subject}: ${p} does not exist${fix}`, { cause: e });
    }
    throw new TunerError(
      code === 'EACCES' || code === 'EPERM' ? 'PERMISSION' : unusableCode(kind),
      `check ${kind} ${subject}: cannot stat ${p} (${code ?? String(e)}) — fix: ${code === 'EACCES' || code === 'EPERM' ? 'run as root' : 'check the path'}`,
      { cause: e },
    );
  }
}

/**
 * Every path whose replacement would change what `p` resolves to: the ancestors of `p` as written (a symlink can be
 * swapped by whoever can write the directory holding it) and the ancestors of each prefix's real path (the
 * directories a symlink leads into). Keyed by real path, since that is what was stat'ed.
 */
function pathsToCheck(kind: Kind, subject: string, p: string): Map<string, { stats: Stats; leaf: boolean }> {
  const abs = resolve(p);
  const leafReal = realOrThrow(kind, subject, abs);
  const out = new Map<string, { stats: Stats; leaf: boolean }>();
  for (const prefix of chain(abs)) {
    for (const dir of chain(realOrThrow(kind, subject, prefix))) {
      if (!out.has(dir)) out.set(dir, { stats: statOrThrow(kind, subject, dir), leaf: false });
    }
  }
  const leaf = out.get(leafReal);
  if (leaf !== undefined) leaf.leaf = true;
  return out;
}

function realOrThrow(kind: Kind, subject: string, p: string): string {
  try {
    return realpathSync(p);
  } catch (e) {
    // stat names the common causes (missing, not a directory) in the words the other checks use.
    statOrThrow(kind, subject, p);
    throw new TunerError(unusableCode(kind), `check ${kind} ${subject}: cannot resolve ${p} (${errnoCode(e) ?? String(e)})`, {
      cause: e,
    });
  }
}

/**
 * The one rule: nothing on the way to the file may be writable by group or other, and everything must be owned by an
 * allowed owner. One exception: a sticky directory (like /tmp) may be world-writable above the leaf, because the
 * sticky bit stops others from renaming or deleting the entries below it, which the owner check requires to be
 * ours. Write permission granted through a POSIX ACL shows up in the group bits (the ACL mask), so it is caught too.
 */
function assertChain(kind: Kind, subject: string, p: string, opts: PermsOptions | undefined): Stats {
  // An empty path would resolve to the working directory, which is never what was meant.
  if (p === '') throw new TunerError(unusableCode(kind), `check ${kind}: empty path`);
  if (p.includes('\0')) {
    throw new TunerError(unusableCode(kind), `check ${kind} ${JSON.stringify(p)}: path contains a NUL byte`);
  }
  const owners = allowedOwners(opts);
  const ownerWord = owners.size === 1 ? 'root' : `root or uid ${[...owners].filter((u) => u !== 0)[0]}`;
  let leafStats: Stats | undefined;
  for (const [path, { stats, leaf }] of pathsToCheck(kind, subject, p)) {
    if (leaf) leafStats = stats;
    const mode = stats.mode & 0o7777;
    const what = `${path} (mode ${fmtMode(mode)}, owner uid ${stats.uid})`;
    if (!owners.has(stats.uid)) {
      throw new TunerError(
        'PERMISSION',
        `check ${kind} ${subject}: ${what} is owned by uid ${stats.uid}, not ${ownerWord} — fix: run \`chown root ${path}\``,
      );
    }
    const writable = mode & 0o022;
    const stickyDir = stats.isDirectory() && (mode & 0o1000) !== 0;
    if (writable !== 0 && (leaf || !stickyDir)) {
      const by = [mode & 0o020 ? 'group' : '', mode & 0o002 ? 'others' : ''].filter(Boolean).join(' and ');
      throw new TunerError('PERMISSION', `check ${kind} ${subject}: ${what} is writable by ${by} — fix: run \`chmod go-w ${path}\``);
    }
  }
  if (leafStats === undefined) throw new TunerError('INTERNAL', `check ${kind} ${subject}: leaf not examined`);
  return leafStats;
}

/**
 * Refuses (TunerError 'PERMISSION') a config file that someone other than root could change: the file or any
 * directory above it writable by group/other, or owned by another user. Symlinks are followed, and the directories
 * on both sides of each are checked. A missing path or one that is not a regular file is 'CONFIG_INVALID'.
 */
export function assertSafeConfigFile(path: string, opts?: PermsOptions): void {
  // What the path is comes first: for a directory or a device, "chmod go-w" would be the wrong fix.
  let pre: Stats | undefined;
  try {
    pre = statSync(path);
  } catch {
    pre = undefined; // assertChain names what is missing or unreadable
  }
  if (pre !== undefined && !pre.isFile()) notRegular(path, pre);
  const st = assertChain('config file', path, path, opts);
  if (!st.isFile()) notRegular(path, st);
}

function notRegular(path: string, st: Stats): never {
  const what = st.isDirectory()
    ? 'a directory'
    : st.isFIFO()
      ? 'a FIFO'
      : st.isCharacterDevice()
        ? 'a character device'
        : st.isBlockDevice()
          ? 'a block device'
          : st.isSocket()
            ? 'a socket'
            : 'not a regular file';
  throw new TunerError(
    'CONFIG_INVALID',
    `check config file ${path}: it is ${what}, not a regular file (mode ${fmtMode(st.mode)}) — fix: pass the path of the YAML config file`,
  );
}

/**
 * As assertSafeConfigFile, for the state directory that holds the rollback journal. A missing directory, or a path
 * that is not a directory, is 'JOURNAL'.
 */
export function assertSafeStateDir(dir: string, opts?: PermsOptions): void {
  const st = assertChain('state directory', dir, dir, opts);
  if (!st.isDirectory()) {
    throw new TunerError('JOURNAL', `check state directory ${dir}: not a directory (mode ${fmtMode(st.mode)}) — fix: pass a directory with --state-dir`);
  }
}

/**
 * Creates the state directory (0700) if it is missing, then checks it as assertSafeStateDir does. An existing
 * directory keeps its mode: a looser one is refused, not silently tightened, so the operator learns who could
 * have changed the journal.
 */
export function ensureSafeStateDir(dir: string, opts?: PermsOptions): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new TunerError('JOURNAL', `create state directory ${dir}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  assertSafeStateDir(dir, opts);
}

/**
 * The rule alone, for any other path the agent trusts as root (a token file, a BPF object): returns the stats of
 * the path itself so the caller can add its own checks. `what` names the path in messages.
 */
export function assertSafePath(path: string, what: string, opts?: PermsOptions): Stats {
  return assertChain(what, path, path, opts);
}
