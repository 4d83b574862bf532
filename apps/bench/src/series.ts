import type { Series } from '@almora/cli-kit';

/**
 * Named points gathered into plot series: each point joins its name's series in the order given;
 * series come in the order their names first appear.
 */
export function seriesFrom(points: Iterable<readonly [string, readonly [number, number]]>): Series[] {
  const series = new Map<string, (readonly [number, number])[]>();
  for (const [name, point] of points) series.set(name, [...(series.get(name) ?? []), point]);
  return [...series].map(([name, list]) => ({ name, points: list }));
}
