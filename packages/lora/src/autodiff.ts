import { fused } from '@almora/kernels';
import { type Backend, type DeviceMatrix, scoped } from '@almora/tensor';
import { type HeadGradients, type HeadInput, onesColumn } from './head.js';
import { blockedProducts, lowRankApply, lowRankApplyTransposed, type RowFactor, stored, wholeOf } from './low-rank.js';
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
  const { dq, dk: dkTilde, dv } = causal ? maskedFeatureGradients(scope, q, v, ones, f, dN, dD) : featureGradients(scope, q, v, ones, f, dN, dD);
  let dk = dkTilde;
  if (f.plan.range.centered) {
    const mean = scope.affine(scope.colSums(dk), 1 / dk.rows);
    dk = scope.sub(dk, scope.matmul(onesColumn(scope, dk.rows, dk), mean));
  }
  scope.releaseAll([dq, dk, dv]);
  return { dq, dk, dv };
}

/**
 * The unmasked backward in row blocks, so that neither the features nor their L×k gradients are
 * ever whole: with the k×d states S = V₁ᵀ[V | 1] and T = U₁ᵀ[∂N | ∂D̂],
 * ∂U₁ = ∂N·S_Vᵀ + ∂D̂·S_1ᵀ and ∂V₁ = V·T_Nᵀ + 1·T_Dᵀ block by block, each taken through the
 * feature map's backward at once, and ∂V = V₁·T_N. Every scope handle is the caller's to release.
 */
function featureGradients<T extends DeviceMatrix>(scope: Backend<T>, q: T, v: T, ones: T, f: LowRankSoftmax<T>, dN: T, dD: T): HeadGradients<T> {
  const [keysByValues, keysByOnes] = blockedProducts(scope, f.v, [v, ones]);
  const [queriesByN, queriesByD] = blockedProducts(scope, f.u, [dN, dD]);
  const dq = scope.zeros(q.rows, q.cols, q);
  const dk = scope.zeros(f.keys.rows, f.keys.cols, f.keys);
  const dv = scope.zeros(v.rows, v.cols, v);
  const blocks = scoped(scope);
  forBlocks(f.u, (s, e) => {
    const du = blocks.add(
      blocks.matmul(blocks.sliceRows(dN, s, e), keysByValues, { transposeB: true }),
      blocks.matmul(blocks.sliceRows(dD, s, e), keysByOnes, { transposeB: true }),
    );
    scope.accumulate(dq, fused(blocks).productFeaturesBackward(blocks.sliceRows(q, s, e), f.trees.query, du), s);
    blocks.releaseAll();
  });
  forBlocks(f.v, (s, e) => {
    const dFeatures = blocks.add(
      blocks.matmul(blocks.sliceRows(v, s, e), queriesByN, { transposeB: true }),
      blocks.matmul(blocks.sliceRows(ones, s, e), queriesByD, { transposeB: true }),
    );
    scope.accumulate(dk, fused(blocks).productFeaturesBackward(blocks.sliceRows(f.keys, s, e), f.trees.key, dFeatures), s);
    scope.accumulate(dv, blocks.matmul(f.v.block(blocks, s, e), queriesByN), s);
    blocks.releaseAll();
  });
  return { dq, dk, dv };
}

/** Calls `body(start, end)` for each row block of a factor: one block when it is stored. */
function forBlocks<T extends DeviceMatrix>(factor: RowFactor<T>, body: (start: number, end: number) => void): void {
  const step = factor.whole ? factor.rows : factor.blockRows;
  for (let s = 0; s < factor.rows; s += step) body(s, Math.min(s + step, factor.rows));
}

/** The causal backward over stored features: the masked products keep prefix (and suffix) states block by block. */
function maskedFeatureGradients<T extends DeviceMatrix>(scope: Backend<T>, q: T, v: T, ones: T, f: LowRankSoftmax<T>, dN: T, dD: T): HeadGradients<T> {
  const [u, keyFeatures] = [wholeOf(f.u), wholeOf(f.v)];
  const du = scope.add(lowRankApply(scope, stored(dN), stored(v), keyFeatures, true), lowRankApply(scope, stored(dD), stored(ones), keyFeatures, true));
  const dFeaturesK = scope.add(lowRankApplyTransposed(scope, stored(dN), stored(v), u, true), lowRankApplyTransposed(scope, stored(dD), stored(ones), u, true));
  const dv = lowRankApplyTransposed(scope, f.u, f.v, dN, true);
  const kernels = fused(scope);
  return { dq: kernels.productFeaturesBackward(q, f.trees.query, du), dk: kernels.productFeaturesBackward(f.keys, f.trees.key, dFeaturesK), dv };
}
