import type { LoraWeights } from '@almora/lora';
import { addInto, matmul, type Matrix, scale } from '@almora/tensor';
import type { ScaledAdapter } from './lora.js';

/** What {@link linearForward} keeps for the backward pass. */
export interface LinearState {
  /** The input x (T×in). */
  x: Matrix;
  /** x·lora_Aᵀ (T×r), when the module is adapted. */
  xa: Matrix | undefined;
}

/**
 * A LoRA-adapted torch.nn.Linear without bias, as PEFT computes it: y = x·Wᵀ + s·(x·lora_Aᵀ)·lora_Bᵀ,
 * s = lora_alpha/r (the adapter's own scaling); W out×in, lora_A r×in, lora_B out×r. The update is
 * never formed as a matrix.
 */
export function linearForward(x: Matrix, weight: Matrix, scaled: ScaledAdapter | undefined): { y: Matrix; state: LinearState } {
  const y = matmul(x, weight, { transposeB: true });
  if (!scaled) return { y, state: { x, xa: undefined } };
  const { weights: adapter, scaling } = scaled;
  const xa = matmul(x, adapter.lora_A, { transposeB: true });
  addInto(y, scale(matmul(xa, adapter.lora_B, { transposeB: true }), scaling));
  return { y, state: { x, xa } };
}

/** What {@link linearBackward} returns. */
export interface LinearGradients {
  /** ∂loss/∂x = ∂y·W + s·(∂y·lora_B)·lora_A. */
  dx: Matrix;
  /** ∂loss/∂lora_A = s·(∂y·lora_B)ᵀ·x (r×in) and ∂loss/∂lora_B = s·∂yᵀ·(x·lora_Aᵀ) (out×r), when adapted. */
  adapter: LoraWeights | undefined;
  /** ∂loss/∂W = ∂yᵀ·x (out×in), when asked for. */
  weight: Matrix | undefined;
}

/** The vector-Jacobian product of {@link linearForward} for ∂loss/∂y. */
export function linearBackward(dy: Matrix, state: LinearState, weight: Matrix, scaled: ScaledAdapter | undefined, weightGradient: boolean): LinearGradients {
  const dx = matmul(dy, weight);
  let grads: LoraWeights | undefined;
  if (scaled && state.xa) {
    const { weights: adapter, scaling } = scaled;
    const dyb = matmul(dy, adapter.lora_B);
    addInto(dx, scale(matmul(dyb, adapter.lora_A), scaling));
    grads = { lora_A: scale(matmul(dyb, state.x, { transposeA: true }), scaling), lora_B: scale(matmul(dy, state.xa, { transposeA: true }), scaling) };
  }
  return { dx, adapter: grads, weight: weightGradient ? matmul(dy, state.x, { transposeA: true }) : undefined };
}
