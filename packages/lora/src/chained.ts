import { type Matrix, sub, scale, scaleRows, ones } from '@almora/tensor';
import type { HeadInput, HeadResult } from './head.js';
import { faceSplitFactor, lowRankApply, lowRankApplyTransposed, type RowFactor } from './low-rank.js';
import { applyF, applyFTransposed, type LowRankSoftmax } from './softmax-factors.js';

/** The paper's c(x) = f·V − Y (L×d), with f ≈ f̂. Returns O = f̂·V too. */
export function cTerm(f: LowRankSoftmax, v: Matrix, y: Matrix): { output: Matrix; c: Matrix } {
  const output = applyF(f, v);
  return { output, c: sub(output, y) };
}

/**
 * The paper's p₁(x) = f ∘ q with q = c·Vᵀ (rank d), kept low-rank by the face-splitting identity
 * (Lemma 3.6): f̂ ∘ (cVᵀ) = (D̂⁻¹U₁ ⊘ c)·(V₁ ⊘ V)ᵀ, rank k·d. The causal mask carries over from f̂.
 */
export function p1Term(f: LowRankSoftmax, c: Matrix, v: Matrix): { left: RowFactor; right: RowFactor } {
  return { left: faceSplitFactor(f.u, c, f.inverseRowSums), right: faceSplitFactor(f.v, v) };
}

/**
 * The row sums p₁·1 that define the paper's p₂(x) = diag(p₁·1)·f (Lemma 3.7); p₁·1 = (c ∘ f̂V)·1,
 * computed here from p₁'s factors in O(L·k·d).
 */
export function p2Diagonal(p1: { left: RowFactor; right: RowFactor }, length: number, causal: boolean, dtype: Matrix['dtype']): Float64Array {
  const sums = lowRankApply(p1.left, p1.right, ones(p1.right.rows, 1, { dtype }), causal);
  return Float64Array.from(sums.data.subarray(0, length));
}

/**
 * One head's gradients by the paper's chain (Theorem 3.1 for partial adaptation, Theorem A.1 for
 * full): f → c → q → p₁, p₂ → ∂Q = β(p₁ − p₂)K, ∂K = β(p₁ − p₂)ᵀQ, ∂V = fᵀc. Never forms an L×L
 * matrix; O(L·k·d²), since p₁ has rank k·d. It treats f̂ as the softmax of S in the exact gradient
 * formula, which is what makes the error bound of {@link chainedGradientBound} provable.
 */
export function chainedHead(input: HeadInput, f: LowRankSoftmax): HeadResult & { c: Matrix } {
  const { q, k, v, y, beta, causal } = input;
  const { output, c } = cTerm(f, v, y);
  const p1 = p1Term(f, c, v);
  const p2 = p2Diagonal(p1, q.rows, causal, q.dtype);
  // (p₁ − p₂)·K = p₁K − diag(p₁·1)·f̂K
  const dq = scale(sub(lowRankApply(p1.left, p1.right, k, causal), scaleRows(applyF(f, k), p2)), beta);
  // (p₁ − p₂)ᵀ·Q = p₁ᵀQ − f̂ᵀ·diag(p₁·1)·Q
  const dk = scale(sub(lowRankApplyTransposed(p1.left, p1.right, q, causal), applyFTransposed(f, scaleRows(q, p2))), beta);
  const dv = applyFTransposed(f, c);
  let loss = 0;
  for (let t = 0; t < c.data.length; t++) loss += 0.5 * c.data[t] * c.data[t];
  return { loss, output, dq, dk, dv, c };
}
