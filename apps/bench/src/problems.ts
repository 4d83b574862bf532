import type { Rng } from '@almora/tensor';
import { syntheticProblem, type LoraProblem, type Target } from '@almora/lora';

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
