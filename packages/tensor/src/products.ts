import { ShapeError } from './errors.js';
import { zeros } from './create.js';
import { copy, Matrix } from './matrix.js';
import { assertSameDType } from './validate.js';

/** Aᵀ as a fresh matrix. Most callers want {@link matmul}'s transpose options instead, which never form it. */
export function transpose(a: Matrix): Matrix {
  const out = zeros(a.cols, a.rows, { dtype: a.dtype });
  for (let i = 0; i < a.rows; i++) {
    const base = a.offset + i * a.stride;
    for (let j = 0; j < a.cols; j++) out.data[j * a.rows + i] = a.data[base + j];
  }
  return out;
}

/**
 * vec(A) (the paper's Definition 2.1, row-major): the rows of A stacked into one (rows·cols)×1
 * column, so vec(A)[i·cols + j] = A_ij. Shares A's buffer when A is contiguous.
 */
export function vec(a: Matrix): Matrix {
  const source = a.isContiguous ? a : copy(a);
  return new Matrix(a.rows * a.cols, 1, source.data, source.offset, 1);
}

/** mat(v) (the paper's Definition 2.2): the inverse of {@link vec}, reshaping a column or row of rows·cols entries. Shares v's buffer when its entries are adjacent. */
export function mat(v: Matrix, rows: number, cols: number): Matrix {
  if (v.size !== rows * cols || (v.rows !== 1 && v.cols !== 1)) {
    throw new ShapeError(`mat: a ${v.rows}×${v.cols} vector cannot be reshaped to ${rows}×${cols}`);
  }
  const adjacent = v.rows <= 1 || v.stride === 1;
  const source = adjacent ? v : copy(v);
  return new Matrix(rows, cols, source.data, source.offset, cols);
}

/**
 * A ⊗ B, the Kronecker product (the paper's Definition 2.3): for A m×n and B p×q, the mp×nq matrix
 * with (A⊗B)[i·p + k, j·q + l] = A_ij·B_kl. With row-major {@link vec}, vec(A·X·Bᵀ) = (A⊗B)·vec(X).
 */
export function kron(a: Matrix, b: Matrix): Matrix {
  assertSameDType(a, b, 'kron');
  const rows = a.rows * b.rows;
  const cols = a.cols * b.cols;
  const out = zeros(rows, cols, { dtype: a.dtype });
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < a.cols; j++) {
      const aij = a.data[a.offset + i * a.stride + j];
      for (let k = 0; k < b.rows; k++) {
        const bBase = b.offset + k * b.stride;
        const o = (i * b.rows + k) * cols + j * b.cols;
        for (let l = 0; l < b.cols; l++) out.data[o + l] = aij * b.data[bBase + l];
      }
    }
  }
  return out;
}

/**
 * A ⊘ B, the row-wise Kronecker (face-splitting) product: for A n×p and B n×q, the n×(p·q) matrix
 * whose row i is A_i ⊗ B_i. Its key identity, (A⊘B)·(C⊘D)ᵀ = (A·Cᵀ)∘(B·Dᵀ), keeps the Hadamard
 * product of two low-rank n×n matrices low-rank without forming either.
 */
export function faceSplit(a: Matrix, b: Matrix): Matrix {
  assertSameDType(a, b, 'faceSplit');
  if (a.rows !== b.rows) {
    throw new ShapeError(`faceSplit: A is ${a.rows}×${a.cols} and B is ${b.rows}×${b.cols}; row counts must agree`);
  }
  const cols = a.cols * b.cols;
  const out = zeros(a.rows, cols, { dtype: a.dtype });
  for (let i = 0; i < a.rows; i++) {
    const aBase = a.offset + i * a.stride;
    const bBase = b.offset + i * b.stride;
    const o = i * cols;
    for (let j = 0; j < a.cols; j++) {
      const aij = a.data[aBase + j];
      const oj = o + j * b.cols;
      for (let l = 0; l < b.cols; l++) out.data[oj + l] = aij * b.data[bBase + l];
    }
  }
  return out;
}
