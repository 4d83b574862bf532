import { InvalidArgumentError, matmul, Matrix, NonFiniteError, randomNormal, type Rng, zeros } from '@almora/tensor';
import { lowRankRowSums, centeredKeys, type KernelApproximation } from './approximate.js';
import { certifiedRange } from './range.js';

/** Options of {@link positiveRandomFeatures}. */
export interface RandomFeatureOptions {
  /** Softmax temperature β; must be > 0. */
  beta: number;
  /** Number of random features m (the rank). */
  rank: number;
  /** Source of the Gaussian projections; the same state gives the same features. */
  rng: Rng;
  /** Subtract the mean key when it shrinks the range; default false. */
  centerKeys?: boolean;
}

function positiveFeatures(x: Matrix, projection: Matrix, scale: number): Matrix {
  // φ(x) = exp(w·x' − ‖x'‖²/2)/√m with x' = β^{1/2}x, so E[φ(q)·φ(k)] = exp(β q·k).
  const projected = matmul(x, projection, { transposeB: true });
  const m = projection.rows;
  const out = zeros(x.rows, m, { dtype: x.dtype });
  const norm = 1 / Math.sqrt(m);
  for (let i = 0; i < x.rows; i++) {
    let sq = 0;
    const base = x.offset + i * x.stride;
    for (let j = 0; j < x.cols; j++) sq += x.data[base + j] ** 2;
    const half = (scale * scale * sq) / 2;
    for (let c = 0; c < m; c++) {
      const value = Math.exp(scale * projected.data[i * m + c] - half) * norm;
      if (!Number.isFinite(value)) throw new NonFiniteError(`random features overflowed at row ${i}: inputs too large`);
      out.data[i * m + c] = value;
    }
  }
  return out;
}

/**
 * FAVOR+ positive random features (Choromanski et al., Performer): U₁V₁ᵀ is an unbiased estimate
 * of exp(β·QKᵀ) at any rank, with positive entries so row sums are positive — but with no
 * worst-case error bound. Returned as an uncertified {@link KernelApproximation}, for comparison
 * with the certified polynomial method.
 */
export function positiveRandomFeatures(q: Matrix, k: Matrix, options: RandomFeatureOptions): KernelApproximation {
  if (!Number.isInteger(options.rank) || options.rank <= 0) {
    throw new InvalidArgumentError(`rank must be a positive integer, got ${options.rank}`);
  }
  const range = certifiedRange(q, k, options.beta, options.centerKeys ?? false);
  const projection = randomNormal(options.rank, q.cols, options.rng, { dtype: q.dtype });
  const scale = Math.sqrt(options.beta);
  const u = positiveFeatures(q, projection, scale);
  const v = positiveFeatures(centeredKeys(k, range), projection, scale);
  return {
    method: 'favor+',
    certified: false,
    u,
    v,
    rank: options.rank,
    degree: undefined,
    bound: undefined,
    rowSums: lowRankRowSums(u, v),
    range,
  };
}
