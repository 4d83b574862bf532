/** The entries of a row-major matrix view the differences need: data, offset, stride, cols. */
export interface MatrixEntries {
  readonly data: { [index: number]: number };
  readonly offset: number;
  readonly stride: number;
  readonly cols: number;
}
/** (f(m + h·e) − f(m − h·e)) / 2h for each entry e (row-major index), in order; m is restored after each. */
export function centralDifferences(m: MatrixEntries, f: () => number, entries: readonly number[], h: number): Float64Array;
