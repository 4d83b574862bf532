import { assertFinite, fromFlat, InvalidArgumentError, type Matrix, ShapeError, toDType, zeros } from '@almora/tensor';

/** A (possibly truncated) singular value decomposition a ≈ U·diag(S)·Vᵀ. */
export interface Svd {
  /** Left singular vectors, m×k, orthonormal columns. */
  U: Matrix;
  /** Singular values, length k, non-increasing, ≥ 0. */
  S: Float64Array;
  /** Right singular vectors, n×k, orthonormal columns. */
  V: Matrix;
}

/** Sweeps of one-sided Jacobi before giving up; a float64 matrix converges in well under 20. */
const MAX_SWEEPS = 80;
/** Two columns count as orthogonal when |xᵀy| ≤ ORTHOGONAL·‖x‖·‖y‖. */
const ORTHOGONAL = 1e-15;

/** x·y. */
function dot(x: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * y[i];
  return s;
}

/** Rotates the pair (x, y) ← (c·x − s·y, s·x + c·y) in place. */
function rotate(x: Float64Array, y: Float64Array, c: number, s: number): void {
  for (let i = 0; i < x.length; i++) {
    const a = x[i];
    const b = y[i];
    x[i] = c * a - s * b;
    y[i] = s * a + c * b;
  }
}

/**
 * Makes `vectors[j]` a unit vector orthogonal to `vectors[0..j)` (already orthonormal), trying the
 * standard basis vectors in order: the completion of a singular basis where σ_j = 0.
 */
function completeBasis(vectors: Float64Array[], j: number): void {
  const n = vectors[j].length;
  for (let e = 0; e < n; e++) {
    const v = new Float64Array(n);
    v[e] = 1;
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < j; i++) {
        const p = dot(vectors[i], v);
        for (let t = 0; t < n; t++) v[t] -= p * vectors[i][t];
      }
    }
    const norm = Math.sqrt(dot(v, v));
    if (norm > 0.5) {
      for (let t = 0; t < n; t++) v[t] /= norm;
      vectors[j] = v;
      return;
    }
  }
}

/**
 * The singular value decomposition of an m×n matrix by one-sided (Hestenes) Jacobi: plane
 * rotations orthogonalise the columns of the taller orientation (a itself when m ≥ n, aᵀ
 * otherwise) until every pair is orthogonal to float64 rounding; the column norms are the
 * singular values and the accumulated rotations the other factor. Relative accuracy is near
 * machine precision for every singular value that is not tiny against σ₁ (Demmel–Veselić), and
 * the result depends only on the input (no random start). Costs O(sweeps·p²·q) for p = min(m, n),
 * q = max(m, n): meant for the r×r to a few-hundred-wide matrices of per-module LoRA methods.
 *
 * Returns the top `k` (default min(m, n)) triplets. Singular vectors of singular values at the
 * rounding floor are completed to an orthonormal set with standard basis vectors, so U and V
 * always have orthonormal columns.
 *
 * @throws {InvalidArgumentError} when k is not an integer in [0, min(m, n)].
 * @throws {NonFiniteError} when `a` holds a NaN or ±Infinity.
 */
export function svd(a: Matrix, k = Math.min(a.rows, a.cols)): Svd {
  const { rows: m, cols: n } = a;
  const p = Math.min(m, n);
  if (!Number.isInteger(k) || k < 0 || k > p) throw new InvalidArgumentError(`svd: k must be an integer in [0, ${p}], got ${k}`);
  assertFinite(a, 'svd input');
  const tall = m >= n;
  const q = Math.max(m, n);
  // x[j]: column j of a (tall) or of aᵀ (wide), i.e. row j of a.
  const x: Float64Array[] = [];
  for (let j = 0; j < p; j++) {
    const col = new Float64Array(q);
    for (let i = 0; i < q; i++) col[i] = tall ? a.get(i, j) : a.get(j, i);
    x.push(col);
  }
  const rot: Float64Array[] = [];
  for (let j = 0; j < p; j++) {
    const e = new Float64Array(p);
    e[j] = 1;
    rot.push(e);
  }
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let rotated = false;
    for (let i = 0; i < p - 1; i++) {
      for (let j = i + 1; j < p; j++) {
        const alpha = dot(x[i], x[i]);
        const beta = dot(x[j], x[j]);
        const gamma = dot(x[i], x[j]);
        if (gamma === 0 || Math.abs(gamma) <= ORTHOGONAL * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rotate(x[i], x[j], c, s);
        rotate(rot[i], rot[j], c, s);
      }
    }
    if (!rotated) break;
  }
  const norms = x.map((v) => Math.sqrt(dot(v, v)));
  const order = norms.map((_, j) => j).sort((i, j) => norms[j] - norms[i] || i - j);
  const sigma = new Float64Array(k);
  const left: Float64Array[] = [];
  const right: Float64Array[] = [];
  const floor = Math.max(norms[order[0]] ?? 0, Number.MIN_VALUE) * p * Number.EPSILON;
  for (let t = 0; t < k; t++) {
    const j = order[t];
    sigma[t] = norms[j];
    const u = new Float64Array(q);
    if (norms[j] > floor) for (let i = 0; i < q; i++) u[i] = x[j][i] / norms[j];
    left.push(u);
    if (!(norms[j] > floor)) completeBasis(left, t);
    right.push(rot[j]);
  }
  // For a tall a: a = X·rotᵀ with X = U·Σ; for a wide one the roles of U and V swap.
  const [uVectors, uLength, vVectors, vLength] = tall ? [left, m, right, n] : [right, m, left, n];
  return { U: columnsToMatrix(uVectors, uLength), S: sigma, V: columnsToMatrix(vVectors, vLength) };
}

/** The matrix whose columns are `columns` (each of length `length`). */
function columnsToMatrix(columns: Float64Array[], length: number): Matrix {
  const out = zeros(length, columns.length);
  for (let j = 0; j < columns.length; j++) for (let i = 0; i < length; i++) out.set(i, j, columns[j][i]);
  return out;
}

/** Throws {@link ShapeError} unless `a` is square, {@link InvalidArgumentError} unless symmetric to rounding. */
function assertSymmetric(a: Matrix, op: string): void {
  if (a.rows !== a.cols) throw new ShapeError(`${op}: the matrix must be square, got ${a.rows}×${a.cols}`);
  assertFinite(a, `${op} input`);
  let scale = 0;
  for (let i = 0; i < a.rows; i++) scale = Math.max(scale, Math.abs(a.get(i, i)));
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < i; j++) {
      if (Math.abs(a.get(i, j) - a.get(j, i)) > 1e-10 * scale) {
        throw new InvalidArgumentError(`${op}: the matrix is not symmetric: (${i}, ${j}) is ${a.get(i, j)}, (${j}, ${i}) is ${a.get(j, i)}`);
      }
    }
  }
}

/**
 * The Cholesky factor L (lower triangular, positive diagonal) of a symmetric positive-definite
 * matrix: a = L·Lᵀ. Reads the lower triangle.
 *
 * @throws {InvalidArgumentError} when `a` is not symmetric or not positive definite.
 */
export function cholesky(a: Matrix): Matrix {
  assertSymmetric(a, 'cholesky');
  const n = a.rows;
  const l = zeros(n, n);
  for (let j = 0; j < n; j++) {
    let d = a.get(j, j);
    for (let t = 0; t < j; t++) d -= l.get(j, t) ** 2;
    if (!(d > 0)) throw new InvalidArgumentError(`cholesky: the matrix is not positive definite (pivot ${j} is ${d})`);
    const ljj = Math.sqrt(d);
    l.set(j, j, ljj);
    for (let i = j + 1; i < n; i++) {
      let s = a.get(i, j);
      for (let t = 0; t < j; t++) s -= l.get(i, t) * l.get(j, t);
      l.set(i, j, s / ljj);
    }
  }
  return l;
}

/**
 * X = a⁻¹·b for a symmetric positive-definite n×n `a` and an n×k `b`, by Cholesky and two
 * triangular solves (no inverse formed): the r×r systems of preconditioned LoRA methods.
 *
 * @throws {InvalidArgumentError} when `a` is not symmetric positive definite.
 * @throws {ShapeError} when b has not n rows.
 */
export function spdSolve(a: Matrix, b: Matrix): Matrix {
  const l = cholesky(a);
  const n = a.rows;
  if (b.rows !== n) throw new ShapeError(`spdSolve: b must have ${n} rows, got ${b.rows}×${b.cols}`);
  assertFinite(b, 'spdSolve right-hand side');
  const x = toDType(b, 'float64').toArray();
  for (const col of [...Array(b.cols).keys()]) {
    // L·y = b, then Lᵀ·x = y.
    for (let i = 0; i < n; i++) {
      let s = x[i][col];
      for (let t = 0; t < i; t++) s -= l.get(i, t) * x[t][col];
      x[i][col] = s / l.get(i, i);
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = x[i][col];
      for (let t = i + 1; t < n; t++) s -= l.get(t, i) * x[t][col];
      x[i][col] = s / l.get(i, i);
    }
  }
  return fromFlat(n, b.cols, x.flat());
}

/**
 * The Moore–Penrose pseudo-inverse a⁺ (n×m) of an m×n matrix from its {@link svd}: V·diag(1/σ)·Uᵀ
 * over the singular values above `rcond`·σ₁ (default 1e-12), zero for the rest — so a⁺ of the zero
 * matrix is zero, and a·a⁺ is the orthogonal projector onto a's range.
 */
export function pseudoInverse(a: Matrix, rcond = 1e-12): Matrix {
  if (!(rcond >= 0 && rcond < 1)) throw new InvalidArgumentError(`pseudoInverse: rcond must be in [0, 1), got ${rcond}`);
  const { U, S, V } = svd(a);
  const cutoff = (S[0] ?? 0) * rcond;
  const out = zeros(a.cols, a.rows);
  for (let t = 0; t < S.length; t++) {
    if (!(S[t] > cutoff) || S[t] === 0) continue;
    const inv = 1 / S[t];
    for (let i = 0; i < a.cols; i++) {
      const vi = V.get(i, t) * inv;
      if (vi === 0) continue;
      for (let j = 0; j < a.rows; j++) out.set(i, j, out.get(i, j) + vi * U.get(j, t));
    }
  }
  return out;
}

/** ‖a‖₂, the largest singular value, from {@link svd}. */
export function spectralNorm(a: Matrix): number {
  if (a.rows === 0 || a.cols === 0) return 0;
  return svd(a, 1).S[0];
}
