import type { LoraWeights } from '@almora/lora';
import { add, InvalidArgumentError, matmul, type Matrix, scale, sub } from '@almora/tensor';
import { pseudoInverse, svd } from './linalg.js';
import { loraState } from './lora.js';
import { checkAdapterGradients, type LoraMethod } from './method.js';

/** Options of {@link loraPro}. */
export interface LoraProOptions {
  /**
   * The free r×r term X of the solution set (every X gives the same equivalent gradient):
   * 'closest' (default, the paper's choice) makes (g_A, g_B) the closest to plain LoRA's
   * gradients; 'zero' takes X = 0.
   */
  x?: 'closest' | 'zero';
}

/**
 * X solving the Sylvester equation P·X + X·Q = C for symmetric positive semi-definite P, Q:
 * with P = Φ·diag(p)·Φᵀ and Q = Ψ·diag(q)·Ψᵀ, X = Φ·[(ΦᵀCΨ)ᵢⱼ / (pᵢ + qⱼ)]·Ψᵀ, a zero
 * denominator giving 0 (the minimum-norm solution when P and Q share a null direction).
 */
function sylvesterPsd(p: Matrix, q: Matrix, c: Matrix): Matrix {
  const ep = svd(p);
  const eq = svd(q);
  // For a symmetric PSD matrix, M = V·diag(σ)·Vᵀ with V its right singular vectors.
  const inner = matmul(matmul(ep.V, c, { transposeA: true }), eq.V);
  const top = Math.max(ep.S[0] ?? 0, eq.S[0] ?? 0);
  for (let i = 0; i < inner.rows; i++) {
    for (let j = 0; j < inner.cols; j++) {
      const d = ep.S[i] + eq.S[j];
      inner.set(i, j, d > top * 1e-14 && d > 0 ? inner.get(i, j) / d : 0);
    }
  }
  return matmul(matmul(ep.V, inner), eq.V, { transposeB: true });
}

/**
 * LoRA-Pro's gradient transform (Wang et al., "LoRA-Pro: Are Low-Rank
 * Adapters Properly Optimized?", ICLR 2025, arXiv 2407.18242). A step (−η·g_A, −η·g_B) of the
 * adapter changes W_eff, to first order, by −η·g̃ with the equivalent gradient
 *
 *   g̃ = s·(B·g_A + g_B·A).
 *
 * LoRA-Pro picks (g_A, g_B) minimising ‖g̃ − g‖_F, g = ∂W the full-weight gradient. With
 * P_B = B(BᵀB)⁻¹Bᵀ and P_A = Aᵀ(AAᵀ)⁻¹A the projectors onto col(B) and row(A), the minimisers
 * are, for any r×r X,
 *
 *   g_A = (1/s)·(BᵀB)⁻¹·Bᵀ·g + X·A                 = (1/s²)·(BᵀB)⁻¹·∂lora_A + X·A,
 *   g_B = (1/s)·(I − P_B)·g·Aᵀ·(AAᵀ)⁻¹ − B·X       = (1/s²)·(I − P_B)·∂lora_B·(AAᵀ)⁻¹ − B·X,
 *
 * (the second forms use plain LoRA's ∂lora_A = s·Bᵀg and ∂lora_B = s·g·Aᵀ, so ∂W itself is never
 * needed) and then g̃ = P_B·g + (I − P_B)·g·P_A = P_B·g + g·P_A − P_B·g·P_A. Checking the powers
 * of s: s·B·g_A = P_B·g and s·g_B·A = (I − P_B)·g·P_A, as the definition of g̃ requires.
 * The paper's X minimises ‖g_A − ∂lora_A‖² + ‖g_B − ∂lora_B‖², the Sylvester equation
 *
 *   BᵀB·X + X·AAᵀ = −(1/s²)·(BᵀB)⁻¹·∂lora_A·Aᵀ.
 *
 * Where BᵀB or AAᵀ is singular (B = 0 at PEFT's init) the inverses are Moore–Penrose
 * pseudo-inverses: P_B stays the orthogonal projector, so g̃ is still the Frobenius-closest.
 * Not here: the paper's equivalent treatment of AdamW's moments (an optimizer concern).
 */
export function loraProGradients(adapter: LoraWeights, adapterGradients: LoraWeights, scaling: number, x: 'closest' | 'zero' = 'closest'): LoraWeights {
  if (!(Number.isFinite(scaling) && scaling > 0)) throw new InvalidArgumentError(`lora-pro: scaling must be finite and > 0, got ${scaling}`);
  const d = checkAdapterGradients('lora-pro', adapterGradients, adapter);
  const { lora_A: a, lora_B: b } = adapter;
  const bb = matmul(b, b, { transposeA: true });
  const aa = matmul(a, a, { transposeB: true });
  const bbInv = pseudoInverse(bb);
  const aaInv = pseudoInverse(aa);
  const k = 1 / (scaling * scaling);
  const gA0 = scale(matmul(bbInv, d.lora_A), k);
  // (I − P_B)·∂lora_B = ∂lora_B − B·(BᵀB)⁺·Bᵀ·∂lora_B.
  const projected = sub(d.lora_B, matmul(b, matmul(bbInv, matmul(b, d.lora_B, { transposeA: true }))));
  const gB0 = scale(matmul(projected, aaInv), k);
  if (x === 'zero') return { lora_A: gA0, lora_B: gB0 };
  if (x !== 'closest') throw new InvalidArgumentError(`lora-pro: x must be 'closest' or 'zero', got ${String(x)}`);
  const X = sylvesterPsd(bb, aa, scale(matmul(gA0, a, { transposeB: true }), -1));
  return { lora_A: add(gA0, matmul(X, a)), lora_B: sub(gB0, matmul(b, X)) };
}

/** LoRA-Pro: plain LoRA's parameters and init, with {@link loraProGradients} as the update. */
export function loraPro(options: LoraProOptions = {}): LoraMethod {
  const { x = 'closest' } = options;
  if (x !== 'closest' && x !== 'zero') throw new InvalidArgumentError(`lora-pro: x must be 'closest' or 'zero', got ${String(x)}`);
  return {
    name: 'lora-pro',
    description: 'LoRA-Pro: A, B train with the gradients whose equivalent full-weight gradient is closest to ∂W',
    needsInitialGradient: false,
    needsWeightGradient: false,
    init(init) {
      const state = loraState(init, 'lora-pro');
      return {
        ...state,
        gradients(adapterGradients) {
          const g = loraProGradients(state.adapter(), adapterGradients, state.scaling, x);
          return [g.lora_A, g.lora_B];
        },
      };
    },
  };
}
