/**
 * Number formatting for decision reasons. Reasons are read by people deciding whether to trust the agent, so
 * durations carry their unit and a sensible scale ("7.2 ms", not "7200").
 */

/** A duration given in microseconds, at the largest unit that keeps it ≥ 1, one decimal at most. */
export function formatUs(us: number): string {
  const abs = Math.abs(us);
  if (abs < 1_000) return `${Math.round(us)} µs`;
  if (abs < 1_000_000) return `${oneDecimal(us / 1_000)} ms`;
  return `${oneDecimal(us / 1_000_000)} s`;
}

/** A fraction as a whole percentage: 0.123 → "12%". */
export function formatPercent(fraction: number): string {
  return `${Math.round(fraction * 100)}%`;
}

/** 1 → "1st", 2 → "2nd", 11 → "11th". */
export function ordinal(n: number): string {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  switch (n % 10) {
    case 1:
      return `${n}st`;
    case 2:
      return `${n}nd`;
    case 3:
      return `${n}rd`;
    default:
      return `${n}th`;
  }
}

function oneDecimal(x: number): string {
  // Number() drops a trailing ".0" so thresholds read "4 ms" rather than "4.0 ms".
  return String(Number(x.toFixed(1)));
}
