import { abs, addInto, matmul, type Matrix, scale, zeros } from '@almora/tensor';
import type { Reading } from './head.js';
import type { DenseProducts } from './products.js';

/** A LoRA adapter in PEFT's names and orientation: W_eff = W + (alpha/r)·lora_B·lora_A. */
export interface LoraWeights {
  /** lora_A (r×in). */
  lora_A: Matrix;
  /** lora_B (out×r). */
  lora_B: Matrix;
}

/** W + scaling·lora_B·lora_A, the weight a LoRA-adapted torch.nn.Linear applies (out×in). */
export function effectiveWeight(weight: Matrix, adapter: LoraWeights | undefined, scaling: number): Matrix {
  if (!adapter) return weight;
  const delta = matmul(adapter.lora_B, adapter.lora_A);
  const out = zeros(weight.rows, weight.cols, { dtype: weight.dtype });
  addInto(out, weight);
  addInto(out, scale(delta, scaling));
  return out;
}

/**
 * ∂loss/∂W = Σ_n ∂Y_nᵀ·X_n (out×in) for a linear map Y = X·Wᵀ applied to every sequence; with
 * `absolute`, |∂Y|ᵀ·|X| (∂Y is a bound, already ≥ 0) — how an entrywise bound on ∂Y carries over
 * to ∂W. The products run where `products` puts them.
 */
export function* linearWeightGradient(
  products: DenseProducts,
  inputs: readonly Matrix[],
  outputGradients: readonly Matrix[],
  absolute = false,
): Reading<Matrix> {
  const first = outputGradients[0];
  const total = zeros(first.cols, inputs[0].cols, { dtype: first.dtype });
  for (let n = 0; n < inputs.length; n++) addInto(total, yield* products.matmul(outputGradients[n], inputs[n], { transposeA: true }, absolute));
  return total;
}

/**
 * The LoRA chain rule from the weight gradient ∂W (out×in): ∂lora_A = s·lora_Bᵀ·∂W (r×in) and
 * ∂lora_B = s·∂W·lora_Aᵀ (out×r), s = alpha/r. With `absolute`, |lora_B|ᵀ·∂W and ∂W·|lora_A|ᵀ
 * scaled — how an entrywise bound on ∂W carries over to the adapter.
 */
export function adapterGradients(weightGradient: Matrix, adapter: LoraWeights, scaling: number, absolute = false): LoraWeights {
  const [a, b] = absolute ? [abs(adapter.lora_A), abs(adapter.lora_B)] : [adapter.lora_A, adapter.lora_B];
  return {
    lora_A: scale(matmul(b, weightGradient, { transposeA: true }), scaling),
    lora_B: scale(matmul(weightGradient, a, { transposeB: true }), scaling),
  };
}
