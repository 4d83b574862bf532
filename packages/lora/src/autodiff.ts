import { polynomialFeaturesBackward } from '@almora/kernels';
import { colSums, copy, type Matrix, sliceCols, sub, zeros } from '@almora/tensor';
import type { HeadInput, HeadResult } from './head.js';
import { lowRankApply, lowRankApplyTransposed, stored } from './low-rank.js';
import type { LowRankSoftmax } from './softmax-factors.js';

/** [M, 1]: M with a column of ones appended, so numerator and row sums come out of one product. */
function withOnes(m: Matrix): Matrix {
  const out = zeros(m.rows, m.cols + 1, { dtype: m.dtype });
  for (let i = 0; i < m.rows; i++) {
    const base = m.offset + i * m.stride;
    for (let j = 0; j < m.cols; j++) out.data[i * (m.cols + 1) + j] = m.data[base + j];
    out.data[i * (m.cols + 1) + m.cols] = 1;
  }
  return out;
}

/**
 * One head's gradients as the exact reverse-mode derivative of the approximated forward pass
 * Ô = D̂⁻¹·tril?(U₁V₁ᵀ)·V, U₁ = φ(Q), V₁ = φ(K̃): O(L·k·d), a factor d cheaper than the chained
 * variant, but it differentiates the polynomial (whose derivative approximates exp less well than
 * the polynomial approximates exp), so at the same degree it is less accurate, and it carries no
 * certified bound.
 *
 * With M = [V, 1] and N' = tril?(U₁V₁ᵀ)M = [N, D̂]: Ô = D̂⁻¹N, c = Ô − Y,
 * ∂N = D̂⁻¹c, ∂D̂ = −(c∘Ô)·1/D̂, ∂N' = [∂N, ∂D̂], then
 * ∂U₁ = tril?(∂N'·Mᵀ)·V₁, ∂V₁ = tril?(∂N'·Mᵀ)ᵀ·U₁, ∂M = tril?(U₁V₁ᵀ)ᵀ·∂N',
 * and ∂Q, ∂K̃ through the feature maps; centering projects ∂K = (I − 11ᵀ/L)·∂K̃.
 */
export function autodiffHead(input: HeadInput, f: LowRankSoftmax): HeadResult {
  const { q, v, y, beta, causal } = input;
  const d = v.cols;
  const augmented = withOnes(v);
  const numerator = lowRankApply(stored(f.u), stored(f.v), augmented, causal);
  const dtype = q.dtype;
  const output = zeros(q.rows, d, { dtype });
  const dAugmented = zeros(q.rows, d + 1, { dtype });
  let loss = 0;
  for (let i = 0; i < q.rows; i++) {
    const inverse = f.inverseRowSums[i];
    let dot = 0;
    for (let l = 0; l < d; l++) {
      const o = numerator.data[i * (d + 1) + l] * inverse;
      const c = o - y.data[y.offset + i * y.stride + l];
      output.data[i * d + l] = o;
      loss += 0.5 * c * c;
      dot += c * o;
      dAugmented.data[i * (d + 1) + l] = c * inverse;
    }
    dAugmented.data[i * (d + 1) + d] = -dot * inverse;
  }
  const du = lowRankApply(stored(dAugmented), stored(augmented), f.v, causal);
  const dFeaturesK = lowRankApplyTransposed(stored(dAugmented), stored(augmented), f.u, causal);
  const dv = sliceCols(lowRankApplyTransposed(stored(f.u), stored(f.v), dAugmented, causal), 0, d);
  const polynomial = f.plan.polynomial!;
  const dq = polynomialFeaturesBackward(q, polynomial, beta, 'query', du);
  let dk = polynomialFeaturesBackward(f.keys, polynomial, beta, 'key', dFeaturesK);
  if (f.plan.range.centered) {
    const mean = Float64Array.from(colSums(dk), (s) => s / dk.rows);
    const rowOfMeans = zeros(dk.rows, dk.cols, { dtype });
    for (let i = 0; i < dk.rows; i++) rowOfMeans.data.set(mean, i * dk.cols);
    dk = sub(dk, rowOfMeans);
  }
  return { loss, output, dq, dk, dv: copy(dv) };
}
