import { InvalidArgumentError, matmul, Matrix, ones, scaleRows, sub } from '@almora/tensor';
import {
  type CertifiedFactor,
  certifiedError,
  certifyPolynomial,
  checkDegree,
  chooseDegree,
  DEFAULT_MAX_DEGREE,
  type DegreeChoice,
  type ErrorBound,
  meetsEpsilon as certified,
  type RoundingModel,
  UNIT_ROUNDOFFS,
} from './bound.js';
import { featureRank, polynomialFeatures } from './features.js';
import { expPolynomial, type ExpPolynomial, type PolynomialMethod } from './polynomial.js';
import { certifiedRange, type RangeReport } from './range.js';

/** Options of {@link planSoftmaxApproximation} and {@link approximateSoftmaxKernel}. */
export interface ApproximationOptions {
  /** Softmax temperature β in exp(β·QKᵀ); must be > 0. */
  beta: number;
  /** Target entrywise relative error of the softmax f̂ against f; default 1e-3. */
  epsilon?: number;
  /** Polynomial family: 'taylor' (the paper's), 'chebyshev', or 'auto' (default): Chebyshev only where it certifies ε at a lower degree than Taylor (so Taylor whenever the degree is forced). */
  method?: PolynomialChoice;
  /** What the degree must certify: the softmax (default), or with 'softmax-and-derivative' also p′, for reverse mode through the features. */
  factor?: CertifiedFactor;
  /** The range of these Q and K, when it was already computed ({@link certifiedRange} with the same β and centering). */
  range?: RangeReport;
  /** Use exactly this degree instead of choosing one from epsilon (the bound is still reported). */
  degree?: number;
  /** Largest degree the chooser may pick; default 24. */
  maxDegree?: number;
  /** Subtract the mean key when that shrinks the range; default false. */
  centerKeys?: boolean;
  /** Precision the low-rank products run in, whose rounding the bound includes; default float32 when Q or K is float32, else float64. */
  precision?: 'float64' | 'float32';
  /** Bytes U and V (and one working copy) may take; beyond it the plan is out of regime ('memory'). Default 1 GiB. */
  memoryBudget?: number;
}

/** A polynomial family, or 'auto': per call, whichever family certifies ε at the lower degree. */
export type PolynomialChoice = PolynomialMethod | 'auto';

const FAMILIES: readonly PolynomialMethod[] = ['taylor', 'chebyshev'];

/**
 * The family that needs the lower degree. On a tie — and so whenever the degree is forced — the
 * first listed (Taylor) stays: both meet ε (or neither was asked to), and Taylor's error is
 * concentrated at the ends of the range, where few scores fall, while Chebyshev's equioscillates
 * across it — on the bench's headline problem Chebyshev at degree 2 has ~10× Taylor's gradient error
 * at degree 2 (apps/bench/results/phase.md).
 */
function bestChoice(choices: (DegreeChoice | undefined)[]): DegreeChoice | undefined {
  let best: DegreeChoice | undefined;
  for (const c of choices) if (c && (!best || c.degree < best.degree)) best = c;
  return best;
}

/** Why an approximation is not worth building (the paper's phase transition, in the user's terms). */
export type OutOfRegimeReason = 'precision' | 'no-speedup' | 'memory' | 'non-positive-row-sums';

/** Everything decided before any feature is built, in O(L·d² + 64·L·d) time. */
export interface ApproximationPlan {
  /** Polynomial family chosen. */
  method: PolynomialMethod;
  /** Target ε on the softmax. */
  epsilon: number;
  /** What the degree was chosen to certify. */
  factor: CertifiedFactor;
  /** Degree chosen (or forced); undefined when no degree ≤ maxDegree meets ε. */
  degree: number | undefined;
  /** The polynomial, when a degree is set. */
  polynomial: ExpPolynomial | undefined;
  /** Rank C(d+g, g) of U₁ and V₁, when a degree is set. */
  rank: number | undefined;
  /** Certified error of that degree on the range, when a degree is set. */
  bound: ErrorBound | undefined;
  /** Whether the bound meets ε (for `factor`). */
  meetsEpsilon: boolean;
  /** R, Γ, √(log L), centering. */
  range: RangeReport;
  /** Multiply-adds of one low-rank attention product, L·k·d (and of the exact one, L_q·L_k·d). */
  predictedCost: {
    /** Multiply-adds of the low-rank path (undefined without a degree). */
    fast: number | undefined;
    /** Multiply-adds of exact attention. */
    exact: number;
  };
  /** undefined when in the efficient regime; otherwise why not. */
  outOfRegime:
    | {
        /** Which limit was hit. */
        reason: OutOfRegimeReason;
        /** One sentence with the numbers. */
        message: string;
      }
    | undefined;
}

/**
 * A low-rank stand-in for exp(β·QKᵀ) and its softmax f̂ = D̂⁻¹U₁V₁ᵀ, never formed as an L×L matrix.
 * The paper's Lemma 3.3 step.
 */
export interface KernelApproximation {
  /** How U and V were built. */
  method: PolynomialMethod | 'favor+';
  /** Whether `bound` is a proven bound (polynomial methods) or there is none (random features). */
  certified: boolean;
  /** U₁ (L_q×k). */
  u: Matrix;
  /** V₁ (L_k×k), built from centered keys when the range says so. */
  v: Matrix;
  /** k. */
  rank: number;
  /** Degree of the polynomial, or undefined for random features. */
  degree: number | undefined;
  /** Certified bound, or undefined for random features. */
  bound: ErrorBound | undefined;
  /** D̂ = U₁·(V₁ᵀ·1), every entry checked > 0. */
  rowSums: Float64Array;
  /** The range report the features were built against. */
  range: RangeReport;
}

/** The result of {@link approximateSoftmaxKernel}: the factors, or why they were not built. */
export type ApproximationResult =
  | {
      /** The kernel was approximated. */
      status: 'approximated';
      /** The plan it followed. */
      plan: ApproximationPlan;
      /** The factors. */
      approximation: KernelApproximation;
    }
  | {
      /** The norms are outside the efficient regime: nothing was built. */
      status: 'out-of-regime';
      /** The plan that refused. */
      plan: ApproximationPlan;
      /** Which limit was hit. */
      reason: OutOfRegimeReason;
      /** One sentence with the numbers. */
      message: string;
    };

const GiB = 2 ** 30;

/**
 * Decides degree, rank and bound from R and ε, and whether the low-rank path is worth it: it is not
 * when no degree ≤ maxDegree meets ε ('precision'), when rank·d ≥ L so the low-rank products cost as
 * much as the exact ones ('no-speedup'), or when U and V would not fit the memory budget ('memory').
 */
export function planSoftmaxApproximation(q: Matrix, k: Matrix, options: ApproximationOptions): ApproximationPlan {
  const epsilon = options.epsilon ?? 1e-3;
  const choice = options.method ?? 'auto';
  const factor = options.factor ?? 'softmax';
  const budget = options.memoryBudget ?? GiB;
  if (!Number.isFinite(epsilon) || epsilon <= 0) throw new InvalidArgumentError(`epsilon must be finite and > 0, got ${epsilon}`);
  if (!(budget > 0)) throw new InvalidArgumentError(`memoryBudget must be > 0, got ${budget}`);
  if (choice !== 'auto' && !FAMILIES.includes(choice))
    throw new InvalidArgumentError(`unknown polynomial method "${String(choice)}"; use 'taylor', 'chebyshev' or 'auto'`);
  const families = choice === 'auto' ? FAMILIES : [choice];
  if (options.degree !== undefined) checkDegree(options.degree, 'degree');
  if (options.maxDegree !== undefined) checkDegree(options.maxDegree, 'maxDegree');
  const range = options.range ?? certifiedRange(q, k, options.beta, options.centerKeys ?? false);
  const precision = options.precision ?? (q.dtype === 'float32' || k.dtype === 'float32' ? 'float32' : 'float64');
  const rounding: RoundingModel = { unitRoundoff: UNIT_ROUNDOFFS[precision], keys: k.rows, dimension: q.cols, normRange: range.featureNormRange };
  let picked: DegreeChoice | undefined;
  // When the norms are so large that R overflowed, nothing can be certified at any degree.
  if (range.range < Number.POSITIVE_INFINITY) {
    if (options.degree === undefined) {
      picked = bestChoice(families.map((family) => chooseDegree(range.range, epsilon, family, options.maxDegree ?? DEFAULT_MAX_DEGREE, factor, rounding)));
    } else {
      // A forced degree has no ε to lower it by, so 'auto' keeps Taylor (see bestChoice).
      const polynomial = expPolynomial(families[0], options.degree, range.range);
      picked = { degree: options.degree, polynomial, bound: certifyPolynomial(polynomial, range.range, rounding) };
    }
  }
  const polynomial: ExpPolynomial | undefined = picked?.polynomial;
  const bound: ErrorBound | undefined = picked?.bound;
  const method = polynomial?.method ?? families[0];
  const degree = polynomial?.degree;
  const d = q.cols;
  const rank = degree === undefined ? undefined : featureRank(d, degree);
  const length = Math.max(q.rows, k.rows);
  const exact = q.rows * k.rows * d;
  const fast = rank === undefined ? undefined : (q.rows + k.rows) * rank * d;
  const meetsEpsilon = bound !== undefined && certified(bound, epsilon, factor);
  const featureBytes = rank === undefined ? 0 : 2 * (q.dtype === 'float32' ? 4 : 8) * rank * (q.rows + k.rows);
  let outOfRegime: ApproximationPlan['outOfRegime'];
  // Memory first: a forced degree is built whatever its precision, so only this limit can stop it.
  if (featureBytes > budget) {
    outOfRegime = {
      reason: 'memory',
      message: `U and V of rank ${rank} would take ${(featureBytes / GiB).toPrecision(3)} GiB, over the ${(budget / GiB).toPrecision(3)} GiB memoryBudget`,
    };
  } else if (rank === undefined || !meetsEpsilon) {
    outOfRegime = {
      reason: 'precision',
      message:
        rank === undefined
          ? `no polynomial of degree ≤ ${options.maxDegree ?? DEFAULT_MAX_DEGREE} reaches ε = ${epsilon} on the range R = ${range.range.toPrecision(4)} (Γ = ${range.gamma.toPrecision(3)} vs √log L = ${range.threshold.toPrecision(3)}): the norms are past the efficient regime`
          : `degree ${degree} certifies only ${certifiedError(bound!, factor).toPrecision(3)} > ε = ${epsilon} on R = ${range.range.toPrecision(4)}`,
    };
  } else if (rank * d >= length) {
    outOfRegime = {
      reason: 'no-speedup',
      message: `rank ${rank} × d ${d} = ${rank * d} ≥ L = ${length}: the low-rank products would cost as much as exact attention`,
    };
  }
  return { method, epsilon, factor, degree, polynomial, rank, bound, meetsEpsilon, range, predictedCost: { fast, exact }, outOfRegime };
}

/** K with the plan's mean key subtracted from every row (K itself when not centered). */
export function centeredKeys(k: Matrix, range: RangeReport): Matrix {
  if (!range.centered) return k;
  return sub(k, matmul(ones(k.rows, 1, { dtype: k.dtype }), range.keyMean));
}

/** D̂ = U·(Vᵀ·1), computed without forming UVᵀ. */
export function lowRankRowSums(u: Matrix, v: Matrix): Float64Array {
  const vSum = matmul(v, ones(v.rows, 1, { dtype: v.dtype }), { transposeA: true });
  return Float64Array.from(matmul(u, vSum).data);
}

/**
 * U₁, V₁ with U₁V₁ᵀ ≈ exp(β·QK̃ᵀ) (K̃ = K, or K centered when the plan says so), and the row sums
 * D̂ checked positive. Outside the efficient regime the factors are not built and the result says
 * why — unless `degree` was forced, in which case they are built (memory permitting) and the plan
 * says whether ε is met. Row sums that are not all positive refuse the result whatever was asked.
 *
 * @example
 * ```ts
 * import { approximateSoftmaxKernel, denseSoftmax, exactSoftmax } from '@almora/kernels';
 * import { maxAbs, Rng, randomNormal, scale, sub } from '@almora/tensor';
 *
 * const rng = new Rng(1);
 * const [q, k] = [scale(randomNormal(1024, 4, rng), 0.3), scale(randomNormal(1024, 4, rng), 0.3)];
 * const result = approximateSoftmaxKernel(q, k, { beta: 1 / 2, epsilon: 1e-3 });
 * if (result.status === 'approximated') {
 *   const { degree, rank, bound } = result.plan;
 *   const measured = maxAbs(sub(denseSoftmax(result.approximation), exactSoftmax(q, k, 1 / 2))); // dense only to check a small case
 *   console.log(degree, rank, bound.softmaxRelative, measured); // the certified entrywise relative bound, and the measured absolute error
 * } else console.log(result.reason, result.message); // e.g. 'no-speedup' when rank·d ≥ L
 * ```
 */
export function approximateSoftmaxKernel(q: Matrix, k: Matrix, options: ApproximationOptions): ApproximationResult {
  const plan = planSoftmaxApproximation(q, k, options);
  const forced = options.degree !== undefined;
  if (plan.outOfRegime && (!forced || plan.outOfRegime.reason === 'memory')) {
    return { status: 'out-of-regime', plan, reason: plan.outOfRegime.reason, message: plan.outOfRegime.message };
  }
  const polynomial = plan.polynomial!;
  const u = polynomialFeatures(q, polynomial, options.beta, 'query');
  const v = polynomialFeatures(centeredKeys(k, plan.range), polynomial, options.beta, 'key');
  const rowSums = lowRankRowSums(u, v);
  const bad = rowSums.findIndex((s) => !(s > 0));
  if (bad >= 0) {
    return {
      status: 'out-of-regime',
      plan,
      reason: 'non-positive-row-sums',
      message: `row ${bad} of the approximate softmax sums to ${rowSums[bad]} ≤ 0: degree ${polynomial.degree} goes negative on this range, so D⁻¹ would be meaningless`,
    };
  }
  return {
    status: 'approximated',
    plan,
    approximation: {
      method: plan.method,
      certified: true,
      u,
      v,
      rank: plan.rank!,
      degree: polynomial.degree,
      bound: plan.bound,
      rowSums,
      range: plan.range,
    },
  };
}

/** f̂·M = D̂⁻¹U₁(V₁ᵀM), in O(L·k·m) for M of m columns: the approximate attention applied to M. */
export function applySoftmax(approximation: KernelApproximation, m: Matrix): Matrix {
  const inverse = approximation.rowSums.map((s) => 1 / s);
  return scaleRows(matmul(approximation.u, matmul(approximation.v, m, { transposeA: true })), inverse);
}

/** f̂ᵀ·M = V₁(U₁ᵀ(D̂⁻¹M)), in O(L·k·m): the transpose of the approximate attention applied to M. */
export function applySoftmaxTransposed(approximation: KernelApproximation, m: Matrix): Matrix {
  const inverse = approximation.rowSums.map((s) => 1 / s);
  return matmul(approximation.v, matmul(approximation.u, scaleRows(m, inverse), { transposeA: true }));
}

/** The dense L_q×L_k softmax f̂ = D̂⁻¹U₁V₁ᵀ, for tests and small cases only (O(L²) memory). */
export function denseSoftmax(approximation: KernelApproximation): Matrix {
  const inverse = approximation.rowSums.map((s) => 1 / s);
  return scaleRows(matmul(approximation.u, approximation.v, { transposeB: true }), inverse);
}
