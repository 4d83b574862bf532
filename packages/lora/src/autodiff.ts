import { featureTree } from '@almora/kernels';
import { type Backend, type DeviceMatrix, scoped } from '@almora/tensor';
import { type HeadInput, type HeadResult, onesColumn } from './head.js';
import { lowRankApply, lowRankApplyTransposed, stored } from './low-rank.js';
import { applyF, type LowRankSoftmax } from './softmax-factors.js';

/**
 * One head's gradients as the exact reverse-mode derivative of the approximated forward pass
 * Ô = D̂⁻¹·tril?(U₁V₁ᵀ)·V, U₁ = φ(Q), V₁ = φ(K̃): O(L·k·d), a factor d cheaper than the chained
 * variant, but it differentiates the polynomial (whose derivative approximates exp less well than
 * the polynomial approximates exp), so at the same degree it is less accurate, and it carries no
 * certified bound.
 *
 * With N = tril?(U₁V₁ᵀ)·V and D̂ = tril?(U₁V₁ᵀ)·1: Ô = D̂⁻¹N, c = Ô − Y, ∂N = D̂⁻¹c,
 * ∂D̂ = −(c∘Ô)·1/D̂; then with G = ∂N·Vᵀ + ∂D̂·1ᵀ (never formed):
 * ∂U₁ = tril?(G)·V₁, ∂V₁ = tril?(G)ᵀ·U₁, ∂V = tril?(U₁V₁ᵀ)ᵀ·∂N, and ∂Q, ∂K̃ through the feature
 * maps; centering projects ∂K = (I − 11ᵀ/L)·∂K̃.
 */
export function autodiffHead<T extends DeviceMatrix>(backend: Backend<T>, input: HeadInput<T>, f: LowRankSoftmax<T>): HeadResult<T> {
  const { q, v, y, beta, causal } = input;
  const scope = scoped(backend);
  const output = applyF(scope, f, v);
  const c = scope.sub(output, y);
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
  const polynomial = f.plan.polynomial!;
  const dq = scope.productFeaturesBackward(q, featureTree(q.cols, polynomial, beta, 'query'), du);
  let dk = scope.productFeaturesBackward(f.keys, featureTree(q.cols, polynomial, beta, 'key'), dFeaturesK);
  if (f.plan.range.centered) {
    const mean = scope.affine(scope.colSums(dk), 1 / dk.rows);
    dk = scope.sub(dk, scope.matmul(onesColumn(scope, dk.rows, dk), mean));
  }
  scope.releaseAll([output, dq, dk, dv]);
  return { output, dq, dk, dv };
}
