import { assertSameShape, type Backend, cpuCore, faceSplit, type Matrix, ShapeError, zeros } from '@almora/tensor';
import type { ProductTree } from './features.js';
import type { FusedKernels } from './fused.js';

/** The entries of a rows×1 column, without a copy when it is contiguous. */
function column(v: Matrix, rows: number, op: string): ArrayLike<number> {
  if (v.rows !== rows || v.cols !== 1) throw new ShapeError(`${op}: expected a ${rows}×1 column, got ${v.describe()}`);
  if (v.isContiguous && v.offset === 0) return v.data;
  return Array.from({ length: rows }, (_, i) => v.data[v.offset + i * v.stride]);
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

/**
 * The CPU's fused kernels, the overrides {@link cpuBackend} carries: each one pass over host
 * matrices in their dtype (monomials in float64), the exact twins the default compositions are
 * tested against.
 */
export const cpuFusedKernels: FusedKernels<Matrix> = {
  faceSplit,
  faceSplitReduce(weights, blocks) {
    const d = weights.cols;
    if (blocks.rows !== weights.rows || blocks.cols % Math.max(d, 1) !== 0) {
      throw new ShapeError(
        `faceSplitReduce: weights are ${weights.describe()} and blocks ${blocks.describe()}; blocks need the same rows and a multiple of ${d} columns`,
      );
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
  },
  productFeatures(x, tree) {
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
  },
  // Reverse mode over the tree: each monomial is its parent times one variable, so
  // ∂ℓ/∂parent += ∂ℓ/∂m·x_v and ∂ℓ/∂x_v += ∂ℓ/∂m·parent, in O(L·k).
  productFeaturesBackward(x, tree, featureGradient) {
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
  },
  attentionProbabilities(queries, keys, beta, causalStart) {
    if (causalStart !== undefined && !(Number.isInteger(causalStart) && causalStart >= 0))
      throw new ShapeError(`attentionProbabilities: causalStart must be an integer ≥ 0, got ${causalStart}`);
    const p = cpuCore.matmul(queries, keys, { transposeB: true });
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
  },
  attentionScoresGradient(p, outputGradient, values, rowDots) {
    const out = cpuCore.matmul(outputGradient, values, { transposeB: true });
    assertSameShape(p, out, 'attentionScoresGradient');
    const dots = column(rowDots, p.rows, 'attentionScoresGradient');
    for (let r = 0; r < p.rows; r++) {
      const pBase = p.offset + r * p.stride;
      const o = r * p.cols;
      const dot = dots[r];
      for (let j = 0; j < p.cols; j++) out.data[o + j] = p.data[pBase + j] * (out.data[o + j] - dot);
    }
    return out;
  },
};

/**
 * The CPU backend almora's algorithms use by default: @almora/tensor's `cpuCore` (handles are host
 * `Matrix` values, arithmetic in their dtype) with the CPU's fused kernels {@link cpuFusedKernels}
 * as its overrides.
 */
export const cpuBackend: Backend<Matrix> & FusedKernels<Matrix> = { ...cpuCore, name: 'cpu', ...cpuFusedKernels };
