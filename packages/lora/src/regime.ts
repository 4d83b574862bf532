import type { Reading } from './head.js';
import type { DenseProducts } from './products.js';
import { featureBlockRows } from './low-rank.js';
import { TARGETS, type NormalizedProblem, type Target } from './problem.js';

/** One of the paper's norm quantities (Remark 5.2), with √β folded in as in its Γ. */
export interface NormQuantity {
  /** The projection. */
  target: Target;
  /** 'frozen': ‖√β·X_μ·W*_μ‖∞; 'adapter': ‖√β·(α/r)·X_μ·B_μ·A_μ‖∞. */
  part: 'frozen' | 'adapter';
  /** The largest value over the batch. */
  value: number;
}

/**
 * The norms that decide the regime, for the projections that enter exp(β·QKᵀ): the frozen part of
 * Q and K and, for each adapted one, the adapter's part — two quantities for partial adaptation's
 * query side plus the frozen keys, four for full adaptation. Their sums bound Γ.
 */
export function* normQuantities(p: NormalizedProblem, products: DenseProducts): Reading<NormQuantity[]> {
  const out: NormQuantity[] = [];
  const rootBeta = Math.sqrt(p.beta);
  for (const target of TARGETS.filter((t) => t !== 'v')) {
    const adapter = p.adapters[target];
    let frozen = 0;
    let adapted = 0;
    for (const s of p.sequences) {
      const x = target === 'q' ? s.xq : s.xk;
      frozen = Math.max(frozen, rootBeta * (yield* products.maxAbsProduct(x, [p.frozen[target]])));
      if (adapter) adapted = Math.max(adapted, rootBeta * p.scaling * (yield* products.maxAbsProduct(x, [adapter.b, adapter.a])));
    }
    out.push({ target, part: 'frozen', value: frozen });
    if (adapter) out.push({ target, part: 'adapter', value: adapted });
  }
  return out;
}

/** Predicted cost of one head on each path, in exact-path multiply-adds. */
export interface HeadCost {
  /** Exact attention forward and backward. */
  exact: number;
  /** The fast path (undefined without a rank). */
  fast: number | undefined;
}

/**
 * How many of exact attention's multiply-adds one modelled multiply-add of each fast variant costs
 * on the CPU, measured in the committed scaling results (apps/bench/results/scaling.md, d = 8 and
 * 16, L = 4,096–16,384: exact 0.7–1.3 ns per modelled multiply-add, chained 0.7–1.9, autodiff
 * 2.3–7.2). Autodiff's feature-map backward walks the monomial tree entry by entry and streams
 * L×k gradients through memory, which its operation count does not see.
 */
const MEASURED_COST_PER_OPERATION = { chained: 1.2, autodiff: 5 } as const;

/** Predicted cost of one head on one sequence, per path (the 'auto' cost model), in exact-path multiply-adds. */
export function predictedHeadCost(
  queries: number,
  keys: number,
  headDim: number,
  rank: number | undefined,
  variant: 'chained' | 'autodiff',
  causal: boolean,
): HeadCost {
  // Six L×L×d products plus one exp per score (counted as ~8 multiply-adds).
  const exact = queries * keys * (6 * headDim + 8) * (causal ? 0.5 : 1);
  if (rank === undefined) return { exact, fast: undefined };
  const length = Math.max(queries, keys);
  const causalBlock = causal ? 64 : 0;
  const operations =
    variant === 'chained'
      ? length * rank * (4 * headDim * headDim + 12 * headDim + 2 + 2 * causalBlock * headDim)
      : length * rank * (8 * (headDim + 1) + 6 + 4 * causalBlock);
  return { exact, fast: operations * MEASURED_COST_PER_OPERATION[variant] };
}

/** Predicted memory of one head, in bytes, beyond the inputs and outputs of the call. */
export interface HeadBytes {
  /** Held from the forward pass to the backward pass: a fast head's features U₁, V₁ and 1/D̂ (an exact head's kept probabilities are added when it keeps them). */
  kept: number;
  /** The most held for a moment while the head computes: blocks of scores, the chain's products, the gradients' buffers. */
  transient: number;
}

/**
 * Predicted bytes of one head on one path (fast when `variant` is given, else exact), counted
 * from the buffers the attention core allocates: exact — blocks of `blockSize` query rows × L_k
 * scores, probabilities and their gradient; chained — U₁, V₁, D̂⁻¹U₁ and the face-split products
 * (L×d_v·d_h unmasked, 64-row blocks of k·d_v when causal); autodiff — U₁, V₁ and their
 * gradients. Plus a few L×d buffers. An estimate for the resource guard, not a measurement
 * (apps/bench memory measures peak RSS).
 */
export function predictedHeadBytes(
  queries: number,
  keys: number,
  widths: { headDim: number; valueDim: number },
  rank: number | undefined,
  variant: 'chained' | 'autodiff' | undefined,
  options: { causal: boolean; blockSize: number; bytesPerEntry: number },
): HeadBytes {
  const { headDim, valueDim } = widths;
  const { causal, blockSize, bytesPerEntry: b } = options;
  const length = Math.max(queries, keys);
  const rows = 8 * length * (headDim + valueDim);
  if (variant === undefined || rank === undefined) return { kept: 0, transient: b * (3 * Math.min(blockSize, queries) * keys + rows) };
  // Unmasked autodiff streams its features: a few blocks of them at a time, never L×k.
  const streamed = variant === 'autodiff' && !causal;
  const kept = b * ((streamed ? 0 : (queries + keys) * rank) + queries);
  const chain = streamed
    ? 3 * featureBlockRows(rank, b) * rank
    : variant === 'autodiff'
      ? 3 * length * rank
      : queries * rank + rank * valueDim * headDim + (causal ? 2 * 64 * rank * valueDim + 64 * 64 : 2 * length * valueDim * headDim);
  return { kept, transient: b * (chain + rows) };
}

/** The predicted peak of a call: what every head keeps, plus the largest moment of any one head. */
export function plannedBytes(plans: readonly { bytes: HeadBytes }[]): number {
  return plans.reduce((sum, p) => sum + p.bytes.kept, 0) + plans.reduce((most, p) => Math.max(most, p.bytes.transient), 0);
}

/** Scales a quantity for messages: 3 significant digits. */
export function fmt(x: number): string {
  return Number.isFinite(x) ? Number(x.toPrecision(3)).toString() : String(x);
}

/** Bytes for messages, in MiB or GiB. */
export function fmtBytes(bytes: number): string {
  return bytes >= 2 ** 30 ? `${fmt(bytes / 2 ** 30)} GiB` : `${fmt(bytes / 2 ** 20)} MiB`;
}
