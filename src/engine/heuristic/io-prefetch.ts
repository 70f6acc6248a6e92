/**
 * The default rule for io_prefetch ("sequential read streams"): when a target keeps reading a device sequentially
 * in small requests, raise that device's read-ahead so the kernel fetches bigger pieces ahead of the reader, and put
 * it back once the target has stopped streaming.
 *
 *   - stream: at least `minIosPerS` requests per second, of which at least `seqRatioThreshold` are sequential;
 *   - hot: a stream whose mean request is at most `maxRequestKb` — for `triggerTicks` ticks → raise to `readAheadKb`;
 *   - calm: no stream at all for `calmTicks` ticks → restore.
 * A stream with large requests is neither: that is what a raised read-ahead turns small reads into, so it must not
 * count as the pattern having ended (the rule would undo its own fix and flap).
 *
 * The rule only ever raises, and only when it knows the device's current value (the action reads the target's main
 * device; a stream on a different device is left alone rather than risk lowering a value someone set higher).
 * Stateless, like every rule here: streaks come from the history. The blkio signal supplies
 * `targets[name].blkio.{seqRatio, ios, readBytes, devices: [{ dev: "maj:min", ... }]}` per window.
 */
import type { IoPrefetchPolicy } from '../../config/types.js';
import type { TickSnapshot } from '../../core/types.js';
import { restoreNudge, type DecideInput, type Strategy, type StrategyNudge, type StrategyTarget } from '../strategy.js';
import { cmp, recallNothing, recallSignal, streak } from './common.js';

export const IO_PREFETCH_RULE = 'io-prefetch';
/** The action this rule drives; its knob is `readAheadKb` of the device `major:minor`. */
export const IO_PREFETCH_ACTION = 'io_prefetch';

/** The part of the blkio signal this rule reads. */
export interface BlkioView {
  /** Fraction of requests that started where the previous one ended, 0..1. */
  seqRatio: number;
  /** Requests in the window. */
  ios: number;
  /** Bytes read in the window. */
  readBytes: number;
  devices: { dev: string; major: number; minor: number; readBytes?: number; ios?: number }[];
}

function num(o: Record<string, unknown>, k: string): number | undefined {
  const v = o[k];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** The target's blkio block, or undefined when it is absent or malformed. */
export function blkioOf(snapshot: TickSnapshot, name: string): BlkioView | undefined {
  const b = snapshot.targets[name]?.blkio;
  // A recording made by another version may hold anything here: every field is checked.
  if (typeof b !== 'object' || b === null) return undefined;
  const o: Record<string, unknown> = { ...b };
  const seqRatio = num(o, 'seqRatio');
  const ios = num(o, 'ios');
  const readBytes = num(o, 'readBytes');
  if (seqRatio === undefined || ios === undefined || readBytes === undefined) return undefined;
  const devices: BlkioView['devices'] = [];
  for (const d of Array.isArray(o.devices) ? (o.devices as unknown[]) : []) {
    if (typeof d !== 'object' || d === null) continue;
    const dv: Record<string, unknown> = { ...d };
    const major = num(dv, 'major');
    const minor = num(dv, 'minor');
    if (typeof dv.dev !== 'string' || major === undefined || minor === undefined) continue;
    const entry: BlkioView['devices'][number] = { dev: dv.dev, major, minor };
    const rb = num(dv, 'readBytes');
    const n = num(dv, 'ios');
    if (rb !== undefined) entry.readBytes = rb;
    if (n !== undefined) entry.ios = n;
    devices.push(entry);
  }
  return { seqRatio, ios, readBytes, devices };
}

/** The device carrying most of the reads (by bytes, then requests, then the order the signal gave). */
export function mainDevice(b: BlkioView): BlkioView['devices'][number] | undefined {
  let best: BlkioView['devices'][number] | undefined;
  for (const d of b.devices) {
    if (best === undefined || (d.readBytes ?? 0) > (best.readBytes ?? 0) || ((d.readBytes ?? 0) === (best.readBytes ?? 0) && (d.ios ?? 0) > (best.ios ?? 0))) {
      best = d;
    }
  }
  return best;
}

type Policy = Pick<IoPrefetchPolicy, 'seqRatioThreshold' | 'maxRequestKb' | 'minIosPerS'>;

/** A sequential stream of any request size. */
export function isStream(b: BlkioView | undefined, windowMs: number, p: Policy): boolean {
  if (b === undefined || windowMs <= 0) return false;
  return b.ios / (windowMs / 1000) >= p.minIosPerS && b.seqRatio >= p.seqRatioThreshold;
}

/** A sequential stream of small reads: what read-ahead helps. */
export function isSmallStream(b: BlkioView | undefined, windowMs: number, p: Policy): boolean {
  return isStream(b, windowMs, p) && b!.readBytes > 0 && b!.readBytes / b!.ios <= p.maxRequestKb * 1024;
}

function fmtKb(bytes: number): string {
  const kb = bytes / 1024;
  return `${String(Number(kb.toFixed(kb < 10 ? 1 : 0)))} KiB`;
}

export class IoPrefetchRule implements Strategy {
  readonly name = IO_PREFETCH_RULE;
  readonly historyTicks: number;
  readonly #policy: IoPrefetchPolicy;

  constructor(policy: IoPrefetchPolicy) {
    this.#policy = policy;
    this.historyTicks = Math.max(policy.triggerTicks, policy.calmTicks) - 1;
  }

  /**
   * Streaks look back at each target's block I/O only, and only where it streamed: both streaks read a past tick
   * through isStream alone (a small stream is a stream; a calm tick is one without), so a target left out of a past
   * tick reads exactly as one that did not stream in it. Most targets stream in no tick, and are kept in none.
   */
  recall(snapshot: TickSnapshot): TickSnapshot {
    if (!this.#policy.enabled) return recallNothing(snapshot);
    return recallSignal(snapshot, 'blkio', (t) => isStream(blkioOf(snapshot, t.name), snapshot.windowMs, this.#policy));
  }

  decide(input: DecideInput): StrategyNudge[] {
    const p = this.#policy;
    if (!p.enabled) return [];
    const out: StrategyNudge[] = [];
    for (const t of [...input.targets].sort((a, b) => cmp(a.name, b.name))) {
      const small = (s: TickSnapshot): boolean => isSmallStream(blkioOf(s, t.name), s.windowMs, p);
      const hotTicks = streak(input, p.triggerTicks, small);
      if (hotTicks >= p.triggerTicks) {
        const n = this.#raise(input, t, hotTicks);
        if (n !== undefined) out.push(n);
        continue;
      }
      if (!input.changed(t.name, IO_PREFETCH_ACTION)) continue;
      const calmTicks = streak(input, p.calmTicks, (s) => !isStream(blkioOf(s, t.name), s.windowMs, p));
      if (calmTicks >= p.calmTicks) out.push(this.#restore(input, t, calmTicks));
    }
    return out;
  }

  #raise(input: DecideInput, t: StrategyTarget, hotTicks: number): StrategyNudge | undefined {
    const p = this.#policy;
    const b = blkioOf(input.snapshot, t.name)!;
    const dev = mainDevice(b);
    if (dev === undefined) return undefined;
    const cur = input.current(t.name, IO_PREFETCH_ACTION);
    // Only a value read from this very device tells whether raising it is a raise.
    if (cur === undefined || cur.major !== dev.major || cur.minor !== dev.minor) return undefined;
    const from = cur.readAheadKb;
    if (from === undefined || !Number.isFinite(from) || from >= p.readAheadKb) return undefined;

    const windowS = input.snapshot.windowMs / 1000;
    const iosPerS = b.ios / windowS;
    const meanBytes = b.readBytes / b.ios;
    const desired: Record<string, number> = { readAheadKb: p.readAheadKb, major: dev.major, minor: dev.minor };
    if (p.prefetchMb > 0) desired.prefetchMb = p.prefetchMb;
    return {
      kind: 'set',
      action: IO_PREFETCH_ACTION,
      target: t.name,
      desired,
      reason:
        `${t.name} reads ${dev.dev} sequentially (${Math.round(b.seqRatio * 100)}% sequential, ${Math.round(iosPerS)} requests/s) ` +
        `in small requests (mean ${fmtKb(meanBytes)} ≤ ${p.maxRequestKb} KiB) for ${hotTicks} ticks; ` +
        `read_ahead_kb of ${dev.dev} ${from} → ${p.readAheadKb}` +
        (p.prefetchMb > 0 ? `, pre-reading up to ${p.prefetchMb} MiB of the files it streams` : ''),
      rule: IO_PREFETCH_RULE,
      evidence: {
        seqRatio: b.seqRatio,
        iosPerS,
        meanRequestBytes: meanBytes,
        readBytesPerS: b.readBytes / windowS,
        hotTicks,
        major: dev.major,
        minor: dev.minor,
        fromKb: from,
        toKb: p.readAheadKb,
      },
      expected: `${t.name} reads the same data in fewer, larger requests`,
      // Read-ahead turns many small requests into few large ones; fewer requests for the same stream is its effect.
      objective: { targets: [t.name], metric: 'blkio.ios', better: 'lower', baselineTicks: this.#policy.triggerTicks },
    };
  }

  #restore(input: DecideInput, t: StrategyTarget, calmTicks: number): StrategyNudge {
    const cur = input.current(t.name, IO_PREFETCH_ACTION);
    const evidence: Record<string, number> = { calmTicks };
    if (cur?.readAheadKb !== undefined) evidence.fromKb = cur.readAheadKb;
    // The action puts back every read-ahead it changed for the target, from its journal.
    return restoreNudge({
      action: IO_PREFETCH_ACTION,
      target: t.name,
      reason: `${t.name} has not streamed sequential reads for ${calmTicks} ticks; restoring the read-ahead it was given`,
      rule: IO_PREFETCH_RULE,
      evidence,
      expected: `the device's read-ahead is back at its original value`,
    });
  }
}

