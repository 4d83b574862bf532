import { geloraRanks, RANK_ALLOCATORS, type RankAllocatorName, srLoraRanks, subloraRanks, twoNN } from '@almora/lora-methods';
import type { Qwen3Config, Qwen3LoraConfig, Qwen3Weights } from '@almora/model';
import { fromFlat, InvalidArgumentError, type Matrix } from '@almora/tensor';
import { adaptedPaths } from './method-adapters.js';

/**
 * The distinct rows of `m`: TwoNN needs every point's nearest neighbour at a positive distance, and
 * a byte-level model's embedding output repeats a row for every repeated byte.
 */
function distinctRows(m: Matrix): Matrix {
  const seen = new Set<string>();
  const keep: number[] = [];
  for (let i = 0; i < m.rows; i++) {
    const key = Array.from(m.row(i)).join(',');
    if (!seen.has(key)) {
      seen.add(key);
      keep.push(i);
    }
  }
  const data = new Float64Array(keep.length * m.cols);
  keep.forEach((i, k) => data.set(m.row(i), k * m.cols));
  return fromFlat(keep.length, m.cols, data);
}

/** A rank allocator's name, or 'none' for one r on every module. */
export type RankAllocation = 'none' | RankAllocatorName;

/** The allocators a fine-tune can spread its rank budget with. */
export const RANK_ALLOCATIONS: readonly RankAllocation[] = ['none', ...(Object.keys(RANK_ALLOCATORS) as RankAllocatorName[])];

/** What the allocators read from the base: its weights, and on a probe batch its full-weight gradient and hidden states. */
export interface AllocationInputs {
  weights: Qwen3Weights;
  /** ∂loss/∂W at the base by `<path>.weight` (SubLoRA). */
  weightGradients: Qwen3Weights | undefined;
  /** The base's hidden states on the probe batch: the embedding output, then every layer's (GeLoRA). */
  hiddenStates: Matrix[] | undefined;
}

/** Whether `allocation` needs the probe batch's gradient, or its hidden states. */
export function allocationNeeds(allocation: RankAllocation): { gradient: boolean; hiddenStates: boolean } {
  return { gradient: allocation === 'sublora', hiddenStates: allocation === 'gelora' };
}

/**
 * PEFT's rank_pattern (module path → r) for plain LoRA's trainable budget — what one r on every
 * module trains, r × Σ(in + out) numbers — spread by `allocation`: SR-LoRA by the stable rank of
 * each base weight, GeLoRA by how much each layer raises the intrinsic dimension (TwoNN) of the
 * hidden states, SubLoRA by the second-order gain of each rank unit of the gradient. The
 * allocators split a total rank, and the total is found by bisection on what its pattern trains:
 * near the budget, not always the closest total (largest-remainder rounding can move a unit from
 * a wide module to narrow ones as the total grows, so the count is not monotone in it). Every
 * module gets at least 1 and at most min(out, in).
 */
export function allocateRanks(
  config: Qwen3Config,
  lora: Qwen3LoraConfig,
  allocation: Exclude<RankAllocation, 'none'>,
  inputs: AllocationInputs,
): Record<string, number> {
  const modules = adaptedPaths(config, lora.target_modules).map(({ path, layer, out, in: inner }) => ({
    path,
    layer,
    cap: Math.min(out, inner),
    size: out + inner,
  }));
  const byPath = (source: Qwen3Weights | undefined, what: string) =>
    Object.fromEntries(
      modules.map(({ path }) => {
        const m = source?.[`${path}.weight`];
        if (!m) throw new InvalidArgumentError(`${allocation} needs the ${what} of ${path}`);
        return [path, m];
      }),
    );
  let spread: (totalRank: number) => Record<string, number>;
  if (allocation === 'sr-lora') {
    const weights = byPath(inputs.weights, 'base weight');
    spread = (total) => srLoraRanks(weights, total).rank_pattern;
  } else if (allocation === 'sublora') {
    const gradients = byPath(inputs.weightGradients, 'full-weight gradient');
    spread = (total) => subloraRanks({ gradients, budget: total }).rank_pattern;
  } else {
    if (!inputs.hiddenStates) throw new InvalidArgumentError('gelora needs the hidden states of the base');
    const intrinsicDimensions = inputs.hiddenStates.map((h) => twoNN(distinctRows(h)));
    const layers = Object.fromEntries(modules.map(({ path, layer }) => [path, layer]));
    const maxRanks = Object.fromEntries(modules.map(({ path, cap }) => [path, cap]));
    spread = (total) => geloraRanks({ intrinsicDimensions, modules: layers, maxRanks, budget: total }).rank_pattern;
  }
  const budget = lora.r * modules.reduce((sum, m) => sum + m.size, 0);
  const trained = (pattern: Record<string, number>) => modules.reduce((sum, m) => sum + pattern[m.path] * m.size, 0);
  let low = modules.length;
  let high = modules.reduce((sum, m) => sum + m.cap, 0);
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (trained(spread(middle)) <= budget) low = middle;
    else high = middle;
  }
  const [below, above] = [spread(low), spread(high)];
  return Math.abs(trained(above) - budget) < Math.abs(trained(below) - budget) ? above : below;
}
