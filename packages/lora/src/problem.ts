import { add, assertFinite, InvalidArgumentError, matmul, type Matrix, scale, ShapeError } from '@almora/tensor';
import { loraScaling, resolveBeta } from './options.js';

/** Which projection an adapter adapts. */
export type Target = 'q' | 'k' | 'v';

/** The three projections, in the paper's order. */
export const TARGETS: readonly Target[] = ['q', 'k', 'v'];

/**
 * A LoRA adapter in the paper's convention: W = W* + (α/r)·B·A with B ∈ R^{d_in×r} and
 * A ∈ R^{r×d_out}. (PEFT stores the transposes: its lora_A is Bᵀ here, its lora_B is Aᵀ.)
 */
export interface Adapter {
  /** A (r×d_out). */
  a: Matrix;
  /** B (d_in×r). */
  b: Matrix;
}

/** Separate inputs for queries, keys and values (the paper's X_Q, X_K, X_V; cross-attention). */
export interface CrossInput {
  /** X_Q, the rows queries are projected from (L_q×d_in). */
  q: Matrix;
  /** X_K, the rows keys are projected from (L_k×d_in). */
  k: Matrix;
  /** X_V, the rows values are projected from (L_k×d_in). */
  v: Matrix;
}

/** One sequence: a matrix X (self-attention) or a {q, k, v} triple. */
export type SequenceInput = Matrix | CrossInput;

/** The paper's Problem 1 (ALoRAGC), with multi-head, batch and causal extensions. */
export interface LoraProblem {
  /** One sequence or a batch of them; each L×d_in, or {q, k, v}. */
  x: SequenceInput | readonly SequenceInput[];
  /** Target Y per sequence, L_q×d_out. */
  target: Matrix | readonly Matrix[];
  /** Frozen weights W*_q, W*_k, W*_v, each d_in×d_out. */
  weights: {
    /** W*_Q. */
    q: Matrix;
    /** W*_K. */
    k: Matrix;
    /** W*_V. */
    v: Matrix;
  };
  /** The adapters being trained: {q, v} is the paper's partial adaptation, {q, k, v} its full one. */
  adapters: Partial<Record<Target, Adapter>>;
  /** LoRA α; the adapter is scaled by α/r. */
  alpha: number;
  /** Softmax temperature β; default 1/√d_head. */
  beta?: number;
  /** Number of heads H; d_out must be a multiple of it (head dim d_out/H). Default 1. */
  heads?: number;
  /** Causal (decoder) masking: query i attends to keys j ≤ i. Default false. */
  causal?: boolean;
}

/** One validated sequence. */
export interface Sequence {
  /** X_Q. */
  xq: Matrix;
  /** X_K. */
  xk: Matrix;
  /** X_V. */
  xv: Matrix;
  /** Target Y. */
  y: Matrix;
}

/** A problem after validation, with the adapted weights W_μ = W*_μ + (α/r)·B_μ·A_μ formed. */
export interface NormalizedProblem {
  /** Every sequence of the batch, validated. */
  sequences: Sequence[];
  /** The frozen W*_μ. */
  frozen: Record<Target, Matrix>;
  /** The adapted W_μ = W*_μ + (α/r)·B_μ·A_μ (W*_μ where not adapted). */
  effective: Record<Target, Matrix>;
  /** The adapters given. */
  adapters: Partial<Record<Target, Adapter>>;
  /** Which weights are adapted, in q, k, v order. */
  adapted: Target[];
  /** α/r. */
  scaling: number;
  /** LoRA rank r. */
  rank: number;
  /** Softmax temperature β. */
  beta: number;
  /** Number of heads H. */
  heads: number;
  /** Head dimension d_out/H. */
  headDim: number;
  /** d_in. */
  inputDim: number;
  /** d_out. */
  outputDim: number;
  /** Causal masking. */
  causal: boolean;
  /** True when the problem was given as a single sequence (results are then not arrays). */
  single: boolean;
}

function isCross(x: SequenceInput): x is CrossInput {
  return typeof x === 'object' && x !== null && 'q' in x && 'k' in x && 'v' in x && !('rows' in x);
}

const UPPER: Record<Target, string> = { q: 'Q', k: 'K', v: 'V' };

/**
 * Checks every shape, dtype, finiteness and option of a {@link LoraProblem}, naming the offending
 * matrix and both shapes, and forms the adapted weights.
 */
export function normalizeProblem(problem: LoraProblem): NormalizedProblem {
  const { weights } = problem;
  for (const t of TARGETS) {
    if (!weights || !weights[t]) throw new InvalidArgumentError(`weights.${t} (W*_${UPPER[t]}) is missing`);
  }
  const inputDim = weights.q.rows;
  const outputDim = weights.q.cols;
  const dtype = weights.q.dtype;
  for (const t of TARGETS) {
    const w = weights[t];
    if (w.rows !== inputDim || w.cols !== outputDim) {
      throw new ShapeError(`W*_${UPPER[t]} is ${w.rows}×${w.cols} but W*_Q is ${inputDim}×${outputDim}; all frozen weights must have one shape`);
    }
    if (w.dtype !== dtype) throw new InvalidArgumentError(`W*_${UPPER[t]} is ${w.dtype} but W*_Q is ${dtype}`);
    assertFinite(w, `W*_${UPPER[t]}`);
  }
  const adapters = problem.adapters ?? {};
  for (const key of Object.keys(adapters)) {
    if (!(TARGETS as readonly string[]).includes(key)) {
      throw new InvalidArgumentError(`adapter for unknown target "${key}"; targets are q, k and v`);
    }
  }
  const adapted = TARGETS.filter((t) => adapters[t] !== undefined);
  if (adapted.length === 0) throw new InvalidArgumentError('no adapter given: add at least one of adapters.q, adapters.k, adapters.v');
  const rank = adapters[adapted[0]]!.a.rows;
  for (const t of adapted) {
    const { a, b } = adapters[t]!;
    if (b.rows !== inputDim)
      throw new ShapeError(`B_${UPPER[t]} is ${b.rows}×${b.cols} but W*_${UPPER[t]} is ${inputDim}×${outputDim}: B needs ${inputDim} rows`);
    if (a.cols !== outputDim)
      throw new ShapeError(`A_${UPPER[t]} is ${a.rows}×${a.cols} but W*_${UPPER[t]} is ${inputDim}×${outputDim}: A needs ${outputDim} columns`);
    if (a.rows !== b.cols)
      throw new ShapeError(`A_${UPPER[t]} is ${a.rows}×${a.cols} and B_${UPPER[t]} is ${b.rows}×${b.cols}: the rank r must agree (rows of A = columns of B)`);
    if (a.rows !== rank) throw new ShapeError(`A_${UPPER[t]} has rank ${a.rows} but A_${UPPER[adapted[0]]} has rank ${rank}; one r per problem`);
    if (rank === 0) throw new ShapeError(`A_${UPPER[t]} has rank 0`);
    if (a.dtype !== dtype || b.dtype !== dtype) throw new InvalidArgumentError(`adapter ${t} is not ${dtype} like the weights`);
    assertFinite(a, `A_${UPPER[t]}`);
    assertFinite(b, `B_${UPPER[t]}`);
  }
  const heads = problem.heads ?? 1;
  if (!Number.isInteger(heads) || heads < 1) throw new InvalidArgumentError(`heads must be a positive integer, got ${heads}`);
  if (outputDim % heads !== 0) throw new ShapeError(`d_out = ${outputDim} is not a multiple of heads = ${heads}`);
  const headDim = outputDim / heads;
  const beta = resolveBeta(problem.beta, headDim);
  const causal = problem.causal ?? false;

  const single = !Array.isArray(problem.x);
  const inputs = (single ? [problem.x] : problem.x) as readonly SequenceInput[];
  const targets = (single ? [problem.target] : problem.target) as readonly Matrix[];
  if (!single && (!Array.isArray(problem.target) || targets.length !== inputs.length)) {
    throw new ShapeError(
      `x is a batch of ${inputs.length} sequences but target ${Array.isArray(problem.target) ? `has ${targets.length}` : 'is a single matrix'}`,
    );
  }
  if (inputs.length === 0) throw new ShapeError('the batch is empty');
  const sequences = inputs.map((input, n) => {
    const where = single ? '' : ` of sequence ${n}`;
    const [xq, xk, xv] = isCross(input) ? [input.q, input.k, input.v] : [input, input, input];
    const y = targets[n];
    const named: [Matrix, string][] = [
      [xq, `X_Q${where}`],
      [xk, `X_K${where}`],
      [xv, `X_V${where}`],
    ];
    for (const [m, name] of named) {
      if (!m || typeof m.rows !== 'number') throw new InvalidArgumentError(`${name} is not a matrix`);
      if (m.cols !== inputDim) throw new ShapeError(`${name} is ${m.rows}×${m.cols} but the weights are ${inputDim}×${outputDim}: X needs ${inputDim} columns`);
      if (m.dtype !== dtype) throw new InvalidArgumentError(`${name} is ${m.dtype} but the weights are ${dtype}`);
      assertFinite(m, name);
    }
    if (xk.rows !== xv.rows) throw new ShapeError(`X_K${where} has ${xk.rows} rows and X_V${where} has ${xv.rows}; keys and values must pair up`);
    if (xk.rows === 0) throw new ShapeError(`X_K${where} has no rows`);
    if (causal && xq.rows !== xk.rows)
      throw new ShapeError(`causal attention needs as many queries as keys; X_Q${where} has ${xq.rows} rows and X_K${where} ${xk.rows}`);
    if (!y || typeof y.rows !== 'number') throw new InvalidArgumentError(`target${where} is not a matrix`);
    if (y.rows !== xq.rows || y.cols !== outputDim)
      throw new ShapeError(`target Y${where} is ${y.rows}×${y.cols} but must be ${xq.rows}×${outputDim} (queries × d_out)`);
    if (y.dtype !== dtype) throw new InvalidArgumentError(`target Y${where} is ${y.dtype} but the weights are ${dtype}`);
    assertFinite(y, `target Y${where}`);
    return { xq, xk, xv, y };
  });

  const scaling = loraScaling(problem.alpha, rank);
  const effective = {} as Record<Target, Matrix>;
  for (const t of TARGETS) {
    const adapter = adapters[t];
    effective[t] = adapter ? add(weights[t], scale(matmul(adapter.b, adapter.a), scaling)) : weights[t];
  }
  return {
    sequences,
    frozen: { q: weights.q, k: weights.k, v: weights.v },
    effective,
    adapters,
    adapted,
    scaling,
    rank,
    beta,
    heads,
    headDim,
    inputDim,
    outputDim,
    causal,
    single,
  };
}
