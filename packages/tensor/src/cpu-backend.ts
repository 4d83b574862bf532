import type { Backend, TransposeForms } from './backend.js';
import { toDType, zeros } from './create.js';
import { abs, add, addInto, colSums, hadamard, map, rowSums, scaleRows, sub } from './elementwise.js';
import { ShapeError } from './errors.js';
import { matmul } from './matmul.js';
import { allocate, block, copy, type DType, type FloatArray, Matrix, sliceRows } from './matrix.js';
import { assertSameDType } from './validate.js';

/**
 * Block-sized scratch buffers handed back by `dispose` and reused by the next block of the same
 * size: allocating a fresh block×L buffer per block of the exact path spent ~30% of its time in page
 * faults at L = 32,768. Held through WeakRefs, which survive to the end of the synchronous job that
 * created them, so a loop reuses them and the memory goes back to the collector once it returns.
 */
const pool = new Map<string, WeakRef<FloatArray>[]>();
const owned = new WeakSet<Matrix>();

// Smaller buffers are cheaper to allocate than to track.
const POOLED_SIZE = 1 << 16;

function take(rows: number, cols: number, dtype: DType): Matrix {
  if (rows * cols < POOLED_SIZE) return new Matrix(rows, cols, allocate(rows * cols, dtype));
  const free = pool.get(`${dtype}:${rows * cols}`);
  while (free && free.length > 0) {
    const buffer = free.pop()!.deref();
    if (buffer) return own(new Matrix(rows, cols, buffer));
  }
  return own(new Matrix(rows, cols, allocate(rows * cols, dtype)));
}

function own(m: Matrix): Matrix {
  owned.add(m);
  return m;
}

function release(m: Matrix): void {
  // Only buffers this backend made whole go back: uploads and views belong to someone else.
  if (!owned.delete(m)) return;
  const key = `${m.dtype}:${m.data.length}`;
  const free = pool.get(key) ?? [];
  free.push(new WeakRef(m.data));
  pool.set(key, free);
}

function column(v: Matrix, rows: number, op: string): FloatArray | number[] {
  if (v.rows !== rows || v.cols !== 1) throw new ShapeError(`${op}: expected a ${rows}×1 column, got ${v.describe()}`);
  if (v.isContiguous && v.offset === 0) return v.data;
  return Array.from({ length: rows }, (_, i) => v.data[v.offset + i * v.stride]);
}

/** max_j A_ij of every row, in A's dtype (−Infinity for a row of no columns; NaN wins). */
function rowMaxima(a: Matrix): Matrix {
  const out = new Matrix(a.rows, 1, allocate(a.rows, a.dtype));
  for (let i = 0; i < a.rows; i++) {
    const base = a.offset + i * a.stride;
    let best = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < a.cols; j++) {
      const v = a.data[base + j];
      if (v > best || Number.isNaN(v)) best = v;
    }
    out.data[i] = best;
  }
  return out;
}

/**
 * The CPU's core {@link Backend}: handles are {@link Matrix} values (uploads are the caller's
 * matrices, not copies), arithmetic in their dtype, with @almora/tensor's kernels. Reads return
 * copies the caller owns. It has no fused kernels: `cpuBackend` in `@almora/kernels` is this core
 * with the CPU's fused overrides, and is what the algorithms use by default; this core alone is
 * what the conformance kit runs to check every default composition.
 */
export const cpuCore: Backend<Matrix> = {
  name: 'cpu core',
  precision: 'input',
  upload: (m, like) => (like === undefined || like.dtype === m.dtype ? m : toDType(m, like.dtype)),
  zeros: (rows, cols, like) => zeros(rows, cols, { dtype: like.dtype }),
  read: (m) => Promise.resolve(copy(m)),
  readSync: (m) => copy(m),
  dispose: release,
  sliceRows,
  matmul(a: Matrix, b: Matrix, forms: TransposeForms = {}) {
    const rows = forms.transposeA ? a.cols : a.rows;
    const cols = forms.transposeB ? b.rows : b.cols;
    assertSameDType(a, b, 'matmul');
    return matmul(a, b, { ...forms, out: take(rows, cols, a.dtype) });
  },
  add,
  sub,
  hadamard,
  affine(a, factor, shift = 0) {
    const out = zeros(a.rows, a.cols, { dtype: a.dtype });
    for (let i = 0; i < a.rows; i++) {
      const base = a.offset + i * a.stride;
      for (let j = 0; j < a.cols; j++) out.data[i * a.cols + j] = factor * a.data[base + j] + shift;
    }
    return out;
  },
  abs,
  exp: (a) => map(a, Math.exp),
  reciprocal: (a) => map(a, (x) => 1 / x),
  scaleRows: (a, s) => scaleRows(a, column(s, a.rows, 'scaleRows')),
  rowSums: (a) => new Matrix(a.rows, 1, rowSums(a)),
  colSums: (a) => new Matrix(1, a.cols, colSums(a)),
  rowMax: rowMaxima,
  triangle(a, keep, offset = 0) {
    if (!Number.isInteger(offset)) throw new ShapeError(`triangle: the diagonal offset must be an integer, got ${offset}`);
    const out = zeros(a.rows, a.cols, { dtype: a.dtype });
    for (let i = 0; i < a.rows; i++) {
      const base = a.offset + i * a.stride;
      // Columns up to and including the diagonal (lower), or from it on (upper), clamped to the row.
      const clamp = (j: number) => Math.max(0, Math.min(j, a.cols));
      const [from, to] = keep === 'lower' ? [0, clamp(i + offset + 1)] : [clamp(i + offset), a.cols];
      for (let j = from; j < to; j++) out.data[i * a.cols + j] = a.data[base + j];
    }
    return out;
  },
  accumulate(target, source, rowOffset = 0) {
    addInto(block(target, rowOffset, 0, source.rows, source.cols), source);
  },
};
