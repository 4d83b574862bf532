import { add, identity, InvalidArgumentError, matmul, scale, scaleCols, scaleRows, transpose } from '@almora/tensor';
import { spdSolve, svd } from './linalg.js';
import { checkAdapterGradients, checkInit, type LoraMethod, requireInitialGradient } from './method.js';

/** Options of {@link loraOne}. */
export interface LoraOneOptions {
  /**
   * γ, the size of the spectral initialisation: s·B₀·A₀ = s·γ·[−∂W]_r. It plays the role of the
   * one step's learning rate; default 1.
   */
  gamma?: number;
  /** λ > 0 of the preconditioners (BᵀB + λI)⁻¹ and (AAᵀ + λI)⁻¹; default 1e-6. */
  lambda?: number;
}

/**
 * LoRA-One (Zhang, Liu and Chen, "One-Step Full Gradient Could Suffice for Fine-Tuning Large
 * Language Models, Provably and Efficiently", ICML 2025, arXiv 2502.01235): spectral
 * initialisation from the one-step full gradient, then preconditioned gradient steps.
 *
 * Initialisation, with G = ∂W the full fine-tuning gradient at the base weight on a batch (the training loop draws a probe batch)
 * and U·S·Vᵀ = SVD(−G):
 *
 *   B₀ = √γ·U_r·S_r^{1/2}   (out×r),
 *   A₀ = √γ·S_r^{1/2}·V_rᵀ  (r×in),
 *
 * so the adapter's first update s·B₀·A₀ = s·γ·U_r·S_r·V_rᵀ is the best rank-r approximation of
 * the full-gradient step −G (Eckart–Young), and col(B₀) / row(A₀) are −G's top-r left / right
 * singular subspaces. W itself is not changed (unlike LoRA-GA, nothing is subtracted).
 *
 * Update (preconditioned, scaled-GD style):
 *
 *   A ← A − η·(BᵀB + λI)⁻¹·∂A,   B ← B − η·∂B·(AAᵀ + λI)⁻¹,
 *
 * i.e. `gradients` returns [(BᵀB + λI)⁻¹·∂A, ∂B·(AAᵀ + λI)⁻¹] for parameters [A, B].
 *
 * Uncertain details (stated, not guessed silently): the split of S_r^{1/2} between the factors
 * and the name γ follow our reading of the paper's Algorithm 1; the default γ = 1 and λ = 1e-6
 * are this package's choices, not the paper's tuned values. Where the paper's own code applies
 * the preconditioner inside AdamW rather than to the raw gradient, this returns the
 * preconditioned gradient for whatever optimizer the loop runs.
 */
export function loraOne(options: LoraOneOptions = {}): LoraMethod {
  const { gamma = 1, lambda = 1e-6 } = options;
  if (!(Number.isFinite(gamma) && gamma > 0)) throw new InvalidArgumentError(`lora-one: gamma must be finite and > 0, got ${gamma}`);
  if (!(Number.isFinite(lambda) && lambda > 0)) throw new InvalidArgumentError(`lora-one: lambda must be finite and > 0, got ${lambda}`);
  return {
    name: 'lora-one',
    description: 'LoRA-One: A, B from the top-r SVD of the one-step full gradient −∂W, preconditioned updates',
    needsInitialGradient: true,
    needsWeightGradient: false,
    init(init) {
      const { weightGradient, scaling } = checkInit('lora-one', init);
      const g = requireInitialGradient('lora-one', weightGradient);
      const { U, S, V } = svd(scale(g, -1), init.r);
      const root = Float64Array.from(S, (sigma) => Math.sqrt(gamma * sigma));
      const lora_B = scaleCols(U, root);
      const lora_A = scaleRows(transpose(V), root);
      const adapter = () => ({ lora_A, lora_B });
      const ridge = scale(identity(init.r), lambda);
      return {
        parameters: [lora_A, lora_B],
        scaling,
        adapter,
        gradients(adapterGradients) {
          const d = checkAdapterGradients('lora-one', adapterGradients, adapter());
          const bb = add(matmul(lora_B, lora_B, { transposeA: true }), ridge);
          const aa = add(matmul(lora_A, lora_A, { transposeB: true }), ridge);
          // ∂B·(AAᵀ + λI)⁻¹ = ((AAᵀ + λI)⁻¹·∂Bᵀ)ᵀ, the matrix being symmetric.
          return [spdSolve(bb, d.lora_A), transpose(spdSolve(aa, transpose(d.lora_B)))];
        },
      };
    },
  };
}
