import { InvalidArgumentError } from '@almora/tensor';
import { expPolynomial, relativeErrorBound, type ExpPolynomial, type PolynomialMethod } from './polynomial.js';

/**
 * What an approximation certifies, derived from δ = sup_{|t|≤R} |p(t)e^{−t} − 1|.
 *
 * If every entry satisfies |Â_ij − A_ij| ≤ δ·A_ij (A = exp(β·QKᵀ), Â = U₁V₁ᵀ), then row sums obey
 * (1−δ)D_i ≤ D̂_i ≤ (1+δ)D_i, so f̂_ij = Â_ij/D̂_i lies in [f_ij(1−δ)/(1+δ), f_ij(1+δ)/(1−δ)]:
 * |f̂_ij − f_ij| ≤ f_ij·2δ/(1−δ). Summed over a row, ‖f̂_i − f_i‖₁ ≤ 2δ/(1−δ), so the attention
 * output is off by at most 2δ/(1−δ)·max_j|V_jc| in every entry.
 */
export interface ErrorBound {
  /** δ: relative error of p against exp on the certified range. */
  expRelative: number;
  /** 2δ/(1−δ): entrywise relative error of the softmax f̂ against f (Infinity when δ ≥ 1). */
  softmaxRelative: number;
  /** δ·e^R: entrywise absolute error of U₁V₁ᵀ against the exponential matrix it stands for. */
  kernelAbsolute: number;
}

/** Turns δ on a range R into the bounds of {@link ErrorBound}. */
export function errorBoundFromDelta(delta: number, range: number): ErrorBound {
  return {
    expRelative: delta,
    softmaxRelative: delta < 1 ? (2 * delta) / (1 - delta) : Number.POSITIVE_INFINITY,
    kernelAbsolute: delta * Math.exp(range),
  };
}

/** The certified bound of a given polynomial on [−range, range]. */
export function certifyPolynomial(polynomial: ExpPolynomial, range: number): ErrorBound {
  return errorBoundFromDelta(relativeErrorBound(polynomial.coefficients, range), range);
}

/** The smallest adequate degree, its polynomial and bound. */
export interface DegreeChoice {
  /** The polynomial degree g. */
  degree: number;
  /** The polynomial of that degree. */
  polynomial: ExpPolynomial;
  /** Its certified error on the range. */
  bound: ErrorBound;
}

/** Largest degree the chooser tries by default. */
export const DEFAULT_MAX_DEGREE = 24;

/**
 * The smallest degree g ≤ maxDegree whose certified softmax bound 2δ/(1−δ) on [−range, range] is at
 * most `epsilon`, or undefined when none is: past the paper's phase transition, no degree is cheap.
 */
export function chooseDegree(range: number, epsilon: number, method: PolynomialMethod, maxDegree = DEFAULT_MAX_DEGREE): DegreeChoice | undefined {
  if (!Number.isFinite(epsilon) || epsilon <= 0) throw new InvalidArgumentError(`epsilon must be finite and > 0, got ${epsilon}`);
  if (!Number.isInteger(maxDegree) || maxDegree < 0) throw new InvalidArgumentError(`maxDegree must be a non-negative integer, got ${maxDegree}`);
  if (range === Number.POSITIVE_INFINITY) return undefined;
  for (let degree = 0; degree <= maxDegree; degree++) {
    const polynomial = expPolynomial(method, degree, range);
    const bound = certifyPolynomial(polynomial, range);
    if (bound.softmaxRelative <= epsilon) return { degree, polynomial, bound };
  }
  return undefined;
}
