import { NonFiniteError, ShapeError } from './errors.js';
import { zeros } from './create.js';
import type { FloatArray, Matrix } from './matrix.js';
import { assertSameShape } from './validate.js';

/** Applies `fn` to every element of `m`, returning a fresh matrix of the same shape and dtype. */
export function map(m: Matrix, fn: (value: number, row: number, col: number) => number): Matrix {
  const out = zeros(m.rows, m.cols, { dtype: m.dtype });
  for (let i = 0; i < m.rows; i++) {
    const base = m.offset + i * m.stride;
    const o = i * m.cols;
    for (let j = 0; j < m.cols; j++) out.data[o + j] = fn(m.data[base + j], i, j);
  }
  return out;
}

/** |A|, elementwise: a loop of its own, several times faster than {@link map} with `Math.abs` on long matrices. */
export function abs(a: Matrix): Matrix {
  const out = zeros(a.rows, a.cols, { dtype: a.dtype });
  for (let i = 0; i < a.rows; i++) {
    const base = a.offset + i * a.stride;
    const o = i * a.cols;
    for (let j = 0; j < a.cols; j++) out.data[o + j] = Math.abs(a.data[base + j]);
  }
  return out;
}

function zipWith(a: Matrix, b: Matrix, op: 'add' | 'sub' | 'hadamard'): Matrix {
  assertSameShape(a, b, op);
  const out = zeros(a.rows, a.cols, { dtype: a.dtype });
  const [x, y, z] = [a.data, b.data, out.data];
  for (let i = 0; i < a.rows; i++) {
    const baseA = a.offset + i * a.stride;
    const baseB = b.offset + i * b.stride;
    const o = i * a.cols;
    // One loop per operation: a callback per entry costs more than the arithmetic it does.
    if (op === 'add') for (let j = 0; j < a.cols; j++) z[o + j] = x[baseA + j] + y[baseB + j];
    else if (op === 'sub') for (let j = 0; j < a.cols; j++) z[o + j] = x[baseA + j] - y[baseB + j];
    else for (let j = 0; j < a.cols; j++) z[o + j] = x[baseA + j] * y[baseB + j];
  }
  return out;
}

/** target += source, in place (target may be a view, e.g. a block of a larger matrix). */
export function addInto(target: Matrix, source: Matrix): void {
  assertSameShape(target, source, 'addInto');
  for (let i = 0; i < target.rows; i++) {
    const t = target.offset + i * target.stride;
    const s = source.offset + i * source.stride;
    for (let j = 0; j < target.cols; j++) target.data[t + j] += source.data[s + j];
  }
}

/** A + B, elementwise. */
export function add(a: Matrix, b: Matrix): Matrix {
  return zipWith(a, b, 'add');
}

/** A − B, elementwise. */
export function sub(a: Matrix, b: Matrix): Matrix {
  return zipWith(a, b, 'sub');
}

/** A ∘ B, the Hadamard (elementwise) product. */
export function hadamard(a: Matrix, b: Matrix): Matrix {
  return zipWith(a, b, 'hadamard');
}

/** s·A. */
export function scale(a: Matrix, s: number): Matrix {
  if (!Number.isFinite(s)) throw new NonFiniteError(`scale: factor ${s} is not finite`);
  return map(a, (x) => x * s);
}

/**
 * exp(A), elementwise. Throws {@link NonFiniteError} if any result overflows to Infinity (an input
 * above ~709.78 in float64, ~88.72 once stored as float32): subtract a row maximum first, as softmax does.
 */
export function exp(a: Matrix): Matrix {
  const out = map(a, Math.exp);
  const data = out.data;
  for (let k = 0; k < data.length; k++) {
    if (!Number.isFinite(data[k])) {
      const i = Math.floor(k / a.cols);
      const j = k % a.cols;
      throw new NonFiniteError(`exp: entry (${i}, ${j}) = ${a.get(i, j)} gives ${data[k]}; subtract the row maximum first`);
    }
  }
  return out;
}

function checkVector(v: ArrayLike<number>, length: number, op: string, what: string): void {
  if (v.length !== length) throw new ShapeError(`${op}: vector has length ${v.length}, the matrix has ${length} ${what}`);
}

/** diag(v)·A: row i of A scaled by v[i]. */
export function scaleRows(a: Matrix, v: ArrayLike<number>): Matrix {
  checkVector(v, a.rows, 'scaleRows', 'rows');
  return map(a, (x, i) => x * v[i]);
}

/** A·diag(v): column j of A scaled by v[j]. */
export function scaleCols(a: Matrix, v: ArrayLike<number>): Matrix {
  checkVector(v, a.cols, 'scaleCols', 'columns');
  return map(a, (x, _i, j) => x * v[j]);
}

/** A·1: the vector of row sums, in A's dtype. */
export function rowSums(a: Matrix): FloatArray {
  const out = a.dtype === 'float32' ? new Float32Array(a.rows) : new Float64Array(a.rows);
  for (let i = 0; i < a.rows; i++) {
    const base = a.offset + i * a.stride;
    let s = 0;
    for (let j = 0; j < a.cols; j++) s += a.data[base + j];
    out[i] = s;
  }
  return out;
}

/** 1ᵀ·A: the vector of column sums, in A's dtype. */
export function colSums(a: Matrix): FloatArray {
  const acc = new Float64Array(a.cols);
  for (let i = 0; i < a.rows; i++) {
    const base = a.offset + i * a.stride;
    for (let j = 0; j < a.cols; j++) acc[j] += a.data[base + j];
  }
  return a.dtype === 'float32' ? Float32Array.from(acc) : acc;
}

/** ‖A‖∞ = max_{i,j} |A_ij|, the entrywise max norm the paper bounds (0 for an empty matrix). */
export function maxAbs(a: Matrix): number {
  let best = 0;
  for (let i = 0; i < a.rows; i++) {
    const base = a.offset + i * a.stride;
    for (let j = 0; j < a.cols; j++) {
      const v = Math.abs(a.data[base + j]);
      if (v > best || Number.isNaN(v)) best = v;
    }
  }
  return best;
}

/** ‖A‖_F = √(Σ A_ij²), computed with scaling so it neither overflows nor underflows. */
export function frobeniusNorm(a: Matrix): number {
  const largest = maxAbs(a);
  if (largest === 0 || !Number.isFinite(largest)) return largest;
  let s = 0;
  for (let i = 0; i < a.rows; i++) {
    const base = a.offset + i * a.stride;
    for (let j = 0; j < a.cols; j++) {
      const v = a.data[base + j] / largest;
      s += v * v;
    }
  }
  return largest * Math.sqrt(s);
}
