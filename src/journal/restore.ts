/**
 * Putting journaled knobs back. Run at a clean stop and at every start (for whatever a crashed run left behind).
 *
 * A knob is only written back while it still holds a value of ours. If someone else changed it since, their value
 * wins: it is left alone, logged and reported, never fought over. One bad knob never stops the others.
 */
import { channels, publish, type KnobEvent } from '../core/events.js';
import { TunerError, isTunerError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { kernelKnobIO, kernelRewrites, normalizeKnobValue, type KnobIO } from '../cgroup/cgroup.js';
import type { Journal, JournalEntry } from './journal.js';
import type { KnobClaimer } from './ownership.js';

export type RestoreOutcome = 'restored' | 'overridden' | 'vanished' | 'failed';

export interface RestoreItem {
  outcome: RestoreOutcome;
  knobId: string;
  path: string;
  target: string;
  action: string;
  original: string;
  /** The value found before restoring (absent when it could not be read). */
  observed?: string;
  /** True when the original was written; false when the knob already held it (or in dry-run). */
  wrote: boolean;
  error?: TunerError;
}

export interface RestoreReport {
  restored: RestoreItem[];
  overridden: RestoreItem[];
  vanished: RestoreItem[];
  failed: RestoreItem[];
}

export interface RestoreOptions {
  io?: KnobIO;
  /** Report what would happen; write nothing and leave the journal as it is. */
  dryRun?: boolean;
  /** Restore only the entries this accepts (e.g. one target's). */
  filter?: (e: JournalEntry) => boolean;
  /**
   * Claims the knob host-wide before it is read or written (see ownership.ts). A knob another live agent holds is
   * not ours to judge: it fails with BUSY and stays journaled for a later restore.
   */
  claims?: KnobClaimer;
}

function toTunerError(e: unknown, what: string): TunerError {
  return e instanceof TunerError ? e : new TunerError('INTERNAL', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

function emit(kind: KnobEvent['kind'], entry: JournalEntry, extra: Partial<KnobEvent> = {}): void {
  publish(channels.knob, () => ({
    kind,
    knobId: entry.knobId,
    path: entry.path,
    target: entry.target,
    action: entry.action,
    time: Date.now(),
    ...extra,
  }) satisfies KnobEvent);
}

/**
 * After a write of ours to `written`, record as ours what the kernel made of the knobs it rewrites with it (see
 * kernelRewrites): restoring cpu.idle to 0 resets cpu.weight to 100, and the journaled weight must still be put
 * back over that, not left as "changed by another writer".
 */
export function followKernelRewrites(journal: Journal, written: string, io: KnobIO = kernelKnobIO): void {
  const rewritten = kernelRewrites(written);
  if (rewritten.length === 0) return;
  for (const e of journal.active()) {
    if (!rewritten.includes(e.path)) continue;
    let now: string;
    try {
      now = io.read(e.path);
    } catch {
      continue;
    }
    if (normalizeKnobValue(now) !== normalizeKnobValue(e.lastWritten ?? e.original)) journal.wrote(e.knobId, now);
  }
}

/**
 * Restore one active entry. Never throws for the knob itself; a journal that cannot be updated does throw (JOURNAL),
 * since then nothing it reports could be trusted.
 */
export function restoreEntry(journal: Journal, entry: JournalEntry, log: Logger, opts: RestoreOptions = {}): RestoreItem {
  const io = opts.io ?? kernelKnobIO;
  const dryRun = opts.dryRun === true;
  const base = {
    knobId: entry.knobId,
    path: entry.path,
    target: entry.target,
    action: entry.action,
    original: entry.original,
  };
  const l = log.child({ knob: entry.knobId, path: entry.path, target: entry.target });

  const vanished = (observed?: string): RestoreItem => {
    if (!dryRun) journal.markVanished(entry.knobId);
    l.info('knob is gone (its cgroup was removed); nothing to restore');
    emit('vanished', entry);
    return { ...base, outcome: 'vanished', wrote: false, ...(observed !== undefined ? { observed } : {}) };
  };
  const failed = (e: unknown, observed?: string): RestoreItem => {
    const err = toTunerError(e, `restore ${entry.path}`);
    l.error({ err, code: err.code }, 'could not restore knob; it stays journaled and is retried on the next restore');
    emit('failed', entry, { error: err.message });
    return { ...base, outcome: 'failed', wrote: false, error: err, ...(observed !== undefined ? { observed } : {}) };
  };

  if (!dryRun && opts.claims !== undefined) {
    try {
      opts.claims.claim(entry.path);
    } catch (e) {
      return failed(e);
    }
  }

  let current: string;
  try {
    current = io.read(entry.path);
  } catch (e) {
    return isTunerError(e, 'CGROUP_NOT_FOUND') ? vanished() : failed(e);
  }

  const now = normalizeKnobValue(current);
  if (now === normalizeKnobValue(entry.original)) {
    if (!dryRun) journal.markRestored(entry.knobId);
    l.debug({ value: current }, 'knob already holds its original value');
    emit('restored', entry, { from: current, to: entry.original });
    return { ...base, outcome: 'restored', observed: current, wrote: false };
  }

  const ours = [entry.lastWritten, entry.pending].filter((v): v is string => v !== null).map(normalizeKnobValue);
  if (!ours.includes(now)) {
    if (!dryRun) journal.markOverridden(entry.knobId, current);
    l.warn(
      { observed: current, lastWritten: entry.lastWritten, original: entry.original },
      'knob was changed by another writer after us; leaving their value in place',
    );
    emit('overridden', entry, { observed: current });
    return { ...base, outcome: 'overridden', observed: current, wrote: false };
  }

  if (dryRun) {
    emit('dry-run', entry, { from: current, to: entry.original });
    return { ...base, outcome: 'restored', observed: current, wrote: false };
  }
  try {
    io.write(entry.path, entry.original);
  } catch (e) {
    return isTunerError(e, 'CGROUP_NOT_FOUND') ? vanished(current) : failed(e, current);
  }
  journal.markRestored(entry.knobId);
  followKernelRewrites(journal, entry.path, io);
  l.info({ from: current, to: entry.original }, 'restored knob');
  emit('restored', entry, { from: current, to: entry.original });
  return { ...base, outcome: 'restored', observed: current, wrote: true };
}

/**
 * Restore every active entry, newest first (undoing changes in the reverse order they were made). Each entry is
 * read again just before its turn: restoring one knob can change what the journal knows of another (see
 * followKernelRewrites).
 */
export function restoreAll(journal: Journal, log: Logger, opts: RestoreOptions = {}): RestoreReport {
  const report: RestoreReport = { restored: [], overridden: [], vanished: [], failed: [] };
  const entries = journal.active().filter(opts.filter ?? (() => true)).reverse();
  for (const listed of entries) {
    const entry = journal.get(listed.knobId);
    if (entry?.state !== 'active') continue;
    const item = restoreEntry(journal, entry, log, opts);
    report[item.outcome].push(item);
  }
  if (entries.length > 0) {
    log.info(
      {
        restored: report.restored.length,
        overridden: report.overridden.length,
        vanished: report.vanished.length,
        failed: report.failed.length,
        dryRun: opts.dryRun === true,
      },
      'restore finished',
    );
  }
  return report;
}
