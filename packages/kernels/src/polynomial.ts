import { InvalidArgumentError, NonFiniteError } from '@almora/tensor';

/** How a polynomial approximation of exp was built. */
export type PolynomialMethod = 'taylor' | 'chebyshev';

/** A polynomial p(t) = Σ_j c_j·t^j standing in for exp(t) on [−range, range]. */
export interface ExpPolynomial {
  /** How it was built. */
  method: PolynomialMethod;
  /** Monomial coefficients c_0 … c_g. */
  coefficients: readonly number[];
  /** Degree g. */
  degree: number;
  /** The interval [−range, range] it was built for (Taylor polynomials do not depend on it). */
  range: number;
}

function checkDegree(degree: number): void {
  if (!Number.isInteger(degree) || degree < 0) {
    throw new InvalidArgumentError(`degree must be a non-negative integer, got ${degree}`);
  }
}

function checkRange(range: number): void {
  if (Number.isNaN(range) || range < 0) {
    throw new InvalidArgumentError(`range must be ≥ 0, got ${range}`);
  }
}

/** The degree-g truncated Taylor series of exp at 0, c_j = 1/j! — the paper's choice (Lemma 3.3). */
export function taylorExp(degree: number): ExpPolynomial {
  checkDegree(degree);
  const coefficients: number[] = [];
  let c = 1;
  for (let j = 0; j <= degree; j++) {
    coefficients.push(c);
    c /= j + 1;
  }
  return { method: 'taylor', coefficients, degree, range: Number.POSITIVE_INFINITY };
}

/**
 * The degree-g interpolant of exp at the g+1 Chebyshev points of [−range, range]: near-minimax, so
 * it reaches a given error at lower degree than Taylor on the same interval. Coefficients may be of
 * either sign. For range 0 it is the constant 1, which is exact there.
 */
export function chebyshevExp(degree: number, range: number): ExpPolynomial {
  checkDegree(degree);
  checkRange(range);
  if (range === Number.POSITIVE_INFINITY) throw new InvalidArgumentError('chebyshevExp needs a finite range');
  if (range === 0) return { method: 'chebyshev', coefficients: [1, ...new Array<number>(degree).fill(0)], degree, range };
  const n = degree + 1;
  // Chebyshev coefficients a_j of exp(range·x) on x ∈ [−1, 1] from samples at first-kind nodes.
  const samples = Array.from({ length: n }, (_, k) => Math.exp(range * Math.cos((Math.PI * (k + 0.5)) / n)));
  const cheb = Array.from({ length: n }, (_, j) => {
    let s = 0;
    for (let k = 0; k < n; k++) s += samples[k] * Math.cos((Math.PI * j * (k + 0.5)) / n);
    return ((j === 0 ? 1 : 2) / n) * s;
  });
  // Σ a_j T_j(x) in monomials of x, through T_{j+1} = 2x·T_j − T_{j−1}; then x = t/range.
  const monomialsOfX = new Array<number>(n).fill(0);
  let previous = [1];
  let current = [0, 1];
  monomialsOfX[0] += cheb[0];
  for (let j = 1; j < n; j++) {
    for (let i = 0; i < current.length; i++) monomialsOfX[i] += cheb[j] * current[i];
    const next = new Array<number>(current.length + 1).fill(0);
    for (let i = 0; i < current.length; i++) next[i + 1] += 2 * current[i];
    for (let i = 0; i < previous.length; i++) next[i] -= previous[i];
    previous = current;
    current = next;
  }
  const coefficients = monomialsOfX.map((c, j) => c / range ** j);
  return { method: 'chebyshev', coefficients, degree, range };
}

/** Builds the polynomial of `method` and `degree` for the interval [−range, range]. */
export function expPolynomial(method: PolynomialMethod, degree: number, range: number): ExpPolynomial {
  if (method === 'taylor') return taylorExp(degree);
  if (method === 'chebyshev') return chebyshevExp(degree, range);
  throw new InvalidArgumentError(`unknown polynomial method "${String(method)}"; use 'taylor' or 'chebyshev'`);
}

/** p(t) by Horner's rule. */
export function evaluatePolynomial(coefficients: readonly number[], t: number): number {
  let s = 0;
  for (let j = coefficients.length - 1; j >= 0; j--) s = s * t + coefficients[j];
  return s;
}

/** Closed-form bound on the Taylor polynomial's relative error on [−R, R]: e^R·R^{g+1}/(g+1)! (Lagrange remainder). */
export function taylorRelativeErrorBound(degree: number, range: number): number {
  checkDegree(degree);
  checkRange(range);
  let term = Math.exp(range);
  for (let j = 1; j <= degree + 1; j++) term *= range / j;
  return term;
}

/** Unit roundoff of float64: the relative error of one rounding. */
export const UNIT_ROUNDOFF = 2 ** -53;

/** Where h(t) = p(t)·e^{−t} − 1, the relative error of p as a stand-in for exp, lies on [−R, R]. */
export interface RelativeErrorEnclosure {
  /** A rigorous lower bound on inf h. */
  lower: number;
  /** A rigorous upper bound on sup h. */
  upper: number;
}

/**
 * A rigorous enclosure [lower, upper] ∋ h(t) = p(t)·e^{−t} − 1 for every |t| ≤ R, computed from the
 * coefficients and R alone (before any data is seen). Its sign matters: softmax is unchanged when
 * p is scaled, so what a softmax certificate needs is the spread upper − lower, not 2·max|h|
 * (Taylor polynomials of odd degree never exceed exp, so their h ≤ 0 and the spread is max|h|).
 *
 * h is sampled on a uniform grid of spacing Δ. On a cell [t_i, t_i + Δ], h lies within
 * (Δ/2)·max|h′| of an endpoint value, and h′(t) = r(t)·e^{−t} with r = p′ − p, a polynomial of
 * degree g. Markov's inequality (max|r′| ≤ g²/R·max|r| on [−R, R]) turns the sampled maximum of r
 * into a bound on its supremum: sup|r| ≤ max_grid|r| / (1 − Δg²/(2R)). The grid is refined until
 * the derivative term is under 2% of the sampled maximum of |h|; a floating-point slack for
 * evaluating p widens both ends.
 */
export function relativeErrorEnclosure(coefficients: readonly number[], range: number): RelativeErrorEnclosure {
  checkRange(range);
  if (range === Number.POSITIVE_INFINITY) return { lower: Number.NEGATIVE_INFINITY, upper: Number.POSITIVE_INFINITY };
  if (coefficients.length === 0) return { lower: -1, upper: -1 };
  for (const c of coefficients) if (!Number.isFinite(c)) throw new NonFiniteError(`polynomial coefficient ${c} is not finite`);
  const g = coefficients.length - 1;
  const residual = coefficients.map((c, j) => (j < g ? (j + 1) * coefficients[j + 1] : 0) - c);
  let absSum = 0;
  for (let j = 0; j <= g; j++) absSum += Math.abs(coefficients[j]) * range ** j;
  const rounding = 4 * (g + 2) * UNIT_ROUNDOFF * Math.exp(range) * (absSum + 1);
  if (range === 0) return { lower: coefficients[0] - 1 - rounding, upper: coefficients[0] - 1 + rounding };
  let cells = Math.max(256, 2 * g * g);
  for (;;) {
    const step = (2 * range) / cells;
    const h = new Float64Array(cells + 1);
    let residualMax = 0;
    let sampled = 0;
    for (let i = 0; i <= cells; i++) {
      const t = -range + i * step;
      h[i] = evaluatePolynomial(coefficients, t) * Math.exp(-t) - 1;
      sampled = Math.max(sampled, Math.abs(h[i]));
      residualMax = Math.max(residualMax, Math.abs(evaluatePolynomial(residual, t)));
    }
    const residualSup = residualMax / (1 - (step * g * g) / (2 * range));
    let lower = Number.POSITIVE_INFINITY;
    let upper = Number.NEGATIVE_INFINITY;
    let slack = 0;
    for (let i = 0; i < cells; i++) {
      const derivativeTerm = (step / 2) * residualSup * Math.exp(range - i * step);
      slack = Math.max(slack, derivativeTerm);
      lower = Math.min(lower, Math.min(h[i], h[i + 1]) - derivativeTerm);
      upper = Math.max(upper, Math.max(h[i], h[i + 1]) + derivativeTerm);
    }
    if (slack <= 0.02 * sampled || cells >= 1 << 17) return { lower: lower - rounding, upper: upper + rounding };
    cells *= 2;
  }
}

/** δ = sup_{|t|≤R} |p(t)·e^{−t} − 1|, rigorously: the larger end of {@link relativeErrorEnclosure}. */
export function relativeErrorBound(coefficients: readonly number[], range: number): number {
  const { lower, upper } = relativeErrorEnclosure(coefficients, range);
  return Math.max(Math.abs(lower), Math.abs(upper));
}

/**
 * p′, the polynomial the reverse-mode (autodiff) fast path multiplies by where exact attention has
 * exp: for Taylor, T_g′ = T_{g−1}, one degree less accurate than T_g.
 */
export function derivativePolynomial(polynomial: ExpPolynomial): ExpPolynomial {
  const c = polynomial.coefficients;
  const coefficients = c.length <= 1 ? [0] : c.slice(1).map((value, j) => (j + 1) * value);
  return { method: polynomial.method, coefficients, degree: Math.max(0, polynomial.degree - 1), range: polynomial.range };
}
