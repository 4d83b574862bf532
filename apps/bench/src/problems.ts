import { add, full, matmul, type Matrix, maxAbs, randomNormal, type Rng, scale } from '@almora/tensor';
import type { LoraProblem, Target } from '@almora/lora';

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

/**
 * A single-head LoRA attention problem with seeded random X, W*, adapters and target, X scaled so
 * that Γ equals `spec.gamma` exactly. β = 1/√d, α = 2r, adapters nonzero so every gradient is.
 */
export function benchProblem(spec: ProblemSpec, rng: Rng): LoraProblem {
  const { length, d, rank } = spec;
  const rawX = randomNormal(length, d, rng);
  const x0 = spec.sharedOffset ? add(rawX, full(length, d, spec.sharedOffset)) : rawX;
  const weight = () => scale(randomNormal(d, d, rng), 1 / Math.sqrt(d));
  const weights = { q: weight(), k: weight(), v: weight() };
  const adapters: LoraProblem['adapters'] = {};
  for (const t of ADAPTED[spec.adaptation]) adapters[t] = { a: scale(randomNormal(rank, d, rng), 0.2), b: scale(randomNormal(d, rank, rng), 0.2) };
  const alpha = 2 * rank;
  const beta = 1 / Math.sqrt(d);
  const effective = (t: Target): Matrix => {
    const adapter = adapters[t];
    return adapter ? add(weights[t], scale(matmul(adapter.b, adapter.a), alpha / rank)) : weights[t];
  };
  const gamma0 = Math.sqrt(beta) * Math.max(maxAbs(matmul(x0, effective('q'))), maxAbs(matmul(x0, effective('k'))));
  const x = scale(x0, spec.gamma / gamma0);
  return { x, target: randomNormal(length, d, rng), weights, adapters, alpha, beta };
}

/** max|a − b| / max|b| over every adapter gradient: the error measure of every accuracy claim here. */
export function relativeGradientError(
  fast: Partial<Record<Target, { a: Matrix; b: Matrix }>>,
  exact: Partial<Record<Target, { a: Matrix; b: Matrix }>>,
): number {
  let worst = 0;
  for (const t of Object.keys(exact) as Target[]) {
    for (const which of ['a', 'b'] as const) {
      const e = exact[t]![which];
      const f = fast[t]![which];
      let num = 0;
      let den = 0;
      for (let i = 0; i < e.data.length; i++) {
        num = Math.max(num, Math.abs(f.data[i] - e.data[i]));
        den = Math.max(den, Math.abs(e.data[i]));
      }
      worst = Math.max(worst, den === 0 ? num : num / den);
    }
  }
  return worst;
}
