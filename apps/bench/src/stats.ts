/** Median of a non-empty list (mean of the middle two for even lengths). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of an empty list');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Least-squares slope of log(y) against log(x): the empirical exponent of a power law y ∝ x^slope. */
export function logLogSlope(points: readonly (readonly [number, number])[]): number {
  if (points.length < 2) return Number.NaN;
  const xs = points.map(([x]) => Math.log(x));
  const ys = points.map(([, y]) => Math.log(y));
  const mx = xs.reduce((s, v) => s + v, 0) / xs.length;
  const my = ys.reduce((s, v) => s + v, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return num / den;
}

/**
 * The smallest measured length from which a method stays faster than another at every larger
 * measured length (a crossover that a single lucky timing cannot fake), or undefined if none.
 * @param speedups - [length, otherSeconds / methodSeconds] pairs, sorted by length
 */
export function crossoverLength(speedups: readonly (readonly [number, number])[]): number | undefined {
  let first = speedups.length;
  while (first > 0 && speedups[first - 1][1] > 1) first--;
  return first < speedups.length ? speedups[first][0] : undefined;
}
