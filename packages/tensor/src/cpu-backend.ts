import type { Backend, ProductTree, TransposeForms } from './backend.js';
import { zeros } from './create.js';
import { add, addInto, colSums, hadamard, map, rowSums, scaleRows, sub } from './elementwise.js';
import { ShapeError } from './errors.js';
import { matmul } from './matmul.js';
import { allocate, block, copy, type DType, type FloatArray, Matrix, sliceRows } from './matrix.js';
import { faceSplit } from './products.js';
import { assertSameDType, assertSameShape } from './validate.js';

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

function productFeatures(x: Matrix, tree: ProductTree): Matrix {
  const { monomials } = monomialColumns(x, tree);
  const rows = x.rows;
  const k = tree.parents.length;
  const out = zeros(rows, k, { dtype: x.dtype });
  for (let a = 0; a < k; a++) {
    const w = tree.weights[a];
    const col = a * rows;
    for (let i = 0; i < rows; i++) out.data[i * k + a] = w * monomials[col + i];
  }
  return out;
}

// Reverse mode over the tree: each monomial is its parent times one variable, so
// ∂ℓ/∂parent += ∂ℓ/∂m·x_v and ∂ℓ/∂x_v += ∂ℓ/∂m·parent, in O(L·k).
function productFeaturesBackward(x: Matrix, tree: ProductTree, featureGradient: Matrix): Matrix {
  const { monomials, variableColumns } = monomialColumns(x, tree);
  const rows = x.rows;
  const k = tree.parents.length;
  if (featureGradient.rows !== rows || featureGradient.cols !== k) {
    throw new ShapeError(`feature gradient must be ${rows}×${k}, got ${featureGradient.describe()}`);
  }
  const monomialGradient = new Float64Array(k * rows);
  for (let i = 0; i < rows; i++) {
    const base = featureGradient.offset + i * featureGradient.stride;
    for (let a = 0; a < k; a++) monomialGradient[a * rows + i] = tree.weights[a] * featureGradient.data[base + a];
  }
  const variableGradient = new Float64Array(x.cols * rows);
  for (let a = k - 1; a >= 1; a--) {
    const own = a * rows;
    const parent = tree.parents[a] * rows;
    const variable = tree.variables[a] * rows;
    for (let i = 0; i < rows; i++) {
      const g = monomialGradient[own + i];
      monomialGradient[parent + i] += g * variableColumns[variable + i];
      variableGradient[variable + i] += g * monomials[parent + i];
    }
  }
  const out = zeros(rows, x.cols, { dtype: x.dtype });
  for (let i = 0; i < rows; i++) for (let v = 0; v < x.cols; v++) out.data[i * x.cols + v] = variableGradient[v * rows + i];
  return out;
}

// Feature-major columns make the inner loop a contiguous multiply over the L rows; a
// gather-per-monomial layout was 5–10× slower.
function monomialColumns(x: Matrix, tree: ProductTree): { monomials: Float64Array; variableColumns: Float64Array } {
  const rows = x.rows;
  const k = tree.parents.length;
  const monomials = new Float64Array(k * rows);
  monomials.fill(1, 0, rows);
  const variableColumns = new Float64Array(x.cols * rows);
  for (let i = 0; i < rows; i++) {
    const base = x.offset + i * x.stride;
    for (let v = 0; v < x.cols; v++) variableColumns[v * rows + i] = x.data[base + v];
  }
  for (let a = 1; a < k; a++) {
    const out = a * rows;
    const parent = tree.parents[a] * rows;
    const variable = tree.variables[a] * rows;
    for (let i = 0; i < rows; i++) monomials[out + i] = monomials[parent + i] * variableColumns[variable + i];
  }
  return { monomials, variableColumns };
}

function attentionProbabilities(queries: Matrix, keys: Matrix, beta: number, causalStart?: number): Matrix {
  if (causalStart !== undefined && !(Number.isInteger(causalStart) && causalStart >= 0)) throw new ShapeError(`attentionProbabilities: causalStart must be an integer ≥ 0, got ${causalStart}`);
  const p = cpuBackend.matmul(queries, keys, { transposeB: true });
  const { rows, cols, data } = p;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const allowed = causalStart === undefined ? cols : Math.min(cols, causalStart + r + 1);
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < allowed; j++) max = Math.max(max, beta * data[o + j]);
    let sum = 0;
    for (let j = 0; j < allowed; j++) {
      const e = Math.exp(beta * data[o + j] - max);
      data[o + j] = e;
      sum += e;
    }
    const inverse = 1 / sum;
    for (let j = 0; j < allowed; j++) data[o + j] *= inverse;
    data.fill(0, o + allowed, o + cols);
  }
  return p;
}

function attentionScoresGradient(p: Matrix, outputGradient: Matrix, values: Matrix, rowDots: Matrix): Matrix {
  const out = cpuBackend.matmul(outputGradient, values, { transposeB: true });
  assertSameShape(p, out, 'attentionScoresGradient');
  const dots = column(rowDots, p.rows, 'attentionScoresGradient');
  for (let r = 0; r < p.rows; r++) {
    const pBase = p.offset + r * p.stride;
    const o = r * p.cols;
    const dot = dots[r];
    for (let j = 0; j < p.cols; j++) out.data[o + j] = p.data[pBase + j] * (out.data[o + j] - dot);
  }
  return out;
}

function faceSplitReduce(weights: Matrix, blocks: Matrix): Matrix {
  const d = weights.cols;
  if (blocks.rows !== weights.rows || blocks.cols % Math.max(d, 1) !== 0) {
    throw new ShapeError(`faceSplitReduce: weights are ${weights.describe()} and blocks ${blocks.describe()}; blocks need the same rows and a multiple of ${d} columns`);
  }
  const n = d === 0 ? 0 : blocks.cols / d;
  const out = zeros(weights.rows, n, { dtype: blocks.dtype });
  for (let i = 0; i < weights.rows; i++) {
    const bBase = blocks.offset + i * blocks.stride;
    for (let l = 0; l < d; l++) {
      const w = weights.data[weights.offset + i * weights.stride + l];
      for (let j = 0; j < n; j++) out.data[i * n + j] += w * blocks.data[bBase + l * n + j];
    }
  }
  return out;
}

/**
 * The CPU {@link Backend}: handles are {@link Matrix} values (uploads are the caller's matrices,
 * not copies), arithmetic in their dtype, with @almora/tensor's kernels. Reads return copies the
 * caller owns.
 */
export const cpuBackend: Backend<Matrix> = {
  name: 'cpu',
  precision: 'input',
  upload: (m) => m,
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
  abs: (a) => map(a, Math.abs),
  scaleRows: (a, s) => scaleRows(a, column(s, a.rows, 'scaleRows')),
  rowSums: (a) => new Matrix(a.rows, 1, rowSums(a)),
  colSums: (a) => new Matrix(1, a.cols, colSums(a)),
  faceSplit,
  faceSplitReduce,
  productFeatures,
  productFeaturesBackward,
  attentionProbabilities,
  attentionScoresGradient,
  triangle(a, keep) {
    const out = zeros(a.rows, a.cols, { dtype: a.dtype });
    for (let i = 0; i < a.rows; i++) {
      const base = a.offset + i * a.stride;
      const [from, to] = keep === 'lower' ? [0, Math.min(i + 1, a.cols)] : [Math.min(i, a.cols), a.cols];
      for (let j = from; j < to; j++) out.data[i * a.cols + j] = a.data[base + j];
    }
    return out;
  },
  accumulate(target, source, rowOffset = 0) {
    addInto(block(target, rowOffset, 0, source.rows, source.cols), source);
  },
};
