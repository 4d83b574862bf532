import { type Backend, type DeviceMatrix, scoped } from '@almora/tensor';
import type { HeadGradients, HeadInput } from './head.js';
import { faceSplitApply, wholeOf } from './low-rank.js';
import { applyF, applyFTransposed, type LowRankSoftmax } from './softmax-factors.js';

/**
 * The paper's p₁(x) = f ∘ q with q = c·Vᵀ (rank d), kept low-rank by the face-splitting identity
 * (Lemma 3.6): f̂ ∘ (cVᵀ) = (D̂⁻¹U₁ ⊘ c)·(V₁ ⊘ V)ᵀ, rank k·d; the causal mask carries over from f̂.
 * Held as the pairs whose face-splitting products are its factors.
 */
export interface P1<T extends DeviceMatrix> {
  /** The pair (D̂⁻¹U₁, c), whose face-splitting product is p₁'s left factor. */
  left: [T, T];
  /** The pair (V₁, V), whose face-splitting product is p₁'s right factor. */
  right: [T, T];
  /** Whether p₁ is masked to j ≤ i. */
  causal: boolean;
}

/**
 * Builds {@link P1} from f̂, c and V. The paper's c(x) = f·V − Y is ∂loss/∂O of its loss
 * ½‖O − Y‖²; inside a model c is whatever upstream gradient ∂O arrives.
 */
export function p1Term<T extends DeviceMatrix>(backend: Backend<T>, f: LowRankSoftmax<T>, c: T, v: T): P1<T> {
  return { left: [backend.scaleRows(wholeOf(f.u), f.inverseRowSums), c], right: [wholeOf(f.v), v], causal: f.causal };
}

/** p₁·M (or p₁ᵀ·M) in O(L·k·d·m), never forming p₁ nor its L×(k·d) factors when unmasked. */
export function applyP1<T extends DeviceMatrix>(backend: Backend<T>, p1: P1<T>, m: T, transposed = false): T {
  return faceSplitApply(backend, p1.left, p1.right, m, p1.causal, transposed);
}

/**
 * The diagonal of the paper's p₂(x) = diag(p₁·1)·f (Lemma 3.7), as a column: p₁·1 = (c ∘ f̂V)·1,
 * since Σ_j f̂_ij·(c_i·v_j) = c_i·Ô_i — O(L·d) from c and Ô.
 */
export function p2Diagonal<T extends DeviceMatrix>(backend: Backend<T>, c: T, output: T): T {
  const product = backend.hadamard(c, output);
  const out = backend.rowSums(product);
  backend.dispose(product);
  return out;
}

/**
 * ∂Q, ∂K, ∂V of one head by the paper's chain (Theorem 3.1 for partial adaptation, Theorem A.1 for
 * full), for any upstream gradient c = ∂loss/∂O: q = c·Vᵀ → p₁, p₂ → ∂Q = β(p₁ − p₂)K,
 * ∂K = β(p₁ − p₂)ᵀQ, ∂V = f̂ᵀc. Never forms an L×L matrix; O(L·k·d²), since p₁ has rank k·d. It
 * treats f̂ as the softmax of S in the exact gradient formula, which is what makes the error bound
 * of {@link chainedGradientBound} provable. `output` is Ô = f̂·V from the forward pass.
 */
export function chainedBackward<T extends DeviceMatrix>(backend: Backend<T>, input: HeadInput<T>, f: LowRankSoftmax<T>, output: T, c: T): HeadGradients<T> {
  const { q, k, v, beta } = input;
  const scope = scoped(backend);
  const p1 = p1Term(scope, f, c, v);
  const p2 = p2Diagonal(scope, c, output);
  // (p₁ − p₂)·K = p₁K − diag(p₁·1)·f̂K
  const dq = scope.affine(scope.sub(applyP1(scope, p1, k), scope.scaleRows(applyF(scope, f, k), p2)), beta);
  // (p₁ − p₂)ᵀ·Q = p₁ᵀQ − f̂ᵀ·diag(p₁·1)·Q
  const dk = scope.affine(scope.sub(applyP1(scope, p1, q, true), applyFTransposed(scope, f, scope.scaleRows(q, p2))), beta);
  const dv = applyFTransposed(scope, f, c);
  scope.releaseAll([dq, dk, dv]);
  return { dq, dk, dv };
}
