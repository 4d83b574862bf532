import { InvalidArgumentError } from '@almora/tensor';
import { featureRank } from './features.js';
import {
  derivativePolynomial,
  evaluatePolynomial,
  expPolynomial,
  relativeErrorEnclosure,
  type ExpPolynomial,
  type PolynomialMethod,
  type RelativeErrorEnclosure,
} from './polynomial.js';

/**
 * What an approximation certifies on [−R, R], from the enclosure h(t) = p(t)e^{−t} − 1 ∈ [h₋, h₊].
 *
 * Every entry then has Â_ij = A_ij(1 + h_ij) (A = exp(β·QKᵀ), Â = U₁V₁ᵀ), and the row sum
 * D̂_i = D_i(1 + h̄_i) with h̄_i an average of the h_ij, so h̄_i ∈ [h₋, h₊] too. Hence
 * f̂_ij/f_ij = (1 + h_ij)/(1 + h̄_i) lies in [(1+h₋)/(1+h₊), (1+h₊)/(1+h₋)]:
 * |f̂_ij − f_ij| ≤ f_ij·(h₊ − h₋)/(1 + h₋). Scaling p changes nothing here, which is why the spread
 * h₊ − h₋ counts and not 2·max|h|. Summed over a row, ‖f̂_i − f_i‖₁ ≤ the same, so the attention
 * output is off by at most that times max_j|V_jc| in every entry.
 */
export interface ErrorBound {
  /** δ = max(|h₋|, |h₊|): relative error of p against exp on the certified range. */
  expRelative: number;
  /** h₋: a lower bound on p(t)e^{−t} − 1 over the range. */
  expLower: number;
  /** h₊: an upper bound on p(t)e^{−t} − 1 over the range. */
  expUpper: number;
  /** (h₊ − h₋)/(1 + h₋): entrywise relative error of the softmax f̂ against f (Infinity when h₋ ≤ −1). */
  softmaxRelative: number;
  /**
   * Entrywise relative error of p′(β·q_i·k_j)/D̂_i against f_ij: what reverse mode through the
   * features (the autodiff fast path) multiplies by where exact attention's backward has f. It is
   * governed by p′, one degree less accurate than p (Infinity when h₋ ≤ −1).
   */
  autodiffRelative: number;
  /** δ·e^R: entrywise absolute error of U₁V₁ᵀ against the exponential matrix it stands for. */
  kernelAbsolute: number;
  /** r: how far floating-point rounding of the low-rank products may move h, in units of exp(s) (0 when no {@link RoundingModel} was given); h₋ and h₊ already include it. */
  rounding: number;
}

/** The precision the low-rank products run in, and the sizes their rounding grows with. */
export interface RoundingModel {
  /** Unit roundoff u: 2⁻⁵³ for float64, 2⁻²⁴ for float32. */
  unitRoundoff: number;
  /** Keys per query row, L_k: the length of the sums over keys. */
  keys: number;
  /** Query and key width d; the rank k = C(d+g, g) follows from the degree. */
  dimension: number;
  /** β·max‖q‖·max‖k̃‖ for the keys the features see (`featureNormRange` of the range report). */
  normRange: number;
}

/** Unit roundoff of each precision. */
export const UNIT_ROUNDOFFS = {
  /** 2⁻⁵³. */
  float64: 2 ** -53,
  /** 2⁻²⁴. */
  float32: 2 ** -24,
} as const;

/**
 * How far rounding may move h = Â/A − 1 for a polynomial with these coefficients. Each computed
 * entry of U₁·(V₁ᵀ·M), and each row sum, is the exact one up to γ_n·(|U₁||V₁|ᵀ|M|) with
 * n = L_k + k + 2g + 3 roundings in a row (the two sums, the feature products; γ_n = nu/(1 − nu)),
 * and (|U₁||V₁|ᵀ)_ij = Σ_t |c_t|(β Σ_l|q_il||k̃_jl|)^t ≤ P_abs(normRange), while exp(s_ij) ≥ e^{−R}.
 * So in units of exp(s_ij) the rounding is at most γ_n·P_abs(normRange)·e^R — entry and row sum
 * alike — which widens the enclosure of h by that on both sides. A worst-case bound: γ_n grows
 * with L, where rounding in practice grows like √L.
 */
function roundingShift(coefficients: readonly number[], range: number, degree: number, model: RoundingModel): number {
  const n = model.keys + featureRank(model.dimension, degree) + 2 * degree + 3;
  const absolute = coefficients.reduce((sum, c, t) => sum + Math.abs(c) * model.normRange ** t, 0);
  // A zero polynomial (the derivative of degree 0) has nothing to round, whatever γ_n or e^R.
  return absolute === 0 ? 0 : gamma(n, model.unitRoundoff) * absolute * Math.exp(range);
}

const gamma = (n: number, u: number) => (n * u < 1 ? (n * u) / (1 - n * u) : Number.POSITIVE_INFINITY);

/**
 * A bound on the entrywise relative error of exact softmax attention computed in a precision:
 * each score β·q·k is off by at most (γ_d + 3u)·normRange (the dot product, β, the row maximum
 * subtracted), so exp of it by a factor e^{that}·(1+u); each row sum by γ_{L_k} more, and the
 * division rounds once. `normRange` is β·max‖q‖·max‖k‖ (`cauchySchwarzRange`). What the exact path
 * itself certifies: ~1e-12 in float64, but 1e-7 to 1e-3 in float32.
 */
export function exactSoftmaxRounding(model: RoundingModel): number {
  const u = model.unitRoundoff;
  const entry = Math.exp((gamma(model.dimension, u) + 3 * u) * model.normRange) * (1 + u) - 1;
  const sum = (1 + entry) * (1 + gamma(model.keys, u)) - 1;
  return sum < 1 ? ((1 + entry) * (1 + u)) / (1 - sum) - 1 : Number.POSITIVE_INFINITY;
}

function widened(enclosure: RelativeErrorEnclosure, by: number): RelativeErrorEnclosure {
  return { lower: enclosure.lower - by, upper: enclosure.upper + by };
}

function spread(forward: RelativeErrorEnclosure): number {
  return forward.lower > -1 ? (forward.upper - forward.lower) / (1 + forward.lower) : Number.POSITIVE_INFINITY;
}

/**
 * p′(s_ij)/D̂_i = f_ij·(1 + k_ij)/(1 + h̄_i) with k_ij ∈ [k₋, k₊] the relative error of p′ and h̄_i ∈
 * [h₋, h₊], 1 + h̄_i > 0; the quotient is linear in k and monotone in h̄ (either way, as 1 + k may
 * be negative), so the largest |quotient − 1| is at a corner of the box.
 */
function autodiffSpread(forward: RelativeErrorEnclosure, derivative: RelativeErrorEnclosure): number {
  if (!(forward.lower > -1)) return Number.POSITIVE_INFINITY;
  let worst = 0;
  for (const k of [derivative.lower, derivative.upper])
    for (const h of [forward.lower, forward.upper]) worst = Math.max(worst, Math.abs((1 + k) / (1 + h) - 1));
  return worst;
}

/** min and max of p(t)e^{−t} − 1 on a coarse uniform grid of [−R, R]: inside the enclosure, so a spread computed from them is a lower bound on the certified one. */
function sampledRange(coefficients: readonly number[], range: number): RelativeErrorEnclosure {
  let lower = Number.POSITIVE_INFINITY;
  let upper = Number.NEGATIVE_INFINITY;
  for (let i = 0; i <= 64; i++) {
    const t = -range + (2 * range * i) / 64;
    const h = evaluatePolynomial(coefficients, t) * Math.exp(-t) - 1;
    lower = Math.min(lower, h);
    upper = Math.max(upper, h);
  }
  return { lower, upper };
}

/**
 * A cheap lower bound on what {@link certifyPolynomial} would certify for `factor`, from samples:
 * the enclosures contain the sampled values, and both errors only grow as the intervals widen.
 * A degree it already puts above ε is skipped without the rigorous (grid-refining) enclosure.
 */
function sampledError(polynomial: ExpPolynomial, range: number, factor: CertifiedFactor): number {
  const forward = sampledRange(polynomial.coefficients, range);
  const softmax = spread(forward);
  if (factor === 'softmax') return softmax;
  return Math.max(softmax, autodiffSpread(forward, sampledRange(derivativePolynomial(polynomial).coefficients, range)));
}

/**
 * The certified bound of a given polynomial (and of its derivative, for the autodiff path) on
 * [−range, range] — in exact arithmetic, or with `rounding`, for the low-rank products computed in
 * that precision (the derivative's products are widened the same way, with its own coefficients).
 */
export function certifyPolynomial(polynomial: ExpPolynomial, range: number, rounding?: RoundingModel): ErrorBound {
  const derivativeCoefficients = derivativePolynomial(polynomial).coefficients;
  const shift = rounding ? roundingShift(polynomial.coefficients, range, polynomial.degree, rounding) : 0;
  const derivativeShift = rounding ? roundingShift(derivativeCoefficients, range, polynomial.degree, rounding) : 0;
  const forward = widened(relativeErrorEnclosure(polynomial.coefficients, range), shift);
  const derivative = widened(relativeErrorEnclosure(derivativeCoefficients, range), derivativeShift);
  const expRelative = Math.max(Math.abs(forward.lower), Math.abs(forward.upper));
  return {
    expRelative,
    expLower: forward.lower,
    expUpper: forward.upper,
    softmaxRelative: spread(forward),
    autodiffRelative: autodiffSpread(forward, derivative),
    kernelAbsolute: expRelative * Math.exp(range),
    rounding: shift,
  };
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
 * The largest polynomial degree anything accepts: certifying degree 100 takes ~40 ms, degree 1,000
 * ~16 s, and past ~100 the rank C(d+g, g) is beyond any machine for d ≥ 4 anyway.
 */
export const MAX_POLYNOMIAL_DEGREE = 100;

/** Checks a degree or degree limit: an integer in [0, MAX_POLYNOMIAL_DEGREE]. */
export function checkDegree(degree: number, name: string): void {
  if (!Number.isInteger(degree) || degree < 0 || degree > MAX_POLYNOMIAL_DEGREE)
    throw new InvalidArgumentError(`${name} must be an integer from 0 to ${MAX_POLYNOMIAL_DEGREE}, got ${degree}`);
}

/** Which of a bound's errors a degree must bring within ε. */
export type CertifiedFactor = 'softmax' | 'softmax-and-derivative';

/** The certified error that counts for `factor`: the softmax's, or the larger of it and the autodiff factor's. */
export function certifiedError(bound: ErrorBound, factor: CertifiedFactor = 'softmax'): number {
  return factor === 'softmax' ? bound.softmaxRelative : Math.max(bound.softmaxRelative, bound.autodiffRelative);
}

/** Whether `bound` meets ε for `factor`. */
export function meetsEpsilon(bound: ErrorBound, epsilon: number, factor: CertifiedFactor = 'softmax'): boolean {
  return certifiedError(bound, factor) <= epsilon;
}

/**
 * The smallest degree g ≤ maxDegree whose certified softmax bound on [−range, range] is at most
 * `epsilon` — and, with `factor` 'softmax-and-derivative', whose autodiff factor bound is too —
 * or undefined when none is: past the paper's phase transition, no degree is cheap. With
 * `rounding`, the bounds include the rounding of that precision (see {@link certifyPolynomial}).
 */
export function chooseDegree(
  range: number,
  epsilon: number,
  method: PolynomialMethod,
  maxDegree = DEFAULT_MAX_DEGREE,
  factor: CertifiedFactor = 'softmax',
  rounding?: RoundingModel,
): DegreeChoice | undefined {
  if (!Number.isFinite(epsilon) || epsilon <= 0) throw new InvalidArgumentError(`epsilon must be finite and > 0, got ${epsilon}`);
  checkDegree(maxDegree, 'maxDegree');
  if (range === Number.POSITIVE_INFINITY) return undefined;
  for (let degree = 0; degree <= maxDegree; degree++) {
    const polynomial = expPolynomial(method, degree, range);
    // A Chebyshev fit on a range so wide that exp overflows has no finite coefficients: nothing to certify.
    if (!polynomial.coefficients.every(Number.isFinite)) return undefined;
    if (sampledError(polynomial, range, factor) > epsilon) continue;
    const bound = certifyPolynomial(polynomial, range, rounding);
    if (meetsEpsilon(bound, epsilon, factor)) return { degree, polynomial, bound };
  }
  return undefined;
}
