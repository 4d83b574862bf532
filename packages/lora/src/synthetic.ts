import { add, full, matmul, type Matrix, maxAbs, randomNormal, type Rng, scale } from '@almora/tensor';
import type { LoraProblem, Target } from './problem.js';

/** Shape and regime of a {@link syntheticProblem}. */
export interface SyntheticProblemSpec {
  /** Sequence length L. */
  length: number;
  /** Model (and head) dimension d. */
  d: number;
  /** LoRA rank r. */
  rank: number;
  /** The adapted weights: ['q', 'v'] (partial) or ['q', 'k', 'v'] (full). */
  targets: readonly Target[];
  /** The paper's Γ = max(‖√β·Q‖∞, ‖√β·K‖∞), set exactly by scaling X. */
  gamma: number;
  /** A component every token shares, added to X before scaling: keys then share a mean. */
  sharedOffset?: number;
}

/**
 * A single-head LoRA attention problem at a chosen point of the paper's phase diagram: seeded
 * random X, W*, adapters (nonzero, so every gradient is) and target, with X scaled so that Γ is
 * exactly `spec.gamma`. β = 1/√d, α = 2r. The same spec and seed give the same problem everywhere.
 *
 * @example
 * ```ts
 * import { loraGradients, relativeGradientError, syntheticProblem } from '@almora/lora';
 * import { Rng } from '@almora/tensor';
 *
 * // Past √log L (≈ 2.6 at L = 1,024) a low degree stops being accurate: the phase transition.
 * for (const gamma of [0.5, 3]) {
 *   const problem = syntheticProblem({ length: 1024, d: 8, rank: 2, targets: ['q', 'v'], gamma }, new Rng(1));
 *   const exact = loraGradients(problem, { method: 'exact' });
 *   const fast = loraGradients(problem, { method: 'fast', degree: 2 });
 *   console.log(gamma, relativeGradientError(fast.grads, exact.grads).toExponential(1)); // small at Γ = 0.5, large at Γ = 3
 * }
 * ```
 */
export function syntheticProblem(spec: SyntheticProblemSpec, rng: Rng): LoraProblem {
  const { length, d, rank } = spec;
  const rawX = randomNormal(length, d, rng);
  const x0 = spec.sharedOffset ? add(rawX, full(length, d, spec.sharedOffset)) : rawX;
  const weight = () => scale(randomNormal(d, d, rng), 1 / Math.sqrt(d));
  const weights = { q: weight(), k: weight(), v: weight() };
  const adapters: LoraProblem['adapters'] = {};
  for (const t of spec.targets) adapters[t] = { a: scale(randomNormal(rank, d, rng), 0.2), b: scale(randomNormal(d, rank, rng), 0.2) };
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

/** max|Ĝ − G| / max|G| over every adapter gradient: the error measure of every accuracy claim. */
export function relativeGradientError(
  approximate: Partial<Record<Target, { a: Matrix; b: Matrix }>>,
  reference: Partial<Record<Target, { a: Matrix; b: Matrix }>>,
): number {
  let worst = 0;
  for (const t of Object.keys(reference) as Target[]) {
    for (const which of ['a', 'b'] as const) {
      const e = reference[t]![which];
      const f = approximate[t]![which];
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
