/**
 * The learner's only source of randomness: xoshiro128** seeded through splitmix32. Small, fast, with a 128-bit state
 * that fits in the model file, so a restarted agent continues the same sequence and a test can pin every draw.
 */
import { TunerError } from '../../core/errors.js';

export type PrngState = [number, number, number, number];

export class Prng {
  #s: Uint32Array;

  private constructor(state: Uint32Array) {
    this.#s = state;
  }

  /** A generator for a 32-bit seed; equal seeds give equal sequences. */
  static fromSeed(seed: number): Prng {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
      throw new TunerError('INTERNAL', `seed random generator: seed must be an integer from 0 to 2^32-1, got ${seed}`);
    }
    // splitmix32 spreads a small seed over the whole state; xoshiro must never start from all zeros.
    let x = seed >>> 0;
    const s = new Uint32Array(4);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (s[0] === 0 && s[1] === 0 && s[2] === 0 && s[3] === 0) s[0] = 1;
    return new Prng(s);
  }

  /** A generator that continues from a saved state. */
  static fromState(state: readonly number[]): Prng {
    if (state.length !== 4 || state.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffff_ffff)) {
      throw new TunerError('INTERNAL', 'restore random generator: state must be four unsigned 32-bit integers');
    }
    if (state.every((v) => v === 0)) throw new TunerError('INTERNAL', 'restore random generator: state is all zeros');
    return new Prng(Uint32Array.from(state));
  }

  state(): PrngState {
    return [this.#s[0]!, this.#s[1]!, this.#s[2]!, this.#s[3]!];
  }

  /** The next 32 random bits as an unsigned integer. */
  nextU32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2] ^= s[0]!;
    s[3] ^= s[1]!;
    s[1] ^= s[2]!;
    s[0] ^= s[3]!;
    s[2] ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  uniform(): number {
    return this.nextU32() / 4_294_967_296;
  }

  /** Standard normal by Box–Muller; one draw per call (no cached spare) so the state alone defines the sequence. */
  normal(): number {
    const u1 = 1 - this.uniform(); // (0, 1]: log(0) is never taken
    const u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
