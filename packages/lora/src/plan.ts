import {
  centeredKeys,
  type CertifiedFactor,
  certifiedError,
  certifiedRange,
  exactSoftmaxRounding,
  featureRank,
  planSoftmaxApproximation,
  sampledSoftmaxError,
  type ApproximationPlan,
  UNIT_ROUNDOFFS,
} from '@almora/kernels';
import { assertFinite, InvalidArgumentError, type Matrix, ResourceLimitError, Rng, ShapeError, sliceCols } from '@almora/tensor';
import { type AttentionOptions, type FastVariant, resolveBeta, resolveOptions, type ResolvedOptions } from './options.js';
import { type AttentionReport, summarize } from './report.js';
import { probabilityBytes } from './exact.js';
import { fmt, fmtBytes, type HeadBytes, type HeadCost, plannedBytes, predictedHeadBytes, predictedHeadCost } from './regime.js';

/** One sequence of the attention core's input: queries, keys and values, all heads side by side. */
export interface AttentionSequence {
  /** Q (L_q × H·d_h). */
  q: Matrix;
  /** K (L_k × H·d_h). */
  k: Matrix;
  /** V (L_k × H·d_v). */
  v: Matrix;
}

/** How the columns split into heads, and what every head shares. */
export interface HeadLayout {
  /** Number of heads H. */
  heads: number;
  /** Query and key width of a head, d_h. */
  headDim: number;
  /** Value width of a head, d_v. */
  valueDim: number;
  /** Softmax temperature β. */
  beta: number;
  /** Causal masking. */
  causal: boolean;
}

/**
 * Everything decided about one head of one sequence before any of its attention is computed, made
 * once and handed down unchanged: its inputs, the approximation plan (Γ, R, degree, rank, bound),
 * the predicted cost of each path, and the path taken with the reason.
 */
export interface HeadPlan {
  /** Index of the sequence in the batch. */
  sequence: number;
  /** Index of the head. */
  head: number;
  /** This head's Q, K, V (column views of the sequence's). */
  q: Matrix;
  /** K of this head. */
  k: Matrix;
  /** V of this head. */
  v: Matrix;
  /** Γ, R, degree, rank and certified bound of the low-rank softmax. */
  approximation: ApproximationPlan;
  /** Predicted multiply-adds of each path for this head. */
  cost: HeadCost;
  /** Predicted memory of the path it runs (kept probabilities included when it keeps them). */
  bytes: HeadBytes;
  /** The path this head runs. */
  path: 'exact' | 'fast';
  /** Certified entrywise relative error of the attention matrix on the path it runs: the fast path's bound, or exact attention's rounding in its precision. */
  attentionBound: number;
  /** The fast variant, when `path` is 'fast'. */
  variant: FastVariant | undefined;
  /** One sentence: why this path. */
  reason: string;
  /** The largest entrywise relative attention error on `sampledRows` query rows checked against exact attention (fast heads, when asked for): an estimate, not a bound. */
  sampledSoftmaxError: number | undefined;
  /** Exact path: whether the forward pass keeps the attention probabilities for the backward pass (within the memory budget) instead of recomputing them. */
  keepsProbabilities: boolean;
}

/** The largest degree whose rank·d_h stays below L: the most accurate fast path that still saves work. */
function largestUsefulDegree(headDim: number, length: number, maxDegree: number): number {
  let degree = 1;
  while (degree < maxDegree && featureRank(headDim, degree + 1) * headDim < length) degree++;
  return degree;
}

/** What a fast variant's certificate covers: f̂ for chained; f̂ and p′(S)/D̂, which its backward uses, for autodiff. */
function factorOf(variant: FastVariant): CertifiedFactor {
  return variant === 'autodiff' ? 'softmax-and-derivative' : 'softmax';
}

/** The certified error a fast variant is held to (Infinity without a degree). */
function certifiedFor(approximation: ApproximationPlan, variant: FastVariant): number {
  return approximation.bound ? certifiedError(approximation.bound, factorOf(variant)) : Number.POSITIVE_INFINITY;
}

/** `count` distinct query rows drawn with a fixed seed per head, so the check is reproducible. */
function sampleRows(rows: number, count: number, sequence: number, head: number): number[] {
  if (count >= rows) return Array.from({ length: rows }, (_, i) => i);
  const rng = new Rng(7919 * sequence + head + 1);
  const picked = new Set<number>();
  while (picked.size < count) picked.add(Math.floor(rng.next() * rows));
  return [...picked].sort((a, b) => a - b);
}

type Decision = Omit<HeadPlan, 'keepsProbabilities' | 'sampledSoftmaxError'>;

/** Bytes per entry of the head's buffers: float32 when the inputs or the backend are. */
function entryBytes(q: Matrix, o: ResolvedOptions): number {
  return o.backend.precision === 'float32' || q.dtype === 'float32' ? 4 : 8;
}

/**
 * Plans and decides one head: the certified range once (O(L·d² + 64·L·d)), then per variant the
 * lowest degree (and polynomial family) that certifies ε, and the cost model. 'auto' takes the
 * cheapest certified variant predicted cheaper than exact.
 */
function planOne(sequence: number, head: number, s: AttentionSequence, layout: HeadLayout, o: ResolvedOptions, steps: string[]): Decision {
  const cols = (m: Matrix, width: number) => sliceCols(m, head * width, (head + 1) * width);
  const [q, k, v] = [cols(s.q, layout.headDim), cols(s.k, layout.headDim), cols(s.v, layout.valueDim)];
  const range = certifiedRange(q, k, layout.beta, o.centerKeys);
  const costAt = (rank: number | undefined, variant: FastVariant) => predictedHeadCost(q.rows, k.rows, layout.headDim, rank, variant, layout.causal);
  // A degree whose fast path is predicted slower than exact cannot be chosen, so the search stops below it.
  const affordable = (variant: FastVariant) => {
    let degree = 0;
    while (degree < o.maxDegree && costAt(featureRank(layout.headDim, degree + 1), variant).fast! < costAt(undefined, variant).exact) degree++;
    return degree;
  };
  const approximate = (variant: FastVariant, degree: number | undefined, maxDegree = o.maxDegree) =>
    planSoftmaxApproximation(q, k, {
      beta: layout.beta,
      epsilon: o.epsilon,
      method: o.polynomial,
      degree,
      maxDegree,
      centerKeys: o.centerKeys,
      range,
      factor: factorOf(variant),
      // One estimate decides: this package's predictedHeadBytes (the kernel's counts U and V alone).
      memoryBudget: Number.POSITIVE_INFINITY,
      precision,
    });
  const costOf = (approximation: ApproximationPlan, variant: FastVariant) => costAt(approximation.rank, variant);
  const bytesOf = (rank: number | undefined, variant: FastVariant | undefined) =>
    predictedHeadBytes(q.rows, k.rows, layout, rank, variant, { causal: layout.causal, blockSize: o.blockSize, bytesPerEntry: entryBytes(q, o) });
  const total = (b: HeadBytes) => b.kept + b.transient;
  const where = `sequence ${sequence}, head ${head}`;
  const base = { sequence, head, q, k, v };
  const exactBytes = bytesOf(undefined, undefined);
  const precision = entryBytes(q, o) === 4 ? 'float32' : 'float64';
  const exactBound = exactSoftmaxRounding({
    unitRoundoff: UNIT_ROUNDOFFS[precision],
    keys: k.rows,
    dimension: layout.headDim,
    normRange: range.cauchySchwarzRange,
  });
  if (o.method === 'exact') {
    const approximation = approximate('chained', o.degree, affordable('chained'));
    return {
      ...base,
      approximation,
      cost: costOf(approximation, 'chained'),
      bytes: exactBytes,
      path: 'exact',
      attentionBound: exactBound,
      variant: undefined,
      reason: 'exact gradients were requested',
    };
  }
  if (o.method === 'fast') {
    const variant = o.variant ?? 'chained';
    let approximation = approximate(variant, o.degree);
    if (approximation.degree === undefined) {
      const fallback = largestUsefulDegree(layout.headDim, Math.max(q.rows, k.rows), o.maxDegree);
      steps.push(`${where}: no degree ≤ ${o.maxDegree} meets ε = ${o.epsilon}; using degree ${fallback}, the largest whose rank·d_h < L`);
      approximation = approximate(variant, fallback);
    }
    const certified = certifiedFor(approximation, variant);
    const bytes = bytesOf(approximation.rank, variant);
    const cost = costOf(approximation, variant);
    if (total(bytes) > o.memoryBudget) {
      throw new ResourceLimitError(
        `the fast path (${variant}, degree ${approximation.degree}, rank ${approximation.rank}) of ${where} would hold about ${fmtBytes(total(bytes))} and take about ${fmt(cost.fast!)} multiply-adds, over memoryBudget = ${fmtBytes(o.memoryBudget)}; lower the degree, use method 'auto' or 'exact' (${fmtBytes(total(exactBytes))}), or raise memoryBudget`,
        total(bytes),
        o.memoryBudget,
      );
    }
    return {
      ...base,
      approximation,
      cost,
      bytes,
      path: 'fast',
      attentionBound: certified,
      variant,
      reason: `fast gradients were requested (${variant}); certified attention error ${fmt(certified)} ${certified <= o.epsilon ? '≤' : '>'} ε = ${o.epsilon}`,
    };
  }
  const variants: FastVariant[] = o.variant ? [o.variant] : ['chained', 'autodiff'];
  const candidates = variants.map((variant) => {
    const limit = affordable(variant);
    const approximation = approximate(variant, o.degree, limit);
    return { variant, approximation, cost: costOf(approximation, variant), bytes: bytesOf(approximation.rank, variant), limit };
  });
  // Speed is the cost model's call; the kernel plan's own 'no-speedup' (one product, rank·d ≥ L) is not.
  const certified = candidates.filter((c) => c.approximation.meetsEpsilon && c.approximation.outOfRegime?.reason !== 'precision');
  const fits = certified.filter((c) => total(c.bytes) <= o.memoryBudget);
  for (const c of certified.filter((x) => !fits.includes(x)))
    steps.push(`${where}: ${c.variant} would hold about ${fmtBytes(total(c.bytes))}, over memoryBudget = ${fmtBytes(o.memoryBudget)}; not considered`);
  const cheaper = fits.filter((c) => c.cost.fast! < c.cost.exact).sort((a, b) => a.cost.fast! - b.cost.fast!);
  if (cheaper.length === 0) {
    const shown = certified[0] ?? candidates[0];
    const capped = candidates.some((c) => c.limit < o.maxDegree);
    const why =
      certified.length === 0
        ? capped
          ? `no degree predicted cheaper than exact (${candidates.map((c) => `${c.variant} up to ${c.limit}`).join(', ')}) certifies ε = ${o.epsilon} on R = ${fmt(range.range)} (Γ = ${fmt(range.gamma)} vs √log L = ${fmt(range.threshold)})`
          : (shown.approximation.outOfRegime?.message ?? `no degree ≤ ${o.maxDegree} certifies ε = ${o.epsilon}`)
        : fits.length === 0
          ? `the certified fast path would hold about ${fmtBytes(total(shown.bytes))}, over memoryBudget = ${fmtBytes(o.memoryBudget)}`
          : `the fast path is predicted to cost ${fmt(shown.cost.fast!)} vs ${fmt(shown.cost.exact)} exact (${shown.variant}, degree ${shown.approximation.degree}, rank ${shown.approximation.rank})`;
    return {
      ...base,
      approximation: shown.approximation,
      cost: shown.cost,
      bytes: exactBytes,
      path: 'exact',
      attentionBound: exactBound,
      variant: undefined,
      reason: `exact: ${why}`,
    };
  }
  const best = cheaper[0];
  const { approximation } = best;
  return {
    ...base,
    approximation,
    cost: best.cost,
    bytes: best.bytes,
    path: 'fast',
    attentionBound: certifiedFor(approximation, best.variant),
    variant: best.variant,
    reason: `fast (${best.variant}, ${approximation.method} degree ${approximation.degree}, rank ${approximation.rank}): certified attention error ${fmt(certifiedFor(approximation, best.variant))} ≤ ε = ${o.epsilon} on R = ${fmt(range.range)}, predicted ${fmt(best.cost.exact / best.cost.fast!)}× cheaper than exact`,
  };
}

/** The a-posteriori check of one fast head, when asked for. */
function sampledCheck(plan: Decision, layout: HeadLayout, o: ResolvedOptions): number | undefined {
  if (plan.path !== 'fast' || o.sampledRows === 0 || !plan.approximation.polynomial) return undefined;
  const rows = sampleRows(plan.q.rows, o.sampledRows, plan.sequence, plan.head);
  return sampledSoftmaxError(
    plan.q,
    centeredKeys(plan.k, plan.approximation.range),
    plan.approximation.polynomial.coefficients,
    layout.beta,
    rows,
    layout.causal,
  );
}

/**
 * Plans every head of every sequence and decides its path: 'exact' and 'fast' as asked; 'auto'
 * per head — fast only where its certified attention bound meets ε, it is in the efficient regime,
 * it fits the memory budget and it is predicted cheaper. Exact heads keep their probabilities for
 * the backward pass while they fit the probability budget and the memory budget, in order. A call
 * predicted to hold more than `memoryBudget` is refused before anything is allocated. Returns the
 * plans and the steps worth reporting.
 */
export function planHeads(sequences: readonly AttentionSequence[], layout: HeadLayout, o: ResolvedOptions): { plans: HeadPlan[]; steps: string[] } {
  const steps: string[] = [];
  const decisions = sequences.flatMap((s, n) => Array.from({ length: layout.heads }, (_, h) => planOne(n, h, s, layout, o, steps)));
  const needed = plannedBytes(decisions);
  if (needed > o.memoryBudget) {
    const fast = decisions.filter((d) => d.path === 'fast').length;
    throw new ResourceLimitError(
      `this call would hold about ${fmtBytes(needed)} (${decisions.length} head(s), ${fast} fast) and take about ${fmt(decisions.reduce((sum, d) => sum + (d.path === 'fast' ? d.cost.fast! : d.cost.exact), 0))} multiply-adds, over memoryBudget = ${fmtBytes(o.memoryBudget)}; shorten the sequences, split the batch, or raise memoryBudget`,
      needed,
      o.memoryBudget,
    );
  }
  let probabilities = o.probabilityBudget;
  let spare = o.memoryBudget - needed;
  const plans = decisions.map((decision) => {
    const plan = { ...decision, sampledSoftmaxError: sampledCheck(decision, layout, o) };
    const bytes =
      plan.path === 'exact' ? probabilityBytes(plan.q.rows, plan.k.rows, layout.causal, o.blockSize, entryBytes(plan.q, o)) : Number.POSITIVE_INFINITY;
    const keepsProbabilities = bytes <= Math.min(probabilities, spare);
    if (!keepsProbabilities) return { ...plan, keepsProbabilities };
    probabilities -= bytes;
    spare -= bytes;
    return { ...plan, bytes: { ...plan.bytes, kept: plan.bytes.kept + bytes }, keepsProbabilities };
  });
  return { plans, steps };
}

/** Options of {@link attention}: how the columns split into heads, the mask, β, and how to compute. */
export interface AttentionCoreOptions extends AttentionOptions {
  /** Number of heads H; Q, K and V split into H column groups. Default 1. */
  heads?: number;
  /** Causal (decoder) masking: query i attends to keys j ≤ i. Default false. */
  causal?: boolean;
  /** Softmax temperature β; default 1/√d_h. */
  beta?: number;
}

/** A validated call of the core: its sequences, layout, options and per-head plans. */
export interface CorePlan {
  /** The sequences, validated. */
  sequences: AttentionSequence[];
  /** Heads, widths, β, mask. */
  layout: HeadLayout;
  /** The options, resolved. */
  options: ResolvedOptions;
  /** One plan per head per sequence, sequence-major. */
  plans: HeadPlan[];
  /** The report of those plans. */
  report: AttentionReport;
}

function checkSequence(s: AttentionSequence, where: string, heads: number, causal: boolean, dtype: Matrix['dtype']): void {
  for (const [m, name] of [
    [s.q, 'Q'],
    [s.k, 'K'],
    [s.v, 'V'],
  ] as const) {
    if (!m || typeof m.rows !== 'number' || !m.data) throw new InvalidArgumentError(`${name}${where} is not a matrix`);
    if (m.dtype !== dtype) throw new InvalidArgumentError(`${name}${where} is ${m.dtype} but Q is ${dtype}`);
    if (m.cols % heads !== 0) throw new ShapeError(`${name}${where} has ${m.cols} columns, not a multiple of heads = ${heads}`);
    assertFinite(m, `${name}${where}`);
  }
  if (s.q.cols === 0 || s.v.cols === 0) throw new ShapeError(`Q${where} and V${where} need at least one column; they have ${s.q.cols} and ${s.v.cols}`);
  if (s.q.cols !== s.k.cols)
    throw new ShapeError(`Q${where} is ${s.q.rows}×${s.q.cols} and K${where} is ${s.k.rows}×${s.k.cols}: queries and keys need one width`);
  if (s.k.rows !== s.v.rows) throw new ShapeError(`K${where} has ${s.k.rows} rows and V${where} has ${s.v.rows}; keys and values must pair up`);
  if (s.k.rows === 0) throw new ShapeError(`K${where} has no rows: attention over zero keys is undefined`);
  if (causal && s.q.rows !== s.k.rows)
    throw new ShapeError(`causal attention needs as many queries as keys; Q${where} has ${s.q.rows} rows and K${where} ${s.k.rows}`);
}

/** Validates the sequences and options once, plans and decides every head, and reports. */
export function planAttention(sequences: AttentionSequence[], options: AttentionCoreOptions): CorePlan {
  if (sequences.length === 0) throw new ShapeError('the batch is empty');
  const heads = options.heads ?? 1;
  if (!Number.isInteger(heads) || heads < 1) throw new InvalidArgumentError(`heads must be a positive integer, got ${heads}`);
  const causal = options.causal ?? false;
  const first = sequences[0];
  const dtype = first.q?.dtype;
  sequences.forEach((s, n) => {
    checkSequence(s, sequences.length === 1 ? '' : ` of sequence ${n}`, heads, causal, dtype);
    if (s.q.cols !== first.q.cols || s.v.cols !== first.v.cols)
      throw new ShapeError(`sequence ${n} has other widths than sequence 0 (Q ${s.q.cols} vs ${first.q.cols}, V ${s.v.cols} vs ${first.v.cols})`);
  });
  const headDim = first.q.cols / heads;
  const layout: HeadLayout = { heads, headDim, valueDim: first.v.cols / heads, beta: resolveBeta(options.beta, headDim), causal };
  const resolved = resolveOptions(options);
  const { plans, steps } = planHeads(sequences, layout, resolved);
  const longest = Math.max(...sequences.map((s) => s.k.rows));
  return { sequences, layout, options: resolved, plans, report: summarize(plans, steps, resolved, longest) };
}
