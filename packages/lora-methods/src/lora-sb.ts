import { InvalidArgumentError, matmul, scale, transpose, zeros } from '@almora/tensor';
import { svd } from './linalg.js';
import { checkAdapterGradients, checkInit, type LoraMethod, requireInitialGradient } from './method.js';

/** Options of {@link loraSb}. */
export interface LoraSbOptions {
  /**
   * γ, the size of R's initialisation: s·B·R₀·A = s·γ·[−∂W]_r, the best rank-r approximation of
   * a full fine-tuning step of size s·γ. 0 starts from the base model (R₀ = 0). Default 1.
   */
  gamma?: number;
}

/**
 * LoRA-SB (Ponkshe et al., "Initialization using
 * Update Approximation is a Silver Bullet for Extreme Efficient Low-Rank Fine-Tuning", 2024,
 * arXiv 2411.19557): W_eff = W + s·B·R·A with B (out×r) and A (r×in) fixed and only the r×r
 * core R trained — r² parameters per module, independent of its width.
 *
 * Initialisation from the first-step gradient G = ∂W, U·S·Vᵀ = SVD(−G):
 *
 *   B = U_r,  A = V_rᵀ  (fixed, orthonormal),   R₀ = γ·S_r  (trained),
 *
 * so every update stays in span: col(ΔW) ⊆ col(U_r), row(ΔW) ⊆ row(V_rᵀ).
 * The adapter the model runs with is { lora_A: A, lora_B: B·R }, so by the chain rule through
 * lora_B = B·R,
 *
 *   ∂R = Bᵀ·∂lora_B   (= s·Bᵀ·∂W·Aᵀ).
 *
 * Uncertain details: the paper approximates the full fine-tuning update over a few first steps
 * (with the optimizer's own first step, e.g. Adam's sign-like update, in its experiments) and
 * folds the learning rate into R₀; here R₀ = γ·S_r of the one gradient given, γ a plain option.
 */
export function loraSb(options: LoraSbOptions = {}): LoraMethod {
  const { gamma = 1 } = options;
  if (!(Number.isFinite(gamma) && gamma >= 0)) throw new InvalidArgumentError(`lora-sb: gamma must be finite and ≥ 0, got ${gamma}`);
  return {
    name: 'lora-sb',
    description: 'LoRA-SB: A, B fixed from the SVD of the first-step gradient; only the r×r core R trains',
    needsInitialGradient: true,
    needsWeightGradient: false,
    init(init) {
      const { weightGradient, scaling } = checkInit('lora-sb', init);
      const g = requireInitialGradient('lora-sb', weightGradient);
      const { U, S, V } = svd(scale(g, -1), init.r);
      const lora_A = transpose(V);
      const core = zeros(init.r, init.r);
      for (let i = 0; i < init.r; i++) core.set(i, i, gamma * S[i]);
      const adapter = () => ({ lora_A, lora_B: matmul(U, core) });
      return {
        parameters: [core],
        scaling,
        adapter,
        gradients(adapterGradients) {
          const d = checkAdapterGradients('lora-sb', adapterGradients, adapter());
          return [matmul(U, d.lora_B, { transposeA: true })];
        },
      };
    },
  };
}
