import { type Matrix, sub, scale, scaleRows } from '@almora/tensor';
import type { HeadInput, HeadResult } from './head.js';
import { faceSplitApply } from './low-rank.js';
import { applyF, applyFTransposed, type LowRankSoftmax } from './softmax-factors.js';

/** The paper's c(x) = f·V − Y (L×d), with f ≈ f̂. Returns O = f̂·V too. */
export function cTerm(f: LowRankSoftmax, v: Matrix, y: Matrix): { output: Matrix; c: Matrix } {
  const output = applyF(f, v);
  return { output, c: sub(output, y) };
}

/**
 * The paper's p₁(x) = f ∘ q with q = c·Vᵀ (rank d), kept low-rank by the face-splitting identity
 * (Lemma 3.6): f̂ ∘ (cVᵀ) = (D̂⁻¹U₁ ⊘ c)·(V₁ ⊘ V)ᵀ, rank k·d; the causal mask carries over from f̂.
 * Held as the pairs whose face-splitting products are its factors.
 */
export interface P1 {
  left: [Matrix, Matrix];
  right: [Matrix, Matrix];
  causal: boolean;
}

/** Builds {@link P1} from f̂, c and V. */
export function p1Term(f: LowRankSoftmax, c: Matrix, v: Matrix): P1 {
  return { left: [scaleRows(f.u, f.inverseRowSums), c], right: [f.v, v], causal: f.causal };
}

/** p₁·M (or p₁ᵀ·M) in O(L·k·d·m), never forming p₁ nor its L×(k·d) factors when unmasked. */
export function applyP1(p1: P1, m: Matrix, transposed = false): Matrix {
  return faceSplitApply(p1.left, p1.right, m, p1.causal, transposed);
}

/**
 * The diagonal of the paper's p₂(x) = diag(p₁·1)·f (Lemma 3.7): p₁·1 = (c ∘ f̂V)·1, since
 * Σ_j f̂_ij·(c_i·v_j) = c_i·Ô_i — O(L·d) from c and Ô.
 */
export function p2Diagonal(c: Matrix, output: Matrix): Float64Array {
  const out = new Float64Array(c.rows);
  for (let i = 0; i < c.rows; i++) {
    let s = 0;
    for (let l = 0; l < c.cols; l++) s += c.data[c.offset + i * c.stride + l] * output.data[output.offset + i * output.stride + l];
    out[i] = s;
  }
  return out;
}

/**
 * One head's gradients by the paper's chain (Theorem 3.1 for partial adaptation, Theorem A.1 for
 * full): f → c → q → p₁, p₂ → ∂Q = β(p₁ − p₂)K, ∂K = β(p₁ − p₂)ᵀQ, ∂V = fᵀc. Never forms an L×L
 * matrix; O(L·k·d²), since p₁ has rank k·d. It treats f̂ as the softmax of S in the exact gradient
 * formula, which is what makes the error bound of {@link chainedGradientBound} provable.
 */
export function chainedHead(input: HeadInput, f: LowRankSoftmax): HeadResult & { c: Matrix } {
  const { q, k, v, y, beta } = input;
  const { output, c } = cTerm(f, v, y);
  const p1 = p1Term(f, c, v);
  const p2 = p2Diagonal(c, output);
  // (p₁ − p₂)·K = p₁K − diag(p₁·1)·f̂K
  const dq = scale(sub(applyP1(p1, k), scaleRows(applyF(f, k), p2)), beta);
  // (p₁ − p₂)ᵀ·Q = p₁ᵀQ − f̂ᵀ·diag(p₁·1)·Q
  const dk = scale(sub(applyP1(p1, q, true), applyFTransposed(f, scaleRows(q, p2))), beta);
  const dv = applyFTransposed(f, c);
  let loss = 0;
  for (let t = 0; t < c.data.length; t++) loss += 0.5 * c.data[t] * c.data[t];
  return { loss, output, dq, dk, dv, c };
}
