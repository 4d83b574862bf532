import { frobeniusNorm, InvalidArgumentError, type Matrix } from '@almora/tensor';
import { apportion, type RankAllocation } from './allocation.js';
import { spectralNorm } from './linalg.js';

/**
 * The stable rank ‖W‖_F² / ‖W‖₂² = Σσᵢ² / σ₁² of a matrix: a continuous, perturbation-robust
 * lower bound of its rank (1 for a rank-1 matrix, n for an n×n orthogonal one). 0 for the zero
 * matrix.
 */
export function stableRank(w: Matrix): number {
  const top = spectralNorm(w);
  if (top === 0) return 0;
  return (frobeniusNorm(w) / top) ** 2;
}

/**
 * SR-LoRA's rank allocation: each module's rank proportional to the stable rank of its
 * pretrained weight, r_m ∝ ‖W_m‖_F² / ‖W_m‖₂², apportioned by {@link apportion} (every module
 * ≥ 1 and ≤ min(out, in), Σ r_m = budget exactly). Reading of the SR-LoRA idea (stable-rank
 * guided LoRA) that the brief of issue #14 gives; whether the paper also rescales lora_alpha per
 * module is not implemented.
 */
export function srLoraRanks(weights: Readonly<Record<string, Matrix>>, budget: number): RankAllocation {
  const scores: Record<string, number> = {};
  const caps: Record<string, number> = {};
  for (const [name, w] of Object.entries(weights)) {
    if (w.rows === 0 || w.cols === 0) throw new InvalidArgumentError(`sr-lora: the weight of ${name} is empty (${w.rows}×${w.cols})`);
    scores[name] = stableRank(w);
    caps[name] = Math.min(w.rows, w.cols);
  }
  return { rank_pattern: apportion(scores, budget, caps), scores };
}
