import { type Backend, type DeviceMatrix, scoped } from '@almora/tensor';
import { type HeadGradients, type HeadInput, onesColumn } from './head.js';
import { lowRankApply, lowRankApplyTransposed, stored } from './low-rank.js';
import type { LowRankSoftmax } from './softmax-factors.js';

/**
 * ∂Q, ∂K, ∂V of one head as the exact reverse-mode derivative of the approximated forward pass
 * Ô = D̂⁻¹·tril?(U₁V₁ᵀ)·V, U₁ = φ(Q), V₁ = φ(K̃), for an upstream gradient c = ∂loss/∂Ô: O(L·k·d),
 * a factor d cheaper than the chained variant, but it differentiates the polynomial (whose
 * derivative approximates exp less well than the polynomial approximates exp), so at the same
 * degree it is less accurate: its certificate covers p′(S)/D̂ too (`autodiffRelative`).
 *
 * With N = tril?(U₁V₁ᵀ)·V and D̂ = tril?(U₁V₁ᵀ)·1: Ô = D̂⁻¹N, ∂N = D̂⁻¹c, ∂D̂ = −(c∘Ô)·1/D̂; then
 * with G = ∂N·Vᵀ + ∂D̂·1ᵀ (never formed): ∂U₁ = tril?(G)·V₁, ∂V₁ = tril?(G)ᵀ·U₁,
 * ∂V = tril?(U₁V₁ᵀ)ᵀ·∂N, and ∂Q, ∂K̃ through the feature maps; centering projects
 * ∂K = (I − 11ᵀ/L)·∂K̃.
 */
export function autodiffBackward<T extends DeviceMatrix>(backend: Backend<T>, input: HeadInput<T>, f: LowRankSoftmax<T>, output: T, c: T): HeadGradients<T> {
  const { q, v, causal } = input;
  const scope = scoped(backend);
  const dN = scope.scaleRows(c, f.inverseRowSums);
  const dD = scope.affine(scope.scaleRows(scope.rowSums(scope.hadamard(c, output)), f.inverseRowSums), -1);
  const ones = onesColumn(scope, v.rows, v);
  const du = scope.add(
    lowRankApply(scope, stored(dN), stored(v), f.v, causal),
    lowRankApply(scope, stored(dD), stored(ones), f.v, causal),
  );
  const dFeaturesK = scope.add(
    lowRankApplyTransposed(scope, stored(dN), stored(v), f.u, causal),
    lowRankApplyTransposed(scope, stored(dD), stored(ones), f.u, causal),
  );
  const dv = lowRankApplyTransposed(scope, stored(f.u), stored(f.v), dN, causal);
  const dq = scope.productFeaturesBackward(q, f.trees.query, du);
  let dk = scope.productFeaturesBackward(f.keys, f.trees.key, dFeaturesK);
  if (f.plan.range.centered) {
    const mean = scope.affine(scope.colSums(dk), 1 / dk.rows);
    dk = scope.sub(dk, scope.matmul(onesColumn(scope, dk.rows, dk), mean));
  }
  scope.releaseAll([dq, dk, dv]);
  return { dq, dk, dv };
}
