/**
 * One arm of the contextual bandit: Bayesian linear regression of reward on the context vector. Weights have a
 * prior θ ~ N(0, τ²I) in reward units; noise is Gaussian with a variance σ² estimated from the arm's own residuals
 * (shrunk toward a prior guess while evidence is thin). Given the sufficient statistics G = Σ xxᵀ and m = Σ r·x,
 * the posterior is N(μ, σ²A⁻¹) with A = (σ²/τ²)I + G and μ = A⁻¹m: updates cost O(d²), an estimate one d×d
 * Cholesky factorisation (d is about 14), cached until the next update.
 *
 * Keeping the weight prior in reward units, apart from the noise, is what makes extrapolation honest: in a kind of
 * situation an arm has never been tried in, its uncertainty stays near τ however precisely the arm is known
 * elsewhere, so Thompson sampling keeps trying it there.
 */
import { TunerError } from '../../core/errors.js';

export interface ArmState {
  /** Outcomes learned from. */
  n: number;
  /** G = Σ xxᵀ, row-major, d×d. */
  gram: number[];
  /** m = Σ r·x. */
  moment: number[];
  rewardSum: number;
  rewardSqSum: number;
  lastReward: number | null;
  /** Current estimate of the reward noise variance σ². */
  noiseVar: number;
}

export interface Estimate {
  /** Posterior mean of the reward in this context. */
  mean: number;
  /** Posterior standard deviation of that mean. */
  sd: number;
}

export interface ArmPrior {
  /** Prior standard deviation of each weight, in reward units. */
  weightSd: number;
  /** Prior guess of the noise standard deviation, in reward units. */
  noiseSd: number;
}

/** How strongly the noise estimate leans on its prior guess: worth this many degrees of freedom. */
const NOISE_PRIOR_DOF = 4;

export function freshArm(d: number, prior: ArmPrior): ArmState {
  return {
    n: 0,
    gram: new Array<number>(d * d).fill(0),
    moment: new Array<number>(d).fill(0),
    rewardSum: 0,
    rewardSqSum: 0,
    lastReward: null,
    noiseVar: prior.noiseSd ** 2,
  };
}

export class BayesLinearArm {
  readonly d: number;
  readonly #s: ArmState;
  readonly #prior: ArmPrior;
  #chol: Float64Array | undefined;
  #mu: Float64Array | undefined;

  constructor(d: number, state: ArmState, prior: ArmPrior) {
    if (state.gram.length !== d * d || state.moment.length !== d) {
      throw new TunerError('INTERNAL', `create bandit arm: state is for another dimension than ${d}`);
    }
    if (!(prior.weightSd > 0) || !(prior.noiseSd > 0)) {
      throw new TunerError('INTERNAL', 'create bandit arm: prior standard deviations must be positive');
    }
    this.d = d;
    this.#s = state;
    this.#prior = prior;
  }

  /** The live state (the model file serialises it as is). */
  get state(): ArmState {
    return this.#s;
  }

  noiseSd(): number {
    return Math.sqrt(this.#s.noiseVar);
  }

  estimate(x: ArrayLike<number>): Estimate {
    this.#check(x);
    const mu = this.#mean();
    let mean = 0;
    for (let i = 0; i < this.d; i++) mean += mu[i]! * x[i]!;
    // xᵀA⁻¹x = |L⁻¹x|², one forward substitution.
    const y = forward(this.#factor(), this.d, x);
    let q = 0;
    for (let i = 0; i < this.d; i++) q += y[i]! * y[i]!;
    return { mean, sd: Math.sqrt(this.#s.noiseVar * q) };
  }

  /** Learn one outcome: reward r observed after acting in context x. */
  update(x: ArrayLike<number>, r: number): void {
    this.#check(x);
    if (!Number.isFinite(r)) throw new TunerError('INTERNAL', `update bandit arm: reward must be finite, got ${r}`);
    const s = this.#s;
    const d = this.d;
    for (let i = 0; i < d; i++) {
      const xi = x[i]!;
      if (xi === 0) continue;
      s.moment[i] += r * xi;
      for (let j = 0; j < d; j++) s.gram[i * d + j] += xi * x[j]!;
    }
    s.n++;
    s.rewardSum += r;
    s.rewardSqSum += r * r;
    s.lastReward = r;
    this.#invalidate();
    // Residuals of the refitted weights: Σ(r − μᵀx)² = Σr² − 2μᵀm + μᵀGμ. While the fit can still be exact, the
    // prior guess carries the estimate.
    const mu = this.#mean();
    let muM = 0;
    let muGmu = 0;
    for (let i = 0; i < d; i++) {
      muM += mu[i]! * s.moment[i]!;
      let g = 0;
      for (let j = 0; j < d; j++) g += s.gram[i * d + j]! * mu[j]!;
      muGmu += mu[i]! * g;
    }
    const sse = Math.max(0, s.rewardSqSum - 2 * muM + muGmu);
    // Degrees of freedom left after the fit: n minus the effective number of weights, trace(A⁻¹G) = d − λ·trace(A⁻¹).
    // An arm tried only in one kind of situation has fitted about one weight, not d.
    const L = this.#factor();
    let traceInv = 0;
    const e = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      e.fill(0);
      e[i] = 1;
      const col = forward(L, d, e);
      for (let k = 0; k < d; k++) traceInv += col[k]! * col[k]!;
    }
    const lambda = s.noiseVar / this.#prior.weightSd ** 2;
    const dof = Math.max(0, s.n - (d - lambda * traceInv));
    s.noiseVar = (NOISE_PRIOR_DOF * this.#prior.noiseSd ** 2 + sse) / (NOISE_PRIOR_DOF + dof);
    this.#invalidate();
  }

  /** Posterior mean of the weights, one per feature. */
  weights(): number[] {
    return Array.from(this.#mean());
  }

  #invalidate(): void {
    this.#chol = undefined;
    this.#mu = undefined;
  }

  #mean(): Float64Array {
    if (this.#mu === undefined) {
      const L = this.#factor();
      this.#mu = backward(L, this.d, forward(L, this.d, this.#s.moment));
    }
    return this.#mu;
  }

  #factor(): Float64Array {
    if (this.#chol === undefined) {
      const d = this.d;
      const lambda = this.#s.noiseVar / this.#prior.weightSd ** 2;
      const a = this.#s.gram.slice();
      for (let i = 0; i < d; i++) a[i * d + i] += lambda;
      this.#chol = cholesky(a, d);
    }
    return this.#chol;
  }

  #check(x: ArrayLike<number>): void {
    if (x.length !== this.d) throw new TunerError('INTERNAL', `bandit arm: context has ${x.length} features, expected ${this.d}`);
  }
}

/** Lower-triangular L with A = LLᵀ; A must be symmetric positive definite (the ridge term guarantees it). */
export function cholesky(a: ArrayLike<number>, d: number): Float64Array {
  const L = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = a[i * d + j]!;
      for (let k = 0; k < j; k++) sum -= L[i * d + k]! * L[j * d + k]!;
      if (i === j) {
        if (!(sum > 0)) throw new TunerError('INTERNAL', 'factor bandit precision: matrix is not positive definite');
        L[i * d + i] = Math.sqrt(sum);
      } else {
        L[i * d + j] = sum / L[j * d + j]!;
      }
    }
  }
  return L;
}

/** Solves L y = b. */
function forward(L: Float64Array, d: number, b: ArrayLike<number>): Float64Array {
  const y = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let sum = b[i]!;
    for (let k = 0; k < i; k++) sum -= L[i * d + k]! * y[k]!;
    y[i] = sum / L[i * d + i]!;
  }
  return y;
}

/** Solves Lᵀ x = y. */
function backward(L: Float64Array, d: number, y: ArrayLike<number>): Float64Array {
  const x = new Float64Array(d);
  for (let i = d - 1; i >= 0; i--) {
    let sum = y[i]!;
    for (let k = i + 1; k < d; k++) sum -= L[k * d + i]! * x[k]!;
    x[i] = sum / L[i * d + i]!;
  }
  return x;
}
