/**
 * Wilcoxon–Mann–Whitney rank test of a shift between two small samples, with the Hodges–Lehmann estimate of the
 * shift and its distribution-free confidence bounds. The closed loop judges each change by it: per-tick latencies
 * are skewed and spiky, so a test on ranks (no normality assumed) is the one that holds at 5–20 ticks a side.
 *
 * Exact null distribution (ties handled by mid-ranks) while both samples together have at most EXACT_MAX values;
 * beyond that the normal approximation with tie and continuity corrections, which is accurate there.
 */

/** Largest combined sample size for the exact distribution (the dynamic program is O(N² · n)). */
const EXACT_MAX = 60;

export interface RankShift {
  /** One-sided p-value of "x tends to be larger than y" against "no difference". */
  pValue: number;
  /** Hodges–Lehmann estimate of the shift x − y: the median of every pairwise difference. */
  shift: number;
  /** Lower confidence bound of the shift at 1 − alpha; -Infinity when the samples are too small to bound it. */
  low: number;
  /** Upper confidence bound of the shift at 1 − alpha; Infinity when the samples are too small to bound it. */
  high: number;
}

/**
 * Tests whether the values in `x` tend to be larger than those in `y`. `alpha` sets the confidence bounds: each is
 * one-sided at 1 − alpha, so together they form a two-sided interval at 1 − 2·alpha, and `low > 0` exactly when the
 * test rejects at `alpha` (without ties).
 */
export function rankShift(x: readonly number[], y: readonly number[], alpha: number): RankShift {
  const n = x.length;
  const m = y.length;
  if (n === 0 || m === 0) throw new RangeError('rankShift: both samples need at least one value');
  if (!(alpha > 0 && alpha < 0.5)) throw new RangeError(`rankShift: alpha must be in (0, 0.5), got ${alpha}`);

  const diffs = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) diffs[i * m + j] = x[i]! - y[j]!;
  diffs.sort();
  const k = diffs.length;
  const shift = k % 2 === 1 ? diffs[k >> 1]! : (diffs[k / 2 - 1]! + diffs[k / 2]!) / 2;

  // Confidence bounds by inverting the untied test: u = the smallest U whose upper tail is at most alpha.
  const u = criticalU(n, m, alpha);
  const low = u === undefined ? -Infinity : diffs[k - u]!;
  const high = u === undefined ? Infinity : diffs[u - 1]!;

  return { pValue: upperTail(x, y), shift, low, high };
}

/** P(S ≥ observed) for the rank sum S of `x` among x ∪ y, mid-ranks for ties. */
function upperTail(x: readonly number[], y: readonly number[]): number {
  const all = [...x.map((v) => ({ v, inX: true })), ...y.map((v) => ({ v, inX: false }))].sort((a, b) => a.v - b.v);
  const N = all.length;
  // Doubled mid-ranks are integers: tied values at positions i..j (1-based) all get i + j.
  const ranks2 = new Array<number>(N);
  let tieTerm = 0;
  for (let i = 0; i < N; ) {
    let j = i;
    while (j + 1 < N && all[j + 1]!.v === all[i]!.v) j++;
    for (let t = i; t <= j; t++) ranks2[t] = i + 1 + (j + 1);
    const size = j - i + 1;
    tieTerm += size ** 3 - size;
    i = j + 1;
  }
  let observed2 = 0;
  for (let i = 0; i < N; i++) if (all[i]!.inX) observed2 += ranks2[i]!;
  const n = x.length;
  if (N <= EXACT_MAX) return exactUpperTail(ranks2, n, observed2);

  const m = N - n;
  const mean = (n * (N + 1)) / 2;
  const variance = ((n * m) / 12) * (N + 1 - tieTerm / (N * (N - 1)));
  if (variance <= 0) return 1; // every value tied: no evidence either way
  const z = (observed2 / 2 - mean - 0.5) / Math.sqrt(variance);
  return 1 - normalCdf(z);
}

/** Exact P(sum of n of the doubled ranks ≥ observed2) over every equally likely choice of n of them. */
function exactUpperTail(ranks2: readonly number[], n: number, observed2: number): number {
  const total = ranks2.reduce((a, b) => a + b, 0);
  // ways[c][s]: choices of c ranks (among those seen so far) with doubled sum s. Float64: counts reach C(60, 30).
  const ways = Array.from({ length: n + 1 }, () => new Float64Array(total + 1));
  ways[0]![0] = 1;
  let reach = 0;
  for (const r of ranks2) {
    reach += r;
    for (let c = n; c >= 1; c--) {
      const row = ways[c]!;
      const prev = ways[c - 1]!;
      for (let s = reach; s >= r; s--) row[s]! += prev[s - r]!;
    }
  }
  const last = ways[n]!;
  let all = 0;
  let tail = 0;
  for (let s = 0; s <= total; s++) {
    all += last[s]!;
    if (s >= observed2) tail += last[s]!;
  }
  return tail / all;
}

/** Smallest u with P(U ≥ u) ≤ alpha for the untied Mann–Whitney U of samples of n and m; undefined when none. */
function criticalU(n: number, m: number, alpha: number): number | undefined {
  const N = n + m;
  if (N > EXACT_MAX) {
    const z = normalQuantile(1 - alpha);
    const u = Math.ceil((n * m) / 2 + z * Math.sqrt((n * m * (N + 1)) / 12) + 0.5);
    return u <= n * m ? u : undefined;
  }
  // Distribution of U by the classic recursion on (n, m), as counts over u = 0..n·m.
  let prevRow: Float64Array[] = [];
  for (let a = 0; a <= n; a++) {
    const row: Float64Array[] = [];
    for (let b = 0; b <= m; b++) {
      const f = new Float64Array(a * b + 1);
      if (a === 0 || b === 0) f[0] = 1;
      else {
        // The largest value is in x (adds b to U) or in y (adds nothing).
        const withX = prevRow[b]!;
        const withY = row[b - 1]!;
        for (let u = 0; u < withY.length; u++) f[u]! += withY[u]!;
        for (let u = 0; u < withX.length; u++) f[u + b]! += withX[u]!;
      }
      row.push(f);
    }
    prevRow = row;
  }
  const dist = prevRow[m]!;
  const all = dist.reduce((s, v) => s + v, 0);
  let tail = 0;
  for (let u = n * m; u >= 0; u--) {
    tail += dist[u]!;
    if (tail / all > alpha) return u + 1 <= n * m ? u + 1 : undefined;
  }
  return undefined;
}

/** Standard normal CDF (Zelen & Severo 26.2.17, absolute error below 7.5e-8). */
export function normalCdf(z: number): number {
  const t = 1 / (1 + 0.2316419 * Math.abs(z));
  const d = 0.3989422804014327 * Math.exp((-z * z) / 2);
  const p = d * t * (0.31938153 + t * (-0.356563782 + t * (1.781477937 + t * (-1.821255978 + t * 1.330274429))));
  return z >= 0 ? 1 - p : p;
}

function normalQuantile(p: number): number {
  let lo = -10;
  let hi = 10;
  for (let i = 0; i < 80; i++) {
    const mid = (lo + hi) / 2;
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
