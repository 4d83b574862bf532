import { assertFinite, InvalidArgumentError, type Matrix, NonFiniteError, ResourceLimitError } from '@almora/tensor';
import { cpuFusedKernels } from './cpu.js';
import type { ExpPolynomial } from './polynomial.js';

/**
 * The monomials x^a of a polynomial feature map as a product tree: column a is
 * `weights[a] · m[parents[a]] · x[:, variables[a]]`, where m is the unweighted monomial column and
 * column 0 is the constant (parents[0] = variables[0] = −1). A parent comes before its children
 * (parents[a] < a). Made by {@link featureTree}; built into features by the fused kernel
 * `productFeatures` (one of the `FusedKernels`).
 */
export interface ProductTree {
  /** Index of each monomial's parent (−1 for the constant). */
  parents: Int32Array;
  /** The variable the parent is multiplied by (−1 for the constant). */
  variables: Int32Array;
  /** The weight each column is scaled by. */
  weights: Float64Array;
}

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

/** Most monomials a table may hold: 2^26, ~1.8 GiB of tables, far past any rank a fast path can use. */
const MAX_MONOMIALS = 2 ** 26;

/** Bytes of a monomial table per monomial: five Int32Arrays and a Float64Array. */
const TABLE_BYTES_PER_MONOMIAL = 28;

/**
 * Enumerates the monomials of `dimension` variables up to total degree `degree`. Refuses with
 * {@link ResourceLimitError}, before allocating, a table of more than 2^26 monomials.
 */
export function monomialTable(dimension: number, degree: number): MonomialTable {
  const size = featureRank(dimension, degree);
  if (size > MAX_MONOMIALS) {
    throw new ResourceLimitError(
      `degree ${degree} on ${dimension} dimensions has ${size.toPrecision(3)} monomials, over the limit of ${MAX_MONOMIALS}: lower the degree`,
      size * TABLE_BYTES_PER_MONOMIAL,
      MAX_MONOMIALS * TABLE_BYTES_PER_MONOMIAL,
    );
  }
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
 * The product tree of the polynomial features φ with ⟨φ_query(q), φ_key(k)⟩ = p(β·q·k) for every
 * pair, from p(β q·k) = Σ_j c_j β^j Σ_{|a|=j} (j!/a!) q^a k^a. Each monomial's weight
 * w_a = c_j β^j j!/a! is split as sign(w_a)·√|w_a| on the query side and √|w_a| on the key side, so
 * U and V have the same scale and negative coefficients (Chebyshev) are allowed. Any
 * `Backend` of @almora/tensor builds the features from it with `fused(backend).productFeatures`.
 */
export function featureTree(dimension: number, polynomial: ExpPolynomial, beta: number, side: FeatureSide): ProductTree {
  if (!Number.isFinite(beta) || beta <= 0) throw new InvalidArgumentError(`beta must be finite and > 0, got ${beta}`);
  const table = monomialTable(dimension, polynomial.degree);
  const weights = new Float64Array(table.size);
  for (let a = 0; a < table.size; a++) {
    const j = table.degrees[a];
    const w = polynomial.coefficients[j] * beta ** j * table.multinomials[a];
    const root = Math.sqrt(Math.abs(w));
    weights[a] = side === 'query' && w < 0 ? -root : root;
  }
  return { parents: table.parents, variables: table.variables, weights };
}

/**
 * Polynomial features on the CPU: the L×C(d+g, g) matrix whose row i is φ(x_i) (see
 * {@link featureTree}). Throws {@link NonFiniteError} if they overflow.
 */
export function polynomialFeatures(x: Matrix, polynomial: ExpPolynomial, beta: number, side: FeatureSide): Matrix {
  assertFinite(x, side === 'query' ? 'Q' : 'K');
  const features = cpuFusedKernels.productFeatures(x, featureTree(x.cols, polynomial, beta, side));
  const k = features.cols;
  for (let t = 0; t < features.data.length; t++) {
    if (!Number.isFinite(features.data[t])) {
      throw new NonFiniteError(`polynomial features overflowed at row ${Math.floor(t / k)}: the inputs are far too large for degree ${polynomial.degree}`);
    }
  }
  return features;
}

/**
 * The vector-Jacobian product of {@link polynomialFeatures} on the CPU: given ∂ℓ/∂Φ (L×k) for
 * Φ = φ(X), returns ∂ℓ/∂X (L×d), by reverse mode over the monomial tree in O(L·k).
 */
export function polynomialFeaturesBackward(x: Matrix, polynomial: ExpPolynomial, beta: number, side: FeatureSide, featureGradient: Matrix): Matrix {
  assertFinite(x, side === 'query' ? 'Q' : 'K');
  return cpuFusedKernels.productFeaturesBackward(x, featureTree(x.cols, polynomial, beta, side), featureGradient);
}
