import { identity, type Matrix, sub, transpose, type Rng } from '@almora/tensor';
import { loraAttention, syntheticProblem, type AttentionLayer, type LayerOptions, type LoraProblem, type Target } from '@almora/lora';

/** Partial adaptation adapts W_Q and W_V (the paper's Section 3); full adapts W_Q, W_K and W_V (its Appendix A). */
export type Adaptation = 'partial' | 'full';

/** The adapted targets of each adaptation case. */
export const ADAPTED: Record<Adaptation, Target[]> = { partial: ['q', 'v'], full: ['q', 'k', 'v'] };

/** Shape and regime of a benchmark problem. */
export interface ProblemSpec {
  length: number;
  d: number;
  rank: number;
  adaptation: Adaptation;
  /** The paper's Γ = max(‖√β·Q‖∞, ‖√β·K‖∞), set exactly by scaling X. */
  gamma: number;
  /** A component every token shares (added to X before scaling); keys then share a mean. */
  sharedOffset?: number;
}

/** A single-head problem at Γ = `spec.gamma` exactly: @almora/lora's `syntheticProblem`. */
export function benchProblem(spec: ProblemSpec, rng: Rng): LoraProblem {
  return syntheticProblem({ ...spec, targets: ADAPTED[spec.adaptation] }, rng);
}

const MODULE: Record<Target, 'q_proj' | 'k_proj' | 'v_proj'> = { q: 'q_proj', k: 'k_proj', v: 'v_proj' };

/**
 * The same single-sequence problem as a PEFT-shaped attention layer: weights transposed to
 * torch.nn.Linear's out×in, lora_A = Bᵀ, lora_B = Aᵀ, and o_proj = I, so the layer's output is O.
 */
export function layerOf(problem: LoraProblem): AttentionLayer {
  const adapters: NonNullable<AttentionLayer['lora']>['adapters'] = {};
  for (const [t, adapter] of Object.entries(problem.adapters) as [Target, { a: Matrix; b: Matrix }][]) {
    adapters[MODULE[t]] = { lora_A: transpose(adapter.b), lora_B: transpose(adapter.a) };
  }
  const { q, k, v } = problem.weights;
  return {
    heads: problem.heads ?? 1,
    causal: problem.causal,
    beta: problem.beta,
    weights: { q_proj: transpose(q), k_proj: transpose(k), v_proj: transpose(v), o_proj: identity(q.cols) },
    lora: { r: Object.values(problem.adapters)[0]!.a.rows, alpha: problem.alpha, adapters },
  };
}

/**
 * The layer API on the problem's loss: forward, the upstream gradient ∂O = O − Y, backward; the
 * adapter gradients returned in the paper's orientation (A = lora_Bᵀ, B = lora_Aᵀ) for comparison.
 */
export function layerGradients(layer: AttentionLayer, problem: LoraProblem, options: LayerOptions): Partial<Record<Target, { a: Matrix; b: Matrix }>> {
  const x = problem.x as Matrix;
  const forward = loraAttention(layer, x, options);
  const { grads } = forward.backward(sub(forward.output, problem.target as Matrix));
  const out: Partial<Record<Target, { a: Matrix; b: Matrix }>> = {};
  for (const t of Object.keys(problem.adapters) as Target[]) out[t] = { a: transpose(grads[MODULE[t]]!.lora_B), b: transpose(grads[MODULE[t]]!.lora_A) };
  return out;
}
