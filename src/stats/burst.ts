/**
 * Burst detection for a per-tick series: is the recent level (mean of a short window) well above its own usual
 * level (an EWMA baseline)? A burst starts when the level exceeds both k × baseline and an absolute floor, and ends
 * only when it has fallen back to endK × baseline (endK < k) or to the end floor, so a level hovering near the
 * threshold does not flap between states. The floor keeps tiny absolute changes on a near-idle series (0.1 → 0.5)
 * from counting as bursts.
 */
import { TunerError } from '../core/errors.js';
import { Ewma } from './ewma.js';
import { RollingWindow } from './rolling-window.js';

export interface BurstOptions {
  /** Samples in the short window whose mean is the level. */
  window: number;
  /** EWMA factor of the baseline; small, so that the baseline is the long-run level. */
  alpha: number;
  /** A burst starts when level > k × baseline (k > 1) ... */
  k: number;
  /** ... and level > floor, in the series' units. */
  floor: number;
  /** A burst ends when level ≤ endK × baseline (1 ≤ endK ≤ k). Default: halfway between 1 and k. */
  endK?: number;
  /** ... or level ≤ endFloor (≤ floor). Default: floor. */
  endFloor?: number;
  /** Samples seen before a burst can be declared, so the baseline means something. Default: window. */
  warmup?: number;
}

export class BurstDetector {
  readonly k: number;
  readonly endK: number;
  readonly floor: number;
  readonly endFloor: number;
  readonly warmup: number;
  private readonly recent: RollingWindow;
  private readonly base: Ewma;
  private seen = 0;
  private inBurst = false;
  private burstLen = 0;

  constructor(opts: BurstOptions) {
    const bad = (what: string): never => {
      throw new TunerError('INTERNAL', `create burst detector: ${what}`);
    };
    const endK = opts.endK ?? 1 + (opts.k - 1) / 2;
    const endFloor = opts.endFloor ?? opts.floor;
    const warmup = opts.warmup ?? opts.window;
    if (!(opts.k > 1)) bad(`k must be > 1, got ${opts.k}`);
    if (!(endK >= 1 && endK <= opts.k)) bad(`endK must be in [1, k], got ${endK}`);
    if (!(opts.floor >= 0)) bad(`floor must be ≥ 0, got ${opts.floor}`);
    if (!(endFloor >= 0 && endFloor <= opts.floor)) bad(`endFloor must be in [0, floor], got ${endFloor}`);
    if (!(Number.isInteger(warmup) && warmup >= 1)) bad(`warmup must be an integer ≥ 1, got ${warmup}`);
    this.recent = new RollingWindow(opts.window);
    this.base = new Ewma(opts.alpha);
    this.k = opts.k;
    this.endK = endK;
    this.floor = opts.floor;
    this.endFloor = endFloor;
    this.warmup = warmup;
  }

  /**
   * Take one sample and return whether the series is in a burst. The level is compared with the baseline as it
   * was before this sample. While a burst lasts the baseline is frozen: letting it absorb the burst would raise
   * the bar and end the burst by itself. (A lasting shift therefore stays a burst until `reset()`.)
   * Non-finite samples are ignored.
   */
  update(x: number): boolean {
    if (!Number.isFinite(x)) return this.inBurst;
    this.recent.push(x);
    this.seen++;
    const level = this.recent.mean();
    const baseline = this.base.value;
    if (baseline === undefined || this.seen <= this.warmup) {
      this.base.update(x);
      return false;
    }
    if (this.inBurst) {
      if (level <= this.endK * baseline || level <= this.endFloor) {
        this.inBurst = false;
        this.burstLen = 0;
        this.base.update(x);
      } else {
        this.burstLen++;
      }
    } else if (level > this.k * baseline && level > this.floor) {
      this.inBurst = true;
      this.burstLen = 1;
    } else {
      this.base.update(x);
    }
    return this.inBurst;
  }

  get active(): boolean {
    return this.inBurst;
  }

  /** Samples since the current burst began (1 on its first sample); 0 outside a burst. */
  get duration(): number {
    return this.burstLen;
  }

  /** Mean of the short window; NaN before the first sample. */
  get level(): number {
    return this.recent.mean();
  }

  /** The baseline; undefined before the first sample. */
  get baseline(): number | undefined {
    return this.base.value;
  }

  reset(): void {
    this.recent.clear();
    this.base.reset();
    this.seen = 0;
    this.inBurst = false;
    this.burstLen = 0;
  }
}
