import { featureRank, planSoftmaxApproximation, type ApproximationPlan } from '@almora/kernels';
import { type Matrix, sliceCols } from '@almora/tensor';
import { assertFinite, InvalidArgumentError, ShapeError } from '@almora/tensor';
import { type AttentionOptions, type FastVariant, resolveBeta, resolveOptions, type ResolvedOptions } from './options.js';
import { type AttentionReport, summarize } from './report.js';
import { probabilityBytes } from './exact.js';
import { fmt, type HeadCost, predictedHeadCost } from './regime.js';

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
  /** The path this head runs. */
  path: 'exact' | 'fast';
  /** The fast variant, when `path` is 'fast'. */
  variant: FastVariant | undefined;
  /** One sentence: why this path. */
  reason: string;
  /** Exact path: whether the forward pass keeps the attention probabilities for the backward pass (within the memory budget) instead of recomputing them. */
  keepsProbabilities: boolean;
}

/** The largest degree whose rank·d_h stays below L: the most accurate fast path that still saves work. */
function largestUsefulDegree(headDim: number, length: number, maxDegree: number): number {
  let degree = 1;
  while (degree < maxDegree && featureRank(headDim, degree + 1) * headDim < length) degree++;
  return degree;
}

/** Plans and decides one head: the regime check and the cost model, in O(L·d). */
function planOne(sequence: number, head: number, s: AttentionSequence, layout: HeadLayout, o: ResolvedOptions, steps: string[]): Omit<HeadPlan, 'keepsProbabilities'> {
  const cols = (m: Matrix, width: number) => sliceCols(m, head * width, (head + 1) * width);
  const [q, k, v] = [cols(s.q, layout.headDim), cols(s.k, layout.headDim), cols(s.v, layout.valueDim)];
  const approximate = (degree: number | undefined) =>
    planSoftmaxApproximation(q, k, { beta: layout.beta, epsilon: o.epsilon, method: o.polynomial, degree, maxDegree: o.maxDegree, centerKeys: o.centerKeys });
  let approximation = approximate(o.degree);
  const where = `sequence ${sequence}, head ${head}`;
  if (o.method === 'fast' && approximation.degree === undefined) {
    const fallback = largestUsefulDegree(layout.headDim, Math.max(q.rows, k.rows), o.maxDegree);
    steps.push(`${where}: no degree ≤ ${o.maxDegree} meets ε = ${o.epsilon}; using degree ${fallback}, the largest whose rank·d_h < L`);
    approximation = approximate(fallback);
  }
  const variant: FastVariant = o.method === 'fast' ? o.variant : 'chained';
  const cost = predictedHeadCost(q.rows, k.rows, layout.headDim, approximation.rank, variant, layout.causal);
  const base = { sequence, head, q, k, v, approximation, cost };
  if (o.method === 'exact') return { ...base, path: 'exact', variant: undefined, reason: 'exact gradients were requested' };
  const certified = approximation.bound?.softmaxRelative;
  if (o.method === 'fast') {
    return {
      ...base,
      path: 'fast',
      variant,
      reason: `fast gradients were requested (${variant}); certified attention error ${fmt(certified!)} ${certified! <= o.epsilon ? '≤' : '>'} ε = ${o.epsilon}`,
    };
  }
  if (approximation.outOfRegime) return { ...base, path: 'exact', variant: undefined, reason: `exact: ${approximation.outOfRegime.message}` };
  if (cost.fast === undefined || cost.fast >= cost.exact) {
    return { ...base, path: 'exact', variant: undefined, reason: `exact: the fast path is predicted to cost ${fmt(cost.fast ?? Number.NaN)} multiply-adds vs ${fmt(cost.exact)} exact` };
  }
  return {
    ...base,
    path: 'fast',
    variant,
    reason: `fast: certified attention error ${fmt(certified!)} ≤ ε = ${o.epsilon} and predicted ${fmt(cost.exact / cost.fast)}× cheaper than exact`,
  };
}

/**
 * Plans every head of every sequence and decides its path: 'exact' and 'fast' as asked; 'auto'
 * per head — fast only where its certified attention bound meets ε, it is in the efficient regime,
 * and it is predicted cheaper. Exact heads keep their probabilities for the backward pass while
 * they fit the memory budget, in order. Returns the plans and the steps worth reporting.
 */
export function planHeads(sequences: readonly AttentionSequence[], layout: HeadLayout, o: ResolvedOptions): { plans: HeadPlan[]; steps: string[] } {
  const steps: string[] = [];
  let budget = o.memoryBudget;
  const plans = sequences.flatMap((s, n) =>
    Array.from({ length: layout.heads }, (_, h) => {
      const plan = planOne(n, h, s, layout, o, steps);
      const bytesPerEntry = o.backend.precision === 'float32' || plan.q.dtype === 'float32' ? 4 : 8;
      const bytes = plan.path === 'exact' ? probabilityBytes(plan.q.rows, plan.k.rows, layout.causal, o.blockSize, bytesPerEntry) : Number.POSITIVE_INFINITY;
      const keepsProbabilities = bytes <= budget;
      if (keepsProbabilities) budget -= bytes;
      return { ...plan, keepsProbabilities };
    }),
  );
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
  if (s.q.cols !== s.k.cols) throw new ShapeError(`Q${where} is ${s.q.rows}×${s.q.cols} and K${where} is ${s.k.rows}×${s.k.cols}: queries and keys need one width`);
  if (s.k.rows !== s.v.rows) throw new ShapeError(`K${where} has ${s.k.rows} rows and V${where} has ${s.v.rows}; keys and values must pair up`);
  if (s.k.rows === 0) throw new ShapeError(`K${where} has no rows: attention over zero keys is undefined`);
  if (causal && s.q.rows !== s.k.rows) throw new ShapeError(`causal attention needs as many queries as keys; Q${where} has ${s.q.rows} rows and K${where} ${s.k.rows}`);
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
    if (s.q.cols !== first.q.cols || s.v.cols !== first.v.cols) throw new ShapeError(`sequence ${n} has other widths than sequence 0 (Q ${s.q.cols} vs ${first.q.cols}, V ${s.v.cols} vs ${first.v.cols})`);
  });
  const headDim = first.q.cols / heads;
  const layout: HeadLayout = { heads, headDim, valueDim: first.v.cols / heads, beta: resolveBeta(options.beta, headDim), causal };
  const resolved = resolveOptions(options);
  const { plans, steps } = planHeads(sequences, layout, resolved);
  const longest = Math.max(...sequences.map((s) => s.k.rows));
  return { sequences, layout, options: resolved, plans, report: summarize(plans, steps, resolved, longest) };
}

