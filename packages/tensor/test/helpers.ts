import { fromFlat, Rng, randomNormal, type Matrix } from '../src/index.js';

/** Plain triple-loop reference for op(A)·op(B), read through get() so it shares no code with matmul. */
export function referenceMatmul(a: Matrix, b: Matrix, transposeA = false, transposeB = false): number[][] {
  const m = transposeA ? a.cols : a.rows;
  const k = transposeA ? a.rows : a.cols;
  const n = transposeB ? b.rows : b.cols;
  const out: number[][] = [];
  for (let i = 0; i < m; i++) {
    const row: number[] = [];
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        s += (transposeA ? a.get(p, i) : a.get(i, p)) * (transposeB ? b.get(j, p) : b.get(p, j));
      }
      row.push(s);
    }
    out.push(row);
  }
  return out;
}

/** Largest |x − y| over two equally shaped nested arrays. */
export function maxDiff(x: number[][], y: number[][]): number {
  let d = 0;
  for (let i = 0; i < x.length; i++) for (let j = 0; j < x[i].length; j++) d = Math.max(d, Math.abs(x[i][j] - y[i][j]));
  return d;
}

/** A seeded normal matrix. */
export function randn(rows: number, cols: number, seed: number): Matrix {
  return randomNormal(rows, cols, new Rng(seed));
}

/** A matrix from a flat list of numbers (test shorthand). */
export function m(rows: number, cols: number, values: number[]): Matrix {
  return fromFlat(rows, cols, values);
}
