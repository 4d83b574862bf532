import {
  centeredKeys,
  planSoftmaxApproximation,
  polynomialFeatures,
  type ApproximationPlan,
  type PolynomialMethod,
} from '@almora/kernels';
import { type Matrix, ones, OutOfRegimeError, scaleRows } from '@almora/tensor';
import { lowRankApply, lowRankApplyTransposed, stored } from './low-rank.js';

/**
 * The paper's f(x) = D⁻¹exp(β·QKᵀ), approximated as f̂ = D̂⁻¹·U₁V₁ᵀ (masked to j ≤ i when causal)
 * and kept as its factors: it is applied, never formed.
 */
export interface LowRankSoftmax {
  /** U₁ = φ_query(Q) (L_q×k). */
  u: Matrix;
  /** V₁ = φ_key(K̃) (L_k×k), K̃ the keys, centered when the plan says so. */
  v: Matrix;
  /** K̃ itself. */
  keys: Matrix;
  /** 1/D̂_i. */
  inverseRowSums: Float64Array;
  causal: boolean;
  plan: ApproximationPlan;
}

/** Options for building {@link LowRankSoftmax}. */
export interface SoftmaxFactorOptions {
  beta: number;
  epsilon: number;
  method: PolynomialMethod;
  degree?: number;
  maxDegree?: number;
  centerKeys: boolean;
}

/** Plans the approximation of one head (degree, rank, bound, regime) in O(L·d). */
export function planHead(q: Matrix, k: Matrix, options: SoftmaxFactorOptions): ApproximationPlan {
  return planSoftmaxApproximation(q, k, {
    beta: options.beta,
    epsilon: options.epsilon,
    method: options.method,
    degree: options.degree,
    maxDegree: options.maxDegree,
    centerKeys: options.centerKeys,
  });
}

/**
 * Builds f̂ for a plan that has a degree: features U₁, V₁ and the row sums D̂ = tril?(U₁V₁ᵀ)·1,
 * checked positive. Throws {@link OutOfRegimeError} if any row sum is ≤ 0 (a polynomial that goes
 * negative on this range), since D̂⁻¹ would then be meaningless.
 */
export function buildSoftmax(q: Matrix, k: Matrix, plan: ApproximationPlan, beta: number, causal: boolean): LowRankSoftmax {
  if (!plan.polynomial) throw new OutOfRegimeError(plan.outOfRegime?.message ?? 'no polynomial degree was chosen');
  const keys = centeredKeys(k, plan.range);
  const u = polynomialFeatures(q, plan.polynomial, beta, 'query');
  const v = polynomialFeatures(keys, plan.polynomial, beta, 'key');
  const sums = lowRankApply(stored(u), stored(v), ones(k.rows, 1, { dtype: q.dtype }), causal);
  const inverseRowSums = new Float64Array(q.rows);
  for (let i = 0; i < q.rows; i++) {
    const s = sums.data[i];
    if (!(s > 0)) {
      throw new OutOfRegimeError(
        `row ${i} of the approximate softmax sums to ${s} ≤ 0 at degree ${plan.polynomial.degree} on R = ${plan.range.range.toPrecision(4)} (Γ = ${plan.range.gamma.toPrecision(3)}): the norms are outside the regime where this polynomial is positive; use method 'exact' or 'auto'`,
      );
    }
    inverseRowSums[i] = 1 / s;
  }
  return { u, v, keys, inverseRowSums, causal, plan };
}

/** f̂·M = D̂⁻¹·tril?(U₁V₁ᵀ)·M, in O(L·k·m). */
export function applyF(f: LowRankSoftmax, m: Matrix): Matrix {
  return scaleRows(lowRankApply(stored(f.u), stored(f.v), m, f.causal), f.inverseRowSums);
}

/** f̂ᵀ·M = tril?(U₁V₁ᵀ)ᵀ·D̂⁻¹·M, in O(L·k·m). */
export function applyFTransposed(f: LowRankSoftmax, m: Matrix): Matrix {
  return lowRankApplyTransposed(stored(f.u), stored(f.v), scaleRows(m, f.inverseRowSums), f.causal);
}
