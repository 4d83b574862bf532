import { addInto, type DeviceMatrix, InvalidArgumentError, type Matrix, maxAbs, sliceRows, transpose, zeros } from '@almora/tensor';
import { adapterGradients, type LoraWeights } from './adapters.js';
import { type CorePlan, planAttention } from './plan.js';
import type { AttentionReport } from './report.js';
import { coreLoss, type HeadSink } from './run.js';
import { type Reading, runLater, runNow } from './head.js';
import { type DenseProducts, denseProducts } from './products.js';
import type { AttentionOptions } from './options.js';
import { normalizeProblem, type LoraProblem, type NormalizedProblem, type Target } from './problem.js';
import { fmt, normQuantities, type NormQuantity } from './regime.js';

/** Options of {@link loraGradients}: the attention core's (but `probabilityBudget`: exact heads run one fused pass and keep nothing), plus what to return. */
export interface LoraOptions extends Omit<AttentionOptions, 'probabilityBudget'> {
  /** Also return ∂loss/∂W_μ for each adapted μ; default false. */
  weightGradients?: boolean;
  /**
   * A guarantee on the gradients themselves, for method 'auto': the fast gradients are kept only
   * when their certified relative error bound (`relative`, against the exact gradient, for every
   * adapter tensor) is finite and at most this; otherwise the call recomputes exactly and says why.
   * The bound is rigorous but worst-case (orders of magnitude above the measured error), so this
   * buys certainty with speed. Default: none (ε then promises the attention matrix only).
   */
  gradientEpsilon?: number;
}

/** Gradients of one adapter, in the paper's orientation. */
export interface AdapterGradient {
  /** ∂loss/∂A (r×d_out). */
  a: Matrix;
  /** ∂loss/∂B (d_in×r). */
  b: Matrix;
  /** ∂loss/∂W (d_in×d_out), when asked for. */
  w?: Matrix;
}

/**
 * A certified bound on a gradient's error, in three statements of decreasing strength: `absolute`
 * always holds; `relativeToComputed` scales it by the gradient that was computed and is finite
 * whenever that is not 0; `relative` is a true bound on the error relative to the exact gradient,
 * finite only when `absolute` < max|Ĝ| (otherwise the exact gradient could be 0).
 */
export interface GradientErrorBound {
  /** Upper bound on max|Ĝ − G|. */
  absolute: number;
  /** absolute / max|Ĝ|: the bound in units of the computed gradient's largest entry. */
  relativeToComputed: number;
  /** Upper bound on max|Ĝ − G| / max|G| (Infinity when the gradient may be 0). */
  relative: number;
}

/** Certified bounds on one adapter's gradient errors. */
export interface AdapterErrorBound {
  /** Bound on ∂A's error. */
  a: GradientErrorBound;
  /** Bound on ∂B's error. */
  b: GradientErrorBound;
  /** Bound on ∂W's error, when weight gradients were asked for. */
  w?: GradientErrorBound;
}

/** What the attention core decided for every head, with the paper's norms and the gradient bound. */
export interface GradientReport extends AttentionReport {
  /** The paper's norm quantities (Remark 5.2). */
  norms: NormQuantity[];
  /**
   * Certified bounds on each adapter gradient's error (when the computation ran in float64; exact
   * heads add nothing). Rigorous but worst-case: on the bench's problems the measured error sits
   * orders of magnitude below it (apps/bench/results/phase.md measures by how much).
   */
  gradientBound: Partial<Record<Target, AdapterErrorBound>> | undefined;
  /** The largest certified relative gradient error over every adapter tensor (0 when every head ran exact; Infinity when no finite bound exists; undefined in float32 with fast heads, where none is computed). */
  gradientRelativeBound: number | undefined;
  /** One sentence: what the gradients are guaranteed to be, or plainly that nothing is guaranteed beyond the attention matrix. */
  gradientGuarantee: string;
}

/** Result of {@link loraGradients}. */
export interface LoraGradients {
  /** ½‖O − Y‖²_F, summed over the batch. */
  loss: number;
  /** O per sequence (an array for a batch, a matrix for a single sequence). */
  output: Matrix | Matrix[];
  /** Gradients of every adapter given. */
  grads: Partial<Record<Target, AdapterGradient>>;
  /** What was decided for every head and why, in numbers. */
  report: GradientReport;
}

/**
 * Loss, outputs and the gradients of every LoRA adapter of an attention layer — the paper's
 * Problem 1 (ALoRAGC), in the paper's notation — exactly (Θ(L²·d), Theorem F.1) or by the
 * almost-linear chain (Theorems 3.1 / A.1), with 'auto' choosing per head by the regime check and
 * reporting why. A thin wrapper over the attention core ({@link attention}): forward, c = O − Y,
 * backward (exact heads fuse the two, since c of a block of rows is known with its output).
 *
 * 'auto' plans every head (R, Γ, degree, rank, certified attention bound) in O(L·d²); a head out
 * of the efficient regime (no degree certifies ε, or memory), or not predicted cheaper, is computed
 * exactly; the others run the cheaper certified fast variant, with a certified attention error ≤ ε
 * and, in float64, a certified (worst-case) gradient error bound.
 *
 * Orientation: the paper's W (d_in×d_out), B (d_in×r), A (r×d_out). PEFT's `lora_A` is this Bᵀ
 * and its `lora_B` this Aᵀ; {@link loraAttention} takes PEFT's tensors as they are.
 *
 * @example
 * ```ts
 * import { loraGradients, syntheticProblem } from '@almora/lora';
 * import { Rng } from '@almora/tensor';
 *
 * // One head, L = 4,096, Γ = 0.5: well inside the regime where the fast path is certified.
 * const problem = syntheticProblem({ length: 4096, d: 8, rank: 2, targets: ['q', 'v'], gamma: 0.5 }, new Rng(1));
 * const { loss, grads, report } = loraGradients(problem, { method: 'auto', epsilon: 1e-3 });
 * console.log(loss > 0, report.chosen, grads.q.a.shape, grads.q.b.shape); // true fast [ 2, 8 ] [ 8, 2 ]
 * ```
 */
export function loraGradients(problem: LoraProblem, options: LoraOptions = {}): LoraGradients {
  return runNow(gradients(problem, options));
}

/**
 * {@link loraGradients} for any backend, asynchronous devices (WebGPU) included: the same
 * algorithm, with every read-back awaited instead of taken at once.
 */
export function loraGradientsAsync(problem: LoraProblem, options: LoraOptions = {}): Promise<LoraGradients> {
  return runLater(gradients(problem, options));
}

/** The paper's (A, B) as PEFT's (lora_A = Bᵀ, lora_B = Aᵀ), the orientation the shared chain rule speaks. */
function peft(adapter: { a: Matrix; b: Matrix }): LoraWeights {
  return { lora_A: transpose(adapter.b), lora_B: transpose(adapter.a) };
}

function relativeBound(absolute: number, estimate: Matrix): GradientErrorBound {
  if (absolute === 0) return { absolute, relativeToComputed: 0, relative: 0 };
  const computed = maxAbs(estimate);
  const floor = computed - absolute;
  return {
    absolute,
    relativeToComputed: computed > 0 ? absolute / computed : Number.POSITIVE_INFINITY,
    relative: floor > 0 ? absolute / floor : Number.POSITIVE_INFINITY,
  };
}

const GRADIENT_OF: Record<Target, 'dq' | 'dk' | 'dv'> = { q: 'dq', k: 'dk', v: 'dv' };

/**
 * ∂W = Σ_n ∂Y_nᵀ·X_n (out×in, PEFT's orientation) for every adapted target, and the bound's
 * |∂Y|ᵀ·|X|, summed head by head as the core hands over each head's gradients: a head's rows of ∂W
 * are its ∂Yᵀ·X, multiplied on the backend where its ∂Y already is.
 */
function weightSums(p: NormalizedProblem, core: CorePlan, products: DenseProducts) {
  const weights: Partial<Record<Target, Matrix>> = {};
  const bounds: Partial<Record<Target, Matrix>> = {};
  const add: HeadSink<DeviceMatrix> = function* (plan, grads, bound) {
    const s = p.sequences[plan.sequence];
    for (const t of p.adapted) {
      const x = t === 'q' ? s.xq : t === 'k' ? s.xk : s.xv;
      const width = t === 'v' ? core.layout.valueDim : core.layout.headDim;
      const sum = () => zeros(core.layout.heads * width, x.cols, { dtype: x.dtype });
      const rows = (m: Matrix) => sliceRows(m, plan.head * width, (plan.head + 1) * width);
      const name = GRADIENT_OF[t];
      addInto(rows((weights[t] ??= sum())), yield* products.transposedProduct(core.options.backend, grads[name], x, name));
      if (bound) addInto(rows((bounds[t] ??= sum())), yield* products.matmul(bound[name], x, { transposeA: true }, true));
    }
  };
  return { weights, bounds, add };
}

/** The paper's Problem 1 through the attention core: project, forward and backward with c = O − Y, then the LoRA chain rule. */
function* gradients(problem: LoraProblem, options: LoraOptions): Reading<LoraGradients> {
  const wanted = options.gradientEpsilon;
  if (wanted !== undefined && !(Number.isFinite(wanted) && wanted > 0)) throw new InvalidArgumentError(`gradientEpsilon must be finite and > 0, got ${wanted}`);
  const p = normalizeProblem(problem);
  // The projections, weight gradients and norms are dense products over X: each X goes to the backend once.
  const products = denseProducts(options.backend);
  try {
    return yield* gradientsOf(problem, p, products, options);
  } finally {
    products.release();
  }
}

/** {@link gradients} of a normalized problem, its dense products through `products`. */
function* gradientsOf(problem: LoraProblem, p: NormalizedProblem, products: DenseProducts, options: LoraOptions): Reading<LoraGradients> {
  const wanted = options.gradientEpsilon;
  const sequences: { q: Matrix; k: Matrix; v: Matrix }[] = [];
  for (const s of p.sequences)
    sequences.push({
      q: yield* products.matmul(s.xq, p.effective.q),
      k: yield* products.matmul(s.xk, p.effective.k),
      v: yield* products.matmul(s.xv, p.effective.v),
    });
  // Exact heads run forward and backward as one fused pass, so nothing is kept between them.
  const core = planAttention(sequences, { ...options, heads: p.heads, causal: p.causal, beta: p.beta, probabilityBudget: 0 });
  const sums = weightSums(p, core, products);
  const { outputs, bounded } = yield* coreLoss(
    core,
    p.sequences.map((s) => s.y),
    sums.add,
  );
  let loss = 0;
  outputs.forEach((o, n) => {
    const y = p.sequences[n].y;
    for (let i = 0; i < o.rows; i++) {
      const [oRow, yRow] = [o.offset + i * o.stride, y.offset + i * y.stride];
      for (let j = 0; j < o.cols; j++) loss += 0.5 * (o.data[oRow + j] - y.data[yRow + j]) ** 2;
    }
  });
  const grads: Partial<Record<Target, AdapterGradient>> = {};
  for (const t of p.adapted) {
    const weight = sums.weights[t]!;
    const { lora_A, lora_B } = adapterGradients(weight, peft(p.adapters[t]!), p.scaling);
    grads[t] = { a: transpose(lora_B), b: transpose(lora_A), ...(options.weightGradients ? { w: transpose(weight) } : {}) };
  }
  let gradientBound: GradientReport['gradientBound'];
  const fastHeads = core.plans.some((plan) => plan.path === 'fast');
  if (bounded) {
    gradientBound = {};
    for (const t of p.adapted) {
      const weight = sums.bounds[t]!;
      const { lora_A, lora_B } = adapterGradients(weight, peft(p.adapters[t]!), p.scaling, true);
      gradientBound[t] = {
        a: relativeBound(maxAbs(lora_B), grads[t]!.a),
        b: relativeBound(maxAbs(lora_A), grads[t]!.b),
        ...(options.weightGradients ? { w: relativeBound(maxAbs(weight), grads[t]!.w!) } : {}),
      };
    }
  }
  const relatives = gradientBound ? Object.values(gradientBound).flatMap((b) => [b.a.relative, b.b.relative, ...(b.w ? [b.w.relative] : [])]) : [];
  const gradientRelativeBound = !fastHeads ? 0 : gradientBound ? Math.max(...relatives) : undefined;
  if (wanted !== undefined && core.options.method === 'auto' && fastHeads && !(gradientRelativeBound! <= wanted)) {
    const why = `the fast gradients' certified relative error bound is ${gradientRelativeBound === undefined ? 'not computed in float32' : fmt(gradientRelativeBound)}, not ≤ gradientEpsilon = ${wanted}`;
    const exact = yield* gradients(problem, { ...options, method: 'exact', gradientEpsilon: undefined });
    exact.report.steps.push(`auto planned ${core.report.chosen} (${core.report.reason}); ${why}: recomputed exactly`);
    return { ...exact, report: { ...exact.report, requested: 'auto', reason: `exact: ${why}` } };
  }
  const gradientGuarantee = !fastHeads
    ? 'exact gradients: every head ran the exact path (only floating-point rounding)'
    : gradientRelativeBound === undefined
      ? 'no gradient-level guarantee: the fast path ran in float32, whose rounding the gradient bound does not cover; only the attention matrix is certified (attentionBound per head)'
      : Number.isFinite(gradientRelativeBound)
        ? `certified: every adapter gradient is within ${fmt(gradientRelativeBound)} of the exact one, relative to its largest entry (worst case; the measured error is usually far smaller)`
        : 'no finite gradient-level guarantee: the certified error could exceed the gradient itself (gradientBound gives absolute bounds); only the attention matrix is certified';
  const report: GradientReport = { ...core.report, norms: yield* normQuantities(p, products), gradientBound, gradientRelativeBound, gradientGuarantee };
  return { loss, output: p.single ? outputs[0] : outputs, grads, report };
}
