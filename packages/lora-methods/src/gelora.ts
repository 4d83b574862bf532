import { assertFinite, InvalidArgumentError, type Matrix } from '@almora/tensor';
import { apportion, type RankAllocation } from './allocation.js';

/** Options of {@link twoNN}. */
export interface TwoNNOptions {
  /** Fraction of the largest ratios μ left out of the fit, as Facco et al. do; default 0.1. */
  discard?: number;
}

/**
 * The TwoNN intrinsic dimension estimator (Facco, d'Errico, Rodriguez and Laio, "Estimating the
 * intrinsic dimension of datasets by a minimal neighborhood information", Scientific Reports 7,
 * 2017). For each point (a row of `points`, N×D) with nearest and second-nearest neighbour
 * distances r₁ < r₂, μ = r₂/r₁ follows the Pareto law F(μ) = 1 − μ^(−d) when the density is
 * locally uniform, so −log(1 − F(μ)) = d·log μ. With μ sorted and the empirical F(μ₍ᵢ₎) = i/N,
 * the estimate is the least-squares slope through the origin over the smallest (1 − discard)·N
 * ratios:
 *
 *   d̂ = Σ xᵢ·yᵢ / Σ xᵢ²,  xᵢ = log μ₍ᵢ₎,  yᵢ = −log(1 − i/N).
 *
 * Brute-force neighbours, O(N²·D).
 *
 * @throws {InvalidArgumentError} for fewer than 3 points, a bad `discard`, or duplicate points (r₁ = 0).
 */
export function twoNN(points: Matrix, options: TwoNNOptions = {}): number {
  const { discard = 0.1 } = options;
  const n = points.rows;
  if (n < 3) throw new InvalidArgumentError(`twoNN: needs at least 3 points, got ${n}`);
  if (!(discard >= 0 && discard < 1)) throw new InvalidArgumentError(`twoNN: discard must be in [0, 1), got ${discard}`);
  assertFinite(points, 'twoNN: points');
  const rows = [...Array(n).keys()].map((i) => points.row(i));
  const mu = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let r1 = Infinity;
    let r2 = Infinity;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let d = 0;
      for (let t = 0; t < points.cols; t++) d += (rows[i][t] - rows[j][t]) ** 2;
      if (d < r1) [r1, r2] = [d, r1];
      else if (d < r2) r2 = d;
    }
    if (r1 === 0) throw new InvalidArgumentError(`twoNN: point ${i} has a duplicate (nearest-neighbour distance 0)`);
    mu[i] = Math.sqrt(r2 / r1);
  }
  mu.sort();
  const kept = Math.min(n - 1, Math.floor(n * (1 - discard)));
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < kept; i++) {
    const x = Math.log(mu[i]);
    const y = -Math.log(1 - (i + 1) / n);
    sxy += x * y;
    sxx += x * x;
  }
  if (sxx === 0) throw new InvalidArgumentError('twoNN: every kept ratio r₂/r₁ is 1 (equidistant neighbours); the dimension is not identifiable');
  return sxy / sxx;
}

/** What {@link geloraRanks} allocates from. */
export interface GeloraInput {
  /**
   * Intrinsic dimension of the hidden states entering each layer and leaving the last: entry l is
   * the ID of layer l's input, entry l + 1 of its output (e.g. {@link twoNN} of each
   * hidden-state matrix, tokens as rows), L + 1 numbers for L layers.
   */
  intrinsicDimensions: readonly number[];
  /** The layer index (0-based) of each adapted module, by module path. */
  modules: Readonly<Record<string, number>>;
  /** min(out, in) of each module, the most rank it can use, by module path. */
  maxRanks: Readonly<Record<string, number>>;
  /** Σ r over the modules. */
  budget: number;
}

/**
 * GeLoRA's rank allocation (Ed-dib et al., "GeLoRA: Geometric Adaptive Ranks
 * for Efficient LoRA Fine-tuning", 2024, arXiv 2412.09250): a layer that raises the intrinsic
 * dimension of its hidden states needs at least that many new directions, so a module of layer l
 * scores max(ID_{l+1} − ID_l, 0), and the budget is apportioned by {@link apportion}
 * proportionally to the scores (every module ≥ 1). The paper uses the difference as a lower bound
 * of each layer's rank rather than a share of a fixed budget; the proportional budget is this
 * package's way to meet issue #14's exact-budget rule.
 */
export function geloraRanks(input: GeloraInput): RankAllocation {
  const { intrinsicDimensions: ids, modules, maxRanks, budget } = input;
  for (const [l, d] of ids.entries()) {
    if (!(Number.isFinite(d) && d >= 0)) throw new InvalidArgumentError(`gelora: intrinsic dimension ${l} must be finite and ≥ 0, got ${d}`);
  }
  const scores: Record<string, number> = {};
  for (const [name, layer] of Object.entries(modules)) {
    if (!Number.isInteger(layer) || layer < 0 || layer + 1 >= ids.length) {
      throw new InvalidArgumentError(
        `gelora: the layer of ${name} must be an integer in [0, ${ids.length - 2}] for ${ids.length} intrinsic dimensions, got ${layer}`,
      );
    }
    if (!Object.hasOwn(maxRanks, name)) throw new InvalidArgumentError(`gelora: no maxRanks entry for ${name}`);
    scores[name] = Math.max(ids[layer + 1] - ids[layer], 0);
  }
  return { rank_pattern: apportion(scores, budget, maxRanks), scores };
}
