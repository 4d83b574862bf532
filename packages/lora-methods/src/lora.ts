import { randomUniform, zeros } from '@almora/tensor';
import { checkAdapterGradients, checkInit, type LoraMethod, type MethodInit, type ModuleMethodState } from './method.js';

/**
 * Plain LoRA (Hu et al. 2021, arXiv 2106.09685) with PEFT's default init, the reference every
 * other method is measured against:
 *
 *   W_eff = W + s·B·A,  s = lora_alpha / r,
 *   A₀ ~ U(−1/√in, 1/√in)  (torch's kaiming_uniform_ with a = √5, as PEFT's `init_lora_weights=True`),
 *   B₀ = 0,
 *   parameters [A, B] with their exact gradients ∂A = s·Bᵀ·∂W, ∂B = s·∂W·Aᵀ (what the model's
 *   backward already returns as ∂lora_A, ∂lora_B; passed through unchanged).
 */
export function loraState(options: MethodInit, method = 'lora'): ModuleMethodState {
  const { weight, scaling } = checkInit(method, options);
  const bound = 1 / Math.sqrt(weight.cols);
  const lora_A = randomUniform(options.r, weight.cols, options.rng, { low: -bound, high: bound });
  const lora_B = zeros(weight.rows, options.r);
  const adapter = () => ({ lora_A, lora_B });
  return {
    parameters: [lora_A, lora_B],
    scaling,
    adapter,
    gradients(adapterGradients) {
      const g = checkAdapterGradients(method, adapterGradients, adapter());
      return [g.lora_A, g.lora_B];
    },
  };
}

/** Plain LoRA with PEFT's default init (see {@link loraState}). */
export const lora: LoraMethod = {
  name: 'lora',
  description: "plain LoRA, PEFT's default init: A Kaiming-uniform, B = 0; A and B train",
  needsInitialGradient: false,
  needsWeightGradient: false,
  init: (options) => loraState(options),
};
