import { assertFinite, InvalidArgumentError, Matrix, NonFiniteError, ShapeError, zeros } from '@almora/tensor';
import type { ExpPolynomial } from './polynomial.js';

/**
 * The monomials x^a of d variables with |a| ≤ g, in graded order, each stored as its parent
 * (x^a / x_i for the largest i in a) times one variable, so a feature costs one multiplication.
 */
export interface MonomialTable {
  /** Number of variables d. */
  dimension: number;
  /** Largest total degree g. */
  degree: number;
  /** Number of monomials, C(d+g, g). */
  size: number;
  /** Total degree |a| of each monomial. */
  degrees: Int32Array;
  /** Index of the parent monomial (−1 for the constant). */
  parents: Int32Array;
  /** The variable the parent is multiplied by (−1 for the constant). */
  variables: Int32Array;
  /** Multinomial coefficient |a|!/a! of each monomial. */
  multinomials: Float64Array;
}

/** C(d+g, g): the rank of the degree-g polynomial features of d-dimensional inputs. */
export function featureRank(dimension: number, degree: number): number {
  if (!Number.isInteger(dimension) || dimension < 0) throw new InvalidArgumentError(`dimension must be a non-negative integer, got ${dimension}`);
  if (!Number.isInteger(degree) || degree < 0) throw new InvalidArgumentError(`degree must be a non-negative integer, got ${degree}`);
  let r = 1;
  for (let j = 1; j <= degree; j++) r = (r * (dimension + j)) / j;
  return Math.round(r);
}

/** Enumerates the monomials of `dimension` variables up to total degree `degree`. */
export function monomialTable(dimension: number, degree: number): MonomialTable {
  const size = featureRank(dimension, degree);
  const degrees = new Int32Array(size);
  const parents = new Int32Array(size).fill(-1);
  const variables = new Int32Array(size).fill(-1);
  const lastVariable = new Int32Array(size);
  const lastPower = new Int32Array(size);
  const multinomials = new Float64Array(size);
  multinomials[0] = 1;
  let count = 1;
  let levelStart = 0;
  let levelEnd = 1;
  for (let j = 1; j <= degree; j++) {
    for (let p = levelStart; p < levelEnd; p++) {
      // Non-decreasing variable sequences list each multiset once.
      for (let v = j === 1 ? 0 : lastVariable[p]; v < dimension; v++) {
        const power = j > 1 && v === lastVariable[p] ? lastPower[p] + 1 : 1;
        degrees[count] = j;
        parents[count] = p;
        variables[count] = v;
        lastVariable[count] = v;
        lastPower[count] = power;
        // j!/a! = ((j−1)!/a'!)·j/power, where a' is the parent's multi-index.
        multinomials[count] = (multinomials[p] * j) / power;
        count++;
      }
    }
    levelStart = levelEnd;
    levelEnd = count;
  }
  return { dimension, degree, size, degrees, parents, variables, multinomials };
}

/** Which factor of U₁V₁ᵀ a feature map builds. */
export type FeatureSide = 'query' | 'key';

/**
 * Polynomial features φ with ⟨φ_query(q), φ_key(k)⟩ = p(β·q·k) for every pair, from
 * p(β q·k) = Σ_j c_j β^j Σ_{|a|=j} (j!/a!) q^a k^a. Each monomial's weight w_a = c_j β^j j!/a! is
 * split as sign(w_a)·√|w_a| on the query side and √|w_a| on the key side, so U and V have the same
 * scale and negative coefficients (Chebyshev) are allowed. Returns the L×C(d+g, g) matrix whose row
 * i is φ(x_i).
 *
 * Built one feature column at a time from its parent column, in a feature-major scratch buffer, so
 * the inner loop is a contiguous multiply over the L rows.
 */
export function polynomialFeatures(x: Matrix, polynomial: ExpPolynomial, beta: number, side: FeatureSide): Matrix {
  const { table, monomials, weights } = featureColumns(x, polynomial, beta, side);
  const rows = x.rows;
  const k = table.size;
  const features = zeros(rows, k, { dtype: x.dtype });
  const out = features.data;
  for (let a = 0; a < k; a++) {
    const w = weights[a];
    const col = a * rows;
    for (let i = 0; i < rows; i++) out[i * k + a] = w * monomials[col + i];
  }
  for (let t = 0; t < out.length; t++) {
    if (!Number.isFinite(out[t])) {
      throw new NonFiniteError(`polynomial features overflowed at row ${Math.floor(t / k)}: the inputs are far too large for degree ${polynomial.degree}`);
    }
  }
  return features;
}

/**
 * The vector-Jacobian product of {@link polynomialFeatures}: given ∂ℓ/∂Φ (L×k) for Φ = φ(X),
 * returns ∂ℓ/∂X (L×d). Reverse mode over the monomial table — each feature is its parent times one
 * variable, so ∂ℓ/∂parent += ∂ℓ/∂m·x_v and ∂ℓ/∂x_v += ∂ℓ/∂m·parent — in O(L·k).
 */
export function polynomialFeaturesBackward(
  x: Matrix,
  polynomial: ExpPolynomial,
  beta: number,
  side: FeatureSide,
  featureGradient: Matrix,
): Matrix {
  const { table, monomials, variableColumns, weights } = featureColumns(x, polynomial, beta, side);
  const rows = x.rows;
  const k = table.size;
  if (featureGradient.rows !== rows || featureGradient.cols !== k) {
    throw new ShapeError(`feature gradient must be ${rows}×${k}, got ${featureGradient.rows}×${featureGradient.cols}`);
  }
  const monomialGradient = new Float64Array(k * rows);
  for (let i = 0; i < rows; i++) {
    const base = featureGradient.offset + i * featureGradient.stride;
    for (let a = 0; a < k; a++) monomialGradient[a * rows + i] = weights[a] * featureGradient.data[base + a];
  }
  const variableGradient = new Float64Array(x.cols * rows);
  for (let a = k - 1; a >= 1; a--) {
    const own = a * rows;
    const parent = table.parents[a] * rows;
    const variable = table.variables[a] * rows;
    for (let i = 0; i < rows; i++) {
      const g = monomialGradient[own + i];
      monomialGradient[parent + i] += g * variableColumns[variable + i];
      variableGradient[variable + i] += g * monomials[parent + i];
    }
  }
  const out = zeros(rows, x.cols, { dtype: x.dtype });
  for (let i = 0; i < rows; i++) for (let v = 0; v < x.cols; v++) out.data[i * x.cols + v] = variableGradient[v * rows + i];
  return out;
}

interface FeatureColumns {
  table: MonomialTable;
  /** Unweighted monomials, feature-major: monomial a of row i at a·L + i. */
  monomials: Float64Array;
  /** The inputs, variable-major. */
  variableColumns: Float64Array;
  /** Signed square-root weights of the query or key side. */
  weights: Float64Array;
}

function featureColumns(x: Matrix, polynomial: ExpPolynomial, beta: number, side: FeatureSide): FeatureColumns {
  assertFinite(x, side === 'query' ? 'Q' : 'K');
  if (!Number.isFinite(beta) || beta <= 0) throw new InvalidArgumentError(`beta must be finite and > 0, got ${beta}`);
  const table = monomialTable(x.cols, polynomial.degree);
  const rows = x.rows;
  const monomials = new Float64Array(table.size * rows);
  monomials.fill(1, 0, rows);
  const variableColumns = new Float64Array(x.cols * rows);
  for (let i = 0; i < rows; i++) {
    const base = x.offset + i * x.stride;
    for (let v = 0; v < x.cols; v++) variableColumns[v * rows + i] = x.data[base + v];
  }
  for (let a = 1; a < table.size; a++) {
    const out = a * rows;
    const parent = table.parents[a] * rows;
    const variable = table.variables[a] * rows;
    for (let i = 0; i < rows; i++) monomials[out + i] = monomials[parent + i] * variableColumns[variable + i];
  }
  const weights = new Float64Array(table.size);
  for (let a = 0; a < table.size; a++) {
    const j = table.degrees[a];
    const w = polynomial.coefficients[j] * beta ** j * table.multinomials[a];
    const root = Math.sqrt(Math.abs(w));
    weights[a] = side === 'query' && w < 0 ? -root : root;
  }
  return { table, monomials, variableColumns, weights };
}
