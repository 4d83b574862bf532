import { assertFinite, assertShape, copy, InvalidArgumentError, type Matrix, ShapeError, toDType, zeros } from '@almora/tensor';
import { svd } from './linalg.js';
import { checkAdapterGradients, checkInit, type LoraMethod } from './method.js';

/**
 * The top-r left singular vectors (out×r, orthonormal columns) of the concatenation
 * [W₁ W₂ … W_k] of base weights with the same output size: the r-dimensional output subspace the
 * modules' weights have most in common, in the Frobenius sense (it maximises Σᵢ‖P·Wᵢ‖_F² over
 * rank-r orthogonal projectors P).
 *
 * @throws {ShapeError} when the weights' row counts differ; {@link InvalidArgumentError} for a bad r.
 */
export function commonSubspace(weights: readonly Matrix[], r: number): Matrix {
  if (weights.length === 0) throw new InvalidArgumentError('commonSubspace: needs at least one weight');
  const out = weights[0].rows;
  let cols = 0;
  for (const [i, w] of weights.entries()) {
    if (w.rows !== out) throw new ShapeError(`commonSubspace: weight ${i} has ${w.rows} rows, weight 0 has ${out}`);
    assertFinite(w, `commonSubspace: weight ${i}`);
    cols += w.cols;
  }
  if (!Number.isInteger(r) || r < 1 || r > Math.min(out, cols))
    throw new InvalidArgumentError(`commonSubspace: r must be an integer in [1, ${Math.min(out, cols)}], got ${r}`);
  const joined = zeros(out, cols);
  let at = 0;
  for (const w of weights) {
    for (let i = 0; i < out; i++) for (let j = 0; j < w.cols; j++) joined.set(i, at + j, w.get(i, j));
    at += w.cols;
  }
  return svd(joined, r).U;
}

/** Options of {@link cora}. */
export interface CoraOptions {
  /**
   * The shared basis B (out×r) for every module it is used with, e.g. {@link commonSubspace} of
   * the weights of all modules of one kind; default: the module's own top-r left singular
   * vectors of W.
   */
  basis?: Matrix;
  /** Train B too, the common subspace only its initialisation; default false (B fixed, half the parameters). */
  trainB?: boolean;
}

/**
 * CoRA, LoRA with B from a common subspace of the base weights (after "CoRA: Optimizing Low-Rank
 * Adaptation with Common Subspace of Large Language Models", 2024; we could not check its
 * authors, arXiv id or text, nor how it derives its common basis, so this is our reading,
 * stated exactly):
 *
 *   B = U_r  (top-r left singular vectors of W, or of [W₁ … W_k] across modules via
 *             {@link commonSubspace}),   A₀ = 0,   W_eff = W + s·B·A,
 *
 * with A trained (∂A = ∂lora_A = s·Bᵀ·∂W) and B fixed — the update then lives in the output
 * subspace the pretrained weights use most — or, with `trainB`, B trained from U_r too
 * (parameters [A, B], exact gradients). Why this reading: it is the choice that uses only the
 * pretrained weights (no data), makes B a basis shared across modules, and halves the trained
 * parameters when B is fixed, which is what the method's name promises.
 */
export function cora(options: CoraOptions = {}): LoraMethod {
  const { trainB = false } = options;
  return {
    name: 'cora',
    description: `CoRA: B from the common top-r left singular subspace of the base weights (${trainB ? 'trained' : 'fixed'}), A trains from 0`,
    needsInitialGradient: false,
    needsWeightGradient: false,
    init(init) {
      const { weight, scaling } = checkInit('cora', init);
      let lora_B: Matrix;
      if (options.basis) {
        assertShape(options.basis, weight.rows, init.r, 'cora: basis');
        assertFinite(options.basis, 'cora: basis');
        lora_B = copy(toDType(options.basis, 'float64'));
      } else {
        lora_B = svd(weight, init.r).U;
      }
      const lora_A = zeros(init.r, weight.cols);
      const adapter = () => ({ lora_A, lora_B });
      return {
        parameters: trainB ? [lora_A, lora_B] : [lora_A],
        scaling,
        adapter,
        gradients(g) {
          const d = checkAdapterGradients('cora', g, adapter());
          return trainB ? [d.lora_A, d.lora_B] : [d.lora_A];
        },
      };
    },
  };
}
