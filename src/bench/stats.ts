/**
 * The few statistics the benchmarks report: medians over interleaved rounds, ratios between conditions and a
 * least-squares line for cost against target count. Pure, so the numbers in a report can be checked by a unit test.
 */

/** Median of the finite values; NaN when there are none. */
export function median(xs: readonly number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Smallest and largest finite value, for whiskers; [NaN, NaN] when there are none. */
export function spread(xs: readonly number[]): [number, number] {
  const v = xs.filter(Number.isFinite);
  return v.length === 0 ? [NaN, NaN] : [Math.min(...v), Math.max(...v)];
}

/** a / b, or NaN when either is not a number or b is not positive (a ratio to nothing says nothing). */
export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN;
}

export interface LineFit {
  slope: number;
  intercept: number;
  /** Coefficient of determination; NaN when y does not vary. */
  r2: number;
  n: number;
}

/** Ordinary least squares y = slope·x + intercept over the pairs where both are finite. */
export function fitLine(xs: readonly number[], ys: readonly number[]): LineFit {
  const pts: [number, number][] = [];
  for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
    if (Number.isFinite(xs[i]) && Number.isFinite(ys[i])) pts.push([xs[i]!, ys[i]!]);
  }
  const n = pts.length;
  if (n === 0) return { slope: NaN, intercept: NaN, r2: NaN, n };
  const mx = pts.reduce((s, p) => s + p[0], 0) / n;
  const my = pts.reduce((s, p) => s + p[1], 0) / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (const [x, y] of pts) {
    sxx += (x - mx) ** 2;
    sxy += (x - mx) * (y - my);
    syy += (y - my) ** 2;
  }
  // With a single distinct x there is no slope to speak of; the mean is the best constant.
  const slope = sxx > 0 ? sxy / sxx : 0;
  const intercept = my - slope * mx;
  let sse = 0;
  for (const [x, y] of pts) sse += (y - (slope * x + intercept)) ** 2;
  return { slope, intercept, r2: syy > 0 ? 1 - sse / syy : NaN, n };
}

/** A number for a table: fixed digits, '—' for NaN/undefined. */
export function fmt(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return x.toFixed(digits);
}

/** A ratio for a table: "1.23×". */
export function fmtRatio(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '—' : `${x.toFixed(digits)}×`;
}

/** A relative change for a table: "+3.1%". */
export function fmtChange(r: number | null | undefined, digits = 1): string {
  if (r === null || r === undefined || !Number.isFinite(r)) return '—';
  const pct = (r - 1) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(digits)}%`;
}
