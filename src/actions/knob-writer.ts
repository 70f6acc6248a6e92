/**
 * The only way an action changes a knob. It enforces the three rules every write obeys:
 *   1. scope — only files inside a configured target's cgroup, or files of a configured device (its sysfs
 *      directory, for knobs such as queue/read_ahead_kb) that an action declared for one target, and never inside
 *      the deny list; a knob that is not a file (a thread's CPU affinity) belongs to a thread, whose cgroup must pass
 *      the same test;
 *   2. journal first — the original value is durably recorded before the first write;
 *   3. no fighting — once someone else changes a knob after us, it is theirs: we stop writing it.
 * In dry-run it computes and reports the same decisions and touches neither the knob nor the journal.
 */
import fs from 'node:fs';
import path from 'node:path';
import { channels, publish, type KnobEvent } from '../core/events.js';
import { TunerError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { KnobRef } from '../core/types.js';
import { cgroupOfPidIn, kernelKnobIO, normalizeKnobValue, type KnobIO } from '../cgroup/cgroup.js';
import { detectLayout, isPathUnder, type CgroupLayout } from '../cgroup/layout.js';
import { deviceNameOf, type BlockDevice } from '../block/devices.js';
import type { Journal, JournalEntry } from '../journal/journal.js';
import { followKernelRewrites, restoreAll, restoreEntry, type RestoreItem, type RestoreReport } from '../journal/restore.js';
import type { KnobClaimer } from '../journal/ownership.js';

export interface DenyRule {
  /** Absolute cgroup directory. */
  path: string;
  /** Deny the whole subtree, or only the directory itself. */
  subtree: boolean;
  /** Shown in the refusal message. */
  reason: string;
  /**
   * Whether the rule also covers knobs of single tasks in the cgroup (a thread's CPU affinity), not only its files.
   * Default true. False for rules that exist because a write to the cgroup reaches every task in it — a controller
   * root, the agent's own cgroup and its ancestors: a per-thread knob changes that thread alone, and on a host
   * without cgroup management every process sits in the roots.
   */
  tasks?: boolean;
}

/**
 * A knob that is not a cgroup interface file, e.g. a thread's CPU affinity. Its path reads `<scheme>:<rest>`. The
 * scheme reads and writes it and names the thread it acts on; the writer holds that thread to the same scope and
 * deny rules as a file's directory, so one check guards every kind of knob.
 */
export interface KnobScheme {
  /** The prefix before the first ':' of the knob paths this scheme owns. */
  readonly scheme: string;
  /** Must throw CGROUP_NOT_FOUND once the knob is gone (its thread exited): restore then reports it vanished. */
  readonly io: KnobIO;
  /** The thread the knob acts on. Throws PID_NOT_FOUND when it no longer exists. */
  task(knobPath: string): { tid: number; tgid: number };
}

const schemes = new Map<string, KnobScheme>();

/** Make a kind of knob known to every writer and restore; the module defining the scheme calls this once. */
export function registerKnobScheme(scheme: KnobScheme): void {
  schemes.set(scheme.scheme, scheme);
}

/** The registered scheme owning a knob path, or undefined for an (absolute) file path. */
export function knobSchemeOf(knobPath: string): KnobScheme | undefined {
  const i = knobPath.indexOf(':');
  return i > 0 && !knobPath.startsWith('/') ? schemes.get(knobPath.slice(0, i)) : undefined;
}

/** One KnobIO for every kind of knob: registered schemes by their prefix, everything else as a file through `files`. */
export function knobIO(files: KnobIO = kernelKnobIO): KnobIO {
  return {
    read: (p) => (knobSchemeOf(p)?.io ?? files).read(p),
    write: (p, value) => (knobSchemeOf(p)?.io ?? files).write(p, value),
  };
}

export type SetStatus = 'written' | 'unchanged' | 'overridden' | 'dry-run';

export interface SetResult {
  status: SetStatus;
  knobId: string;
  path: string;
  /** The value found before this call (for 'overridden': what the other writer left). */
  previous?: string;
  /** The value asked for. */
  value: string;
  /** True when this would be (or was) the first change to the knob, i.e. its original is (to be) journaled now. */
  firstWrite: boolean;
}

export interface KnobWriterOptions {
  journal: Journal;
  log: Logger;
  dryRun?: boolean;
  /** Cgroup directories of the targets; a knob must be inside one of them. */
  scope: string[];
  /** Processes of pid-list targets: a thread knob of one of these is in scope too. */
  pids?: number[];
  /**
   * Block devices (the config's `devices`, resolved): a file outside every cgroup is in scope only below one of
   * their sysfs directories, and only once an action declared it for a target. None by default: no device knob.
   */
  devices?: readonly BlockDevice[];
  /** Replaces the default deny list (see `defaultDenyList`); extend it with `[...defaultDenyList(layout), ...]`. */
  deny?: DenyRule[];
  /** Used for the default deny list and to find a thread's cgroups; probed when absent. */
  layout?: CgroupLayout;
  /** File reads and writes; knobs of registered schemes go to their own IO. */
  io?: KnobIO;
  /**
   * Host-wide knob claims: a knob is claimed before its original is read, so no other agent manages it meanwhile
   * and a value another agent wrote is never journaled as an original. Without it (unit tests) nothing is claimed.
   */
  claims?: KnobClaimer;
}

/** Resolve symlinks where the path exists, so a link cannot smuggle a write out of scope. */
function canonical(p: string): string {
  const abs = path.resolve(p);
  try {
    return fs.realpathSync(abs);
  } catch {
    try {
      return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
    } catch {
      return abs;
    }
  }
}

/**
 * The defaults: every controller root itself (a write there changes the whole host), `init.scope` and
 * `system.slice` (PID 1 and the system services), and the agent's own cgroup with its ancestors (starving those
 * would starve the agent, which must stay able to restore).
 */
export function defaultDenyList(layout: CgroupLayout, opts: { pid?: number; procRoot?: string } = {}): DenyRule[] {
  const pid = opts.pid ?? process.pid;
  const rules: DenyRule[] = [];
  for (const m of layout.mounts) {
    const root = canonical(m.mount);
    rules.push({ path: root, subtree: false, reason: 'a cgroup controller root', tasks: false });
    rules.push({ path: path.join(root, 'init.scope'), subtree: true, reason: 'init.scope (PID 1)' });
    rules.push({ path: path.join(root, 'system.slice'), subtree: true, reason: 'system.slice (system services)' });
    let own: string | undefined;
    try {
      own = canonical(cgroupOfPidIn(pid, m, opts.procRoot !== undefined ? { procRoot: opts.procRoot } : {}));
    } catch {
      // Without /proc/<pid>/cgroup there is no own cgroup to protect in this hierarchy; the other rules still hold.
      own = undefined;
    }
    for (let d = own; d !== undefined && isPathUnder(d, root) && d !== root; d = path.dirname(d)) {
      rules.push({ path: d, subtree: false, reason: d === own ? "the agent's own cgroup" : "an ancestor of the agent's cgroup", tasks: false });
    }
  }
  return rules;
}

export class KnobWriter {
  readonly dryRun: boolean;
  /** The journal's directory: the agent's state directory, where actions also keep the files they publish. */
  readonly stateDir: string;
  private readonly journal: Journal;
  private readonly log: Logger;
  private readonly io: KnobIO;
  private readonly claims: KnobClaimer | undefined;
  private readonly deny: DenyRule[];
  private scope: string[];
  private pids: Set<number>;
  private readonly devices: readonly BlockDevice[];
  private layout: CgroupLayout | undefined;
  /** `${action}\0${target}` → canonical knob files outside the cgroup trees declared for that pair. */
  private readonly outside = new Map<string, Set<string>>();

  constructor(opts: KnobWriterOptions) {
    this.journal = opts.journal;
    this.log = opts.log.child({ module: 'knob-writer' });
    this.dryRun = opts.dryRun === true;
    this.stateDir = path.dirname(opts.journal.file);
    this.io = knobIO(opts.io ?? kernelKnobIO);
    this.claims = opts.claims;
    this.layout = opts.layout;
    this.deny = (opts.deny ?? defaultDenyList(opts.layout ?? detectLayout())).map((r) => ({ ...r, path: canonical(r.path) }));
    this.scope = opts.scope.map(canonical);
    this.pids = new Set(opts.pids ?? []);
    this.devices = (opts.devices ?? []).map((d) => ({ ...d, sysfs: canonical(d.sysfs) }));
  }

  /** Targets changed: knobs must now lie inside these cgroup directories (thread knobs: or these processes). */
  updateScope(scope: string[], pids?: number[]): void {
    this.scope = scope.map(canonical);
    if (pids !== undefined) this.pids = new Set(pids);
  }

  /**
   * Declare the knob files outside the cgroup trees that `action` may write for `target` (e.g. read_ahead_kb of the
   * block devices the target reads), replacing what it declared for that pair before. Only exact files are allowed,
   * only to that action for that target, and never a file inside a cgroup mount: cgroup knobs stay limited to the
   * targets' own cgroups.
   */
  allowOutside(action: string, target: string, paths: readonly string[]): void {
    const roots = (this.layout ??= detectLayout()).mounts.map((m) => canonical(m.mount));
    const files = new Set<string>();
    for (const p of paths) {
      if (!path.isAbsolute(p)) {
        throw new TunerError('OUT_OF_SCOPE', `declare ${p} for ${action} on ${target}: not an absolute path`);
      }
      const file = canonical(p);
      const root = roots.find((r) => isPathUnder(file, r));
      if (root !== undefined) {
        throw new TunerError(
          'OUT_OF_SCOPE',
          `declare ${file} for ${action} on ${target}: it lies in the cgroup tree ${root}, where only the targets' own cgroups are in scope`,
        );
      }
      files.add(file);
    }
    const key = `${action}\0${target}`;
    if (files.size > 0) this.outside.set(key, files);
    else this.outside.delete(key);
  }

  /**
   * Throws OUT_OF_SCOPE unless the knob file lies outside every deny rule and either inside a scope directory or,
   * given the writing `owner`, among the files that owner declared with allowOutside and below a configured device.
   */
  checkScope(knobPath: string, owner?: { action: string; target: string }): void {
    const scheme = knobSchemeOf(knobPath);
    if (scheme !== undefined) {
      this.checkTaskScope(knobPath, scheme);
      return;
    }
    if (!path.isAbsolute(knobPath)) {
      throw new TunerError('OUT_OF_SCOPE', `write ${knobPath}: not an absolute path — knob paths are absolute cgroup file paths`);
    }
    const file = canonical(knobPath);
    const dir = path.dirname(file);
    const rule = this.deny.find((r) => (r.subtree ? isPathUnder(dir, r.path) : dir === r.path));
    if (rule !== undefined) {
      throw new TunerError(
        'OUT_OF_SCOPE',
        `write ${file}: ${rule.path} is ${rule.reason}, which the agent never changes — target a cgroup below it`,
      );
    }
    if (!this.scope.some((s) => isPathUnder(dir, s))) {
      const roots = (this.layout ??= detectLayout()).mounts.map((m) => canonical(m.mount));
      const declared = owner !== undefined ? this.outside.get(`${owner.action}\0${owner.target}`) : undefined;
      if (!roots.some((r) => isPathUnder(file, r))) {
        // A file outside every cgroup is a device knob, shared by everyone on the device: it needs both the device in
        // `devices` and the writing action's declaration for this target.
        if (!this.devices.some((d) => isPathUnder(file, d.sysfs))) {
          throw new TunerError(
            'OUT_OF_SCOPE',
            `write ${file}: device ${deviceNameOf(file)} is not among the configured devices (${this.devices.map((d) => d.name).join(', ') || 'none listed'}) ` +
              `— fix: add it to devices: in the config to let the agent change it`,
          );
        }
        if (declared?.has(file) === true) return;
        throw new TunerError(
          'OUT_OF_SCOPE',
          owner === undefined
            ? `write ${file}: a device knob needs the action and target writing it`
            : declared !== undefined
              ? `write ${file}: the file is not among the ${declared.size} ${owner.action} declared for ${owner.target} — it is not a knob of that target`
              : `write ${file}: ${owner.action} declared no file of device ${deviceNameOf(file)} for ${owner.target} — a device knob is written only for a target that does I/O on it`,
        );
      }
      if (declared?.has(file) === true) return;
      const targets = this.scope.join(', ') || 'none';
      throw new TunerError(
        'OUT_OF_SCOPE',
        declared !== undefined
          ? `write ${file}: ${dir} is outside every configured target (${targets}) and the file is not among the ${declared.size} ` +
              `${owner!.action} declared for ${owner!.target} — it is not a knob of that target`
          : `write ${file}: ${dir} is outside every configured target (${targets}) — add its cgroup as a target`,
      );
    }
  }

  /**
   * A thread knob is in scope when the thread's cgroup, in the hierarchy of some scope directory, lies inside that
   * directory, or when its process is one of the scope's pids; either way none of its cgroups may be denied.
   */
  private checkTaskScope(knobPath: string, scheme: KnobScheme): void {
    const { tid, tgid } = scheme.task(knobPath);
    const layout = (this.layout ??= detectLayout());
    const where = new Map<string, string>();
    const cgroupIn = (mount: CgroupLayout['mounts'][number]): string | undefined => {
      if (!where.has(mount.mount)) {
        try {
          where.set(mount.mount, canonical(cgroupOfPidIn(tid, mount)));
        } catch (e) {
          if (e instanceof TunerError && e.code === 'PID_NOT_FOUND') throw e;
          // A hierarchy this thread has no line for cannot put it in scope.
          return undefined;
        }
      }
      return where.get(mount.mount);
    };
    const refuseDenied = (dir: string): void => {
      const rule = this.deny.find((r) => r.tasks !== false && (r.subtree ? isPathUnder(dir, r.path) : dir === r.path));
      if (rule !== undefined) {
        throw new TunerError(
          'OUT_OF_SCOPE',
          `change ${knobPath}: thread ${tid} is in ${dir}, and ${rule.path} is ${rule.reason}, which the agent never changes`,
        );
      }
    };
    for (const s of this.scope) {
      const mount = layout.mounts
        .filter((m) => isPathUnder(s, canonical(m.mount)))
        .sort((a, b) => b.mount.length - a.mount.length)[0];
      const dir = mount !== undefined ? cgroupIn(mount) : undefined;
      if (dir !== undefined && isPathUnder(dir, s)) {
        refuseDenied(dir);
        return;
      }
    }
    if (this.pids.has(tgid)) {
      for (const m of layout.mounts) {
        const dir = cgroupIn(m);
        if (dir !== undefined) refuseDenied(dir);
      }
      return;
    }
    throw new TunerError(
      'OUT_OF_SCOPE',
      `change ${knobPath}: thread ${tid} (process ${tgid}) is in ${[...where.values()].join(', ') || 'no known cgroup'}, outside every configured target (${this.scope.join(', ') || 'none'}) — add its cgroup or process as a target`,
    );
  }

  /**
   * Set a knob to `value`. The first change journals the original durably before writing. If the knob no longer
   * holds what we last wrote, another writer owns it: it is marked overridden and left alone (status 'overridden').
   */
  set(knob: KnobRef, action: string, value: string): SetResult {
    this.checkScope(knob.path, { action, target: knob.target });
    const base = { knobId: knob.id, path: knob.path, value };
    const entry = this.journal.get(knob.id);
    if (entry?.state === 'overridden') {
      return { ...base, status: 'overridden', firstWrite: false, ...(entry.observed !== null ? { previous: entry.observed } : {}) };
    }
    const active = entry?.state === 'active' ? entry : undefined;
    const firstWrite = active === undefined;
    // Before the read whose value would be journaled: while another agent holds the knob, its value is not an original.
    if (!this.dryRun) this.claims?.claim(knob.path);
    const current = this.io.read(knob.path);
    const now = normalizeKnobValue(current);
    const event = { knobId: knob.id, path: knob.path, target: knob.target, action };

    if (active !== undefined) {
      const ours = [active.lastWritten ?? active.original, active.pending].filter((v): v is string => v !== null);
      if (!ours.map(normalizeKnobValue).includes(now)) {
        if (!this.dryRun) this.journal.markOverridden(knob.id, current);
        this.log.warn(
          { knob: knob.id, path: knob.path, observed: current, lastWritten: active.lastWritten },
          'knob was changed by another writer; it is theirs now and will not be written',
        );
        this.emit({ ...event, kind: 'overridden', observed: current });
        return { ...base, status: 'overridden', previous: current, firstWrite };
      }
      // A run that crashed after writing but before recording it: the knob holds the pending value, which is ours.
      if (!this.dryRun && active.pending !== null && normalizeKnobValue(active.pending) === now) {
        this.journal.wrote(knob.id, current);
      }
    }

    if (now === normalizeKnobValue(value)) return { ...base, status: 'unchanged', previous: current, firstWrite };

    if (this.dryRun) {
      this.log.info({ knob: knob.id, path: knob.path, from: current, to: value, dryRun: true }, 'would write knob');
      this.emit({ ...event, kind: 'dry-run', from: current, to: value });
      return { ...base, status: 'dry-run', previous: current, firstWrite };
    }

    if (firstWrite) this.journal.remember({ ...knob, action }, current);
    this.journal.intend(knob.id, value);
    try {
      this.io.write(knob.path, value);
    } catch (e) {
      // Cgroup writes are all-or-nothing: a failed write changed nothing, so a first write leaves nothing to undo.
      if (firstWrite) this.journal.markRestored(knob.id);
      else this.journal.cancelPending(knob.id);
      this.emit({ ...event, kind: 'failed', from: current, to: value, error: e instanceof Error ? e.message : String(e) });
      throw e;
    }
    // Journal what the kernel shows, not what we sent: "max" written to cpu.max reads back as "max 100000".
    let shown = value;
    try {
      shown = this.io.read(knob.path);
    } catch {
      shown = value;
    }
    this.journal.wrote(knob.id, shown);
    followKernelRewrites(this.journal, knob.path, this.io);
    this.log.info({ knob: knob.id, path: knob.path, target: knob.target, action, from: current, to: shown }, 'wrote knob');
    this.emit({ ...event, kind: 'written', from: current, to: shown });
    return { ...base, status: 'written', previous: current, firstWrite };
  }

  /**
   * Journal a knob's current value as its original without writing it, because a write to another knob is about to
   * change it (the kernel's own coupling, see kernelRewrites): a restore then puts it back like any knob of ours.
   * Nothing happens while it is already journaled, or in dry-run. A knob another writer took is theirs: writing the
   * knob that would change it is refused (ACTION_FAILED), so their value is never overwritten by the kernel on our
   * behalf.
   */
  hold(knob: KnobRef, action: string): void {
    this.checkScope(knob.path, { action, target: knob.target });
    if (this.dryRun) return;
    if (this.isOverridden(knob.id)) {
      throw new TunerError(
        'ACTION_FAILED',
        `${action} on ${knob.target}: the write would make the kernel change ${knob.path}, which another writer set to ` +
          `${this.journal.get(knob.id)?.observed ?? 'a value of theirs'} — it is theirs, so ${action} leaves this target alone`,
      );
    }
    if (this.journal.get(knob.id)?.state === 'active') return;
    this.claims?.claim(knob.path);
    this.journal.remember({ ...knob, action }, this.io.read(knob.path));
  }

  /** Put one knob's original back (if it still holds our value). Undefined when nothing of ours is journaled for it. */
  restore(knobId: string): RestoreItem | undefined {
    const entry = this.journal.get(knobId);
    if (entry === undefined || entry.state !== 'active') return undefined;
    return restoreEntry(this.journal, entry, this.log, { io: this.io, dryRun: this.dryRun, ...this.claimOpt() });
  }

  /** Restore every active knob, optionally only those `filter` accepts. */
  restoreAll(filter?: (e: JournalEntry) => boolean): RestoreReport {
    return restoreAll(this.journal, this.log, {
      io: this.io,
      dryRun: this.dryRun,
      ...this.claimOpt(),
      ...(filter !== undefined ? { filter } : {}),
    });
  }

  private claimOpt(): { claims?: KnobClaimer } {
    return this.claims !== undefined ? { claims: this.claims } : {};
  }

  /**
   * Has another writer taken this knob? Checks the live value against what we last wrote, and records the
   * override (outside dry-run) when it finds one.
   */
  isOverridden(knobId: string): boolean {
    const entry = this.journal.get(knobId);
    if (entry === undefined) return false;
    if (entry.state === 'overridden') return true;
    if (entry.state !== 'active') return false;
    let current: string;
    try {
      current = this.io.read(entry.path);
    } catch {
      return false;
    }
    const ours = [entry.lastWritten ?? entry.original, entry.pending].filter((v): v is string => v !== null);
    if (ours.map(normalizeKnobValue).includes(normalizeKnobValue(current))) return false;
    if (!this.dryRun) this.journal.markOverridden(knobId, current);
    this.log.warn({ knob: knobId, path: entry.path, observed: current }, 'knob was changed by another writer');
    this.emit({ kind: 'overridden', knobId, path: entry.path, target: entry.target, action: entry.action, observed: current });
    return true;
  }

  private emit(e: Omit<KnobEvent, 'time'>): void {
    publish(channels.knob, () => ({ ...e, time: Date.now() }) satisfies KnobEvent);
  }
}
