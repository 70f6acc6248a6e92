/**
 * io_prefetch: raises a block device's read-ahead (`/sys/block/<disk>/queue/read_ahead_kb`) for a target that reads
 * it sequentially in small requests, and puts it back when told to; optionally pre-reads, within a byte budget, the
 * files the target is streaming through. Desired state is `{ readAheadKb, major, minor, prefetchMb? }`: the device
 * is named by its numbers, and a partition resolves to its disk, which owns the queue.
 *
 * The knob lies outside every cgroup and is shared by everything on the device. The action may write it only for a
 * target whose processes have that device open (directly or under a file they have open), or whose read-ahead it
 * already changed: it declares exactly those knobs to the KnobWriter, which refuses every other file — and every
 * file of a disk not listed in the config's `devices`, whatever was declared. A raised
 * device counts as the change of the target that raised it, so only that target's revert puts it back.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { publish } from '../../core/events.js';
import { TunerError } from '../../core/errors.js';
import type { KnobRef, Target } from '../../core/types.js';
import { kernelKnobIO, normalizeKnobValue, type KnobIO } from '../../cgroup/cgroup.js';
import { applyPlan, desiredNumber, revertKnobs, type Action, type ActionPlan, type ApplyResult, type Desired } from '../action.js';
import type { KnobWriter } from '../knob-writer.js';
import type { RestoreItem } from '../../journal/restore.js';
import { EvidenceScanner, parseDev, resolveDisk, type BlockDisk, type Evidence, type Stream } from './evidence.js';
import { fadvisePrefetch, type PrefetchResult, type Prefetcher } from './prefetch.js';

export const IO_PREFETCH_ACTION = 'io_prefetch';
const NAME = IO_PREFETCH_ACTION;

/** read_ahead_kb the action writes at most; beyond a few MB read-ahead only evicts other pages. */
export const READ_AHEAD_KB = { min: 0, max: 65_536 } as const;
/** Pre-read budget per apply, MB. */
export const PREFETCH_MAX_MB = 1024;
/**
 * How long one look at a target's descriptors is reused. The agent asks for knobs, the current value and a plan
 * within one tick; they share one scan instead of walking /proc three times.
 */
export const EVIDENCE_TTL_MS = 250;

/** Payload of `tuner:actions:prefetch`. */
export interface PrefetchEvent extends PrefetchResult {
  target: string;
  time: number;
}

export const prefetchChannel = diagnostics_channel.channel('tuner:actions:prefetch');

export interface IoPrefetchOptions {
  io?: KnobIO;
  /** Where "major:minor" links to devices live; default /sys/dev/block. */
  sysDevBlock?: string;
  /** Default /proc. */
  procRoot?: string;
  /** How a target's devices and streams are found; default: from its processes' descriptors in /proc. */
  evidence?: (target: Target) => Evidence;
  prefetch?: Prefetcher;
}

interface Planned {
  allowed: string[];
  disk: BlockDisk;
  streams: Stream[];
  prefetchBytes: number;
}

export function createIoPrefetchAction(opts: IoPrefetchOptions = {}): Action {
  const io = opts.io ?? kernelKnobIO;
  const sysDevBlock = opts.sysDevBlock ?? '/sys/dev/block';
  const scanner = new EvidenceScanner(opts.procRoot);
  const scan = opts.evidence ?? ((t: Target) => scanner.scan(t));
  const cache = new Map<string, { at: number; ev: Evidence }>();
  const evidenceOf = (t: Target): Evidence => {
    const now = performance.now();
    const key = `${t.name}\0${t.scope.kind === 'cgroup' ? t.scope.path : t.scope.pids.join(',')}`;
    const hit = cache.get(key);
    if (hit !== undefined && now - hit.at < EVIDENCE_TTL_MS) return hit.ev;
    const ev = scan(t);
    cache.set(key, { at: now, ev });
    return ev;
  };
  const prefetch = opts.prefetch ?? fadvisePrefetch;
  /** Per target: disks whose read-ahead this action wrote, newest last. Kept so revert finds them after the target's processes are gone. */
  const changed = new Map<string, BlockDisk[]>();
  const planned = new WeakMap<ActionPlan, Planned>();
  /**
   * Per target: the disk `read` last reported. Once a reader has exited and its change is reverted, nothing else
   * names the device, yet the value right after the revert must still be readable (the agent reads it to record
   * what the revert did).
   */
  const lastSeen = new Map<string, BlockDisk>();

  /**
   * The target's disks: those it changed (newest first), then those it has open, deduplicated by knob. With
   * `mine`, a disk another target changed is left out: a device is shared, and only the target whose stream raised
   * its read-ahead may count it as its own change (and restore it), or a calm neighbour on the same disk would undo
   * the raise while the stream still runs.
   */
  const disksOf = (target: Target, ev: Evidence, mine: boolean): BlockDisk[] => {
    const out = new Map<string, BlockDisk>();
    for (const d of [...(changed.get(target.name) ?? [])].reverse()) out.set(d.knob, d);
    const theirs = new Set<string>();
    if (mine) for (const [t, list] of changed) if (t !== target.name) for (const d of list) theirs.add(d.knob);
    for (const dev of ev.devices) {
      const d = resolveDisk(dev, sysDevBlock);
      if (d !== undefined && !out.has(d.knob) && !theirs.has(d.knob)) out.set(d.knob, d);
    }
    return [...out.values()];
  };

  const ref = (target: Target, d: BlockDisk): KnobRef => ({ id: `${NAME}:${d.knob}`, path: d.knob, target: target.name });

  const readKb = (d: BlockDisk): { raw: string; kb: number } => {
    const raw = io.read(d.knob);
    const kb = Number(normalizeKnobValue(raw));
    if (!Number.isSafeInteger(kb)) throw new TunerError('ACTION_FAILED', `read ${d.knob}: expected an integer, found ${JSON.stringify(raw)}`);
    return { raw, kb };
  };

  const units = (d: BlockDisk, kb: number): Record<string, number> => {
    const { major, minor } = parseDev(d.dev) ?? { major: -1, minor: -1 };
    return { readAheadKb: kb, major, minor };
  };

  const primary = (target: Target, ev: Evidence, verb: string): BlockDisk => {
    const d = disksOf(target, ev, true)[0] ?? lastSeen.get(target.name);
    if (d !== undefined) lastSeen.set(target.name, d);
    if (d === undefined) {
      throw new TunerError(
        'ACTION_FAILED',
        `${verb} ${NAME} for target ${target.name}: none of its processes has a block device open, directly or under an open file`,
      );
    }
    return d;
  };

  const knobs = (target: Target): KnobRef[] => disksOf(target, evidenceOf(target), true).map((d) => ref(target, d));

  return {
    name: NAME,
    // read_ahead_kb up to 16 MiB; major and minor only name the device (12 and 20 bits), prefetchMb is a byte budget.
    bounds: {
      readAheadKb: { min: 0, max: 16_384 },
      major: { min: 0, max: 4095 },
      minor: { min: 0, max: 1_048_575 },
      prefetchMb: { min: 0, max: 1024 },
    },

    knobs,

    /** The target's main disk: the one read-ahead was last changed on, else the first it has open, else the last one read. */
    read(target: Target): Record<string, number> {
      const d = primary(target, evidenceOf(target), 'read');
      return units(d, readKb(d).kb);
    },

    plan(target: Target, desired: Desired): ActionPlan {
      const asked = desiredNumber(NAME, target, desired, 'readAheadKb');
      const ev = evidenceOf(target);
      let disk: BlockDisk;
      if (typeof desired.major === 'number' && typeof desired.minor === 'number') {
        const dev = `${desired.major}:${desired.minor}`;
        const d = resolveDisk(dev, sysDevBlock);
        if (d === undefined) {
          throw new TunerError(
            'ACTION_FAILED',
            `plan ${NAME} for target ${target.name}: block device ${dev} has no queue/read_ahead_kb under ${sysDevBlock} — it may have been removed`,
          );
        }
        disk = d;
      } else {
        disk = primary(target, ev, 'plan');
      }
      const notes: string[] = [];
      const kb = Math.min(READ_AHEAD_KB.max, Math.max(READ_AHEAD_KB.min, Math.round(asked)));
      if (kb !== asked) notes.push(`read_ahead_kb ${asked} adjusted to ${kb} (integers ${READ_AHEAD_KB.min}..${READ_AHEAD_KB.max})`);
      let prefetchBytes = 0;
      const out: Desired = units(disk, kb);
      if (typeof desired.prefetchMb === 'number' && Number.isFinite(desired.prefetchMb) && desired.prefetchMb > 0) {
        const mb = Math.min(PREFETCH_MAX_MB, desired.prefetchMb);
        if (mb !== desired.prefetchMb) notes.push(`prefetchMb ${desired.prefetchMb} capped at ${PREFETCH_MAX_MB}`);
        prefetchBytes = Math.floor(mb * 1024 * 1024);
        out.prefetchMb = mb;
      }
      const { raw } = readKb(disk);
      const to = String(kb);
      const plan: ActionPlan = {
        action: NAME,
        target: target.name,
        desired: out,
        changes: normalizeKnobValue(raw) === to ? [] : [{ knob: ref(target, disk), from: raw, to }],
        notes,
      };
      planned.set(plan, { allowed: disksOf(target, ev, false).map((d) => d.knob), disk, streams: ev.streams, prefetchBytes });
      return plan;
    },

    apply(plan: ActionPlan, writer: KnobWriter): ApplyResult {
      const p = planned.get(plan);
      if (p !== undefined) writer.allowOutside(NAME, plan.target, p.allowed);
      const res = applyPlan(plan, writer);
      if (p === undefined || writer.dryRun || res.overridden) return res;
      if (res.changed) {
        const list = (changed.get(plan.target) ?? []).filter((d) => d.knob !== p.disk.knob);
        list.push(p.disk);
        changed.set(plan.target, list);
      }
      if (p.prefetchBytes > 0 && p.streams.length > 0) {
        const r = prefetch(p.streams, p.prefetchBytes);
        publish(prefetchChannel, () => ({ target: plan.target, ...r, time: Date.now() }) satisfies PrefetchEvent);
      }
      return res;
    },

    revert(target: Target, writer: KnobWriter): RestoreItem[] {
      const out = revertKnobs(knobs(target), writer);
      if (!writer.dryRun) changed.delete(target.name);
      return out;
    },
  };
}

export const ioPrefetch: Action = createIoPrefetchAction();
