import { assertFinite, InvalidArgumentError, type Matrix } from '@almora/tensor';
import { apportion, type RankAllocation } from './allocation.js';
import { svd } from './linalg.js';

/** What {@link subloraRanks} allocates from. */
export interface SubloraInput {
  /** ∂loss/∂W (out×in) of each adapted module, by module path (e.g. the model's `weightGradients`). */
  gradients: Readonly<Record<string, Matrix>>;
  /**
   * The isotropic curvature c_m > 0 of each module's quadratic model; by default the mean of
   * the empirical Fisher diagonal, c_m = mean(∂W ⊙ ∂W) (the gradient outer product's diagonal).
   */
  curvature?: Readonly<Record<string, number>>;
  /** Σ r over the modules. */
  budget: number;
}

/** A SubLoRA allocation, with the greedy's gains in the order it took the units. */
export interface SubloraAllocation extends RankAllocation {
  /** The marginal gain of each rank unit the greedy added after every module's first, in order: non-increasing. */
  gains: number[];
}

/**
 * SubLoRA-style rank allocation by greedy maximisation of a second-order gain. Objective, exactly:
 * with each module's loss modelled to second order as L(W + Δ) ≈ L + ⟨G_m, Δ⟩ + (c_m/2)·‖Δ‖_F²
 * (G_m = ∂W, c_m an isotropic curvature), the best rank-r_m update decreases it by
 *
 *   f_m(r_m) = (1/(2c_m))·Σ_{k ≤ r_m} σ_k(G_m)²   (Eckart–Young on the Newton step −G_m/c_m),
 *
 * and the allocation maximises F(r) = Σ_m f_m(r_m) subject to Σ r_m = budget, 1 ≤ r_m ≤ min(out, in).
 * A "rank unit" is one more singular direction of one module; its marginal gain σ_{r+1}²/(2c_m)
 * never grows with r, so F is a separable concave (diminishing-returns, submodular on unit sets)
 * function and taking the unit of largest gain, one at a time, is optimal. Every module first
 * gets one unit. Ties go to the module named first. `scores` are f_m at the allocated ranks.
 *
 * Uncertain: we do not know the SubLoRA paper's exact objective; this is the objective above,
 * stated so it can be checked, with the isotropic (mean diagonal Fisher) curvature as its
 * second-order term.
 */
export function subloraRanks(input: SubloraInput): SubloraAllocation {
  const { gradients, curvature, budget } = input;
  const names = Object.keys(gradients);
  const caps: Record<string, number> = {};
  const unitGains: Record<string, Float64Array> = {};
  for (const name of names) {
    const g = gradients[name];
    assertFinite(g, `sublora: the gradient of ${name}`);
    if (g.rows === 0 || g.cols === 0) throw new InvalidArgumentError(`sublora: the gradient of ${name} is empty`);
    let c: number;
    if (curvature) {
      if (!Object.hasOwn(curvature, name)) throw new InvalidArgumentError(`sublora: no curvature for ${name}`);
      c = curvature[name];
    } else {
      let sq = 0;
      for (let i = 0; i < g.rows; i++) for (const v of g.row(i)) sq += v * v;
      c = sq / (g.rows * g.cols);
    }
    if (!(Number.isFinite(c) && c >= 0)) throw new InvalidArgumentError(`sublora: the curvature of ${name} must be finite and ≥ 0, got ${c}`);
    caps[name] = Math.min(g.rows, g.cols);
    const { S } = svd(g);
    unitGains[name] = Float64Array.from(S, (sigma) => (c > 0 ? (sigma * sigma) / (2 * c) : 0));
  }
  // Checks the budget and caps with the same rules as the other allocators.
  apportion(Object.fromEntries(names.map((name) => [name, 0])), budget, caps);
  const ranks: Record<string, number> = Object.fromEntries(names.map((name) => [name, 1]));
  const gains: number[] = [];
  for (let unit = names.length; unit < budget; unit++) {
    let best = '';
    let bestGain = -1;
    for (const name of names) {
      if (ranks[name] >= caps[name]) continue;
      const gain = unitGains[name][ranks[name]];
      if (gain > bestGain) [best, bestGain] = [name, gain];
    }
    ranks[best] += 1;
    gains.push(bestGain);
  }
  const scores: Record<string, number> = {};
  for (const name of names) scores[name] = unitGains[name].subarray(0, ranks[name]).reduce((a, b) => a + b, 0);
  return { rank_pattern: ranks, scores, gains };
}
