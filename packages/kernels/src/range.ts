import { assertFinite, InvalidArgumentError, Matrix, maxAbs, ShapeError, zeros } from '@almora/tensor';
import { UNIT_ROUNDOFF } from './polynomial.js';

/** The norm quantities that decide whether the fast path can work, computed in O(L·d² + m·L·d). */
export interface RangeReport {
  /** Certified range used: |β·q_i·k_j| ≤ range for every pair (after centering, when it was applied). */
  range: number;
  /** The certified range for the keys as given. */
  rawRange: number;
  /** The certified range with the mean key subtracted. */
  centeredRange: number;
  /** β·max‖q_i‖·max‖k_j‖ for the keys as given: the plain Cauchy–Schwarz bound, for comparison (never smaller than rawRange). */
  cauchySchwarzRange: number;
  /** β·max‖q_i‖·max‖k̃_j‖ for the keys the features see (centered when `centered`): it bounds every entry of |U₁|·|V₁|ᵀ, and so the rounding of the low-rank products. */
  featureNormRange: number;
  /** Whether keys are centered in the approximation (allowed, and it shrank the range). */
  centered: boolean;
  /** The mean key k̄ (1×d) that centering subtracts; zeros when not centered. */
  keyMean: Matrix;
  /** Rows of Q and of K (each) whose scores against the whole other side were computed exactly. */
  exactRows: number;
  /** The paper's Γ: max(‖√β·Q‖∞, ‖√β·K‖∞), entrywise, for the keys as given. */
  gamma: number;
  /** √(log L) (natural log), the threshold Γ is compared with; L = the number of keys. */
  threshold: number;
}

/** Throws unless Q and K are finite, have the same width and β is positive. */
export function checkQueryKey(q: Matrix, k: Matrix, beta: number): void {
  if (q.cols !== k.cols) throw new ShapeError(`Q is ${q.rows}×${q.cols} and K is ${k.rows}×${k.cols}; their widths must agree`);
  if (k.rows === 0) throw new ShapeError('K has no rows: attention over zero keys is undefined');
  if (!Number.isFinite(beta) || beta <= 0) throw new InvalidArgumentError(`beta must be finite and > 0, got ${beta}`);
  assertFinite(q, 'Q');
  assertFinite(k, 'K');
}

/**
 * Rows of m (minus `shift`) as one dense float64 array, row-major, holding exactly the values the
 * features will see: a float32 matrix is centered in float32, with the mean rounded to float32
 * first (as {@link centeredKeys} does). Returned divided by a power of two near its largest
 * entry (exactly, so nothing rounds), so that its second moments neither overflow nor underflow.
 */
function dense(m: Matrix, slot: number, shift?: Float64Array): { values: Float64Array; scale: number } {
  const single = m.dtype === 'float32';
  const offsets = new Float64Array(m.cols);
  if (shift) for (let j = 0; j < m.cols; j++) offsets[j] = single ? Math.fround(shift[j]) : shift[j];
  const values = scratch(slot, m.rows * m.cols);
  let largest = 0;
  for (let i = 0; i < m.rows; i++) {
    const base = m.offset + i * m.stride;
    const row = i * m.cols;
    for (let j = 0; j < m.cols; j++) {
      const difference = m.data[base + j] - offsets[j];
      const x = single ? Math.fround(difference) : difference;
      values[row + j] = x;
      const size = x < 0 ? -x : x;
      if (size > largest) largest = size;
    }
  }
  const scale = largest > 0 ? 2 ** Math.ceil(Math.log2(largest)) : 1;
  for (let t = 0; t < values.length; t++) values[t] /= scale;
  return { values, scale };
}

/**
 * Buffers the dense copies are made in, kept between calls up to {@link SCRATCH_LIMIT} entries
 * each: they never outlive a call of {@link certifiedRange} (synchronous), and a fresh L×d buffer
 * per call costs more in page faults than the O(L·d) work done in it.
 */
const scratchBuffers: Float64Array[] = [];
/** Entries (8 MiB) up to which a scratch buffer is kept for the next call. */
const SCRATCH_LIMIT = 2 ** 20;
/** The queries', the keys' and the centered keys' slots. */
const [QUERY_SLOT, KEY_SLOT, CENTERED_SLOT] = [0, 1, 2];

/** `size` entries of scratch slot `slot` (contents arbitrary): the kept buffer when it fits, else a fresh one. */
function scratch(slot: number, size: number): Float64Array {
  if (size > SCRATCH_LIMIT) return new Float64Array(size);
  if (!(scratchBuffers[slot]?.length >= size))
    scratchBuffers[slot] = new Float64Array(Math.max(size, Math.min(SCRATCH_LIMIT, 2 * (scratchBuffers[slot]?.length ?? 0))));
  return scratchBuffers[slot].subarray(0, size);
}

function rowNorms(x: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += x[i * cols + j] ** 2;
    out[i] = Math.sqrt(s);
  }
  return out;
}

/** xᵀx / rows (d×d): the upper triangle summed, the lower one mirrored. */
function secondMoment(x: Float64Array, rows: number, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < rows; i++) {
    const r = i * d;
    for (let a = 0; a < d; a++) {
      const xa = x[r + a];
      if (xa !== 0) for (let b = a; b < d; b++) out[a * d + b] += xa * x[r + b];
    }
  }
  for (let a = 0; a < d; a++) for (let b = a; b < d; b++) out[b * d + a] = out[a * d + b] /= Math.max(rows, 1);
  return out;
}

/** The row norms of x·m for x of `rows` rows (d columns) and m d×d, without storing x·m. */
function transformedRowNorms(x: Float64Array, rows: number, m: Float64Array, d: number): Float64Array {
  const out = new Float64Array(rows);
  // Four entries of the row of x·m at a time: four independent sums instead of one chain of d
  // dependent adds each, every entry still summed over k in order, so the norms are unchanged.
  const wide = d - (d % 4);
  for (let i = 0; i < rows; i++) {
    const r = i * d;
    let norm = 0;
    let j = 0;
    for (; j < wide; j += 4) {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let k = 0; k < d; k++) {
        const xk = x[r + k];
        const at = k * d + j;
        s0 += xk * m[at];
        s1 += xk * m[at + 1];
        s2 += xk * m[at + 2];
        s3 += xk * m[at + 3];
      }
      norm += s0 * s0;
      norm += s1 * s1;
      norm += s2 * s2;
      norm += s3 * s3;
    }
    for (; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += x[r + k] * m[k * d + j];
      norm += s * s;
    }
    out[i] = Math.sqrt(norm);
  }
  return out;
}

/** x·m for x of `rows` rows (d columns) and m d×d: here the product of two d×d matrices. */
function transform(x: Float64Array, rows: number, m: Float64Array, d: number): Float64Array {
  const out = new Float64Array(rows * d);
  for (let i = 0; i < rows; i++)
    for (let k = 0; k < d; k++) {
      const xik = x[i * d + k];
      if (xik !== 0) for (let j = 0; j < d; j++) out[i * d + j] += xik * m[k * d + j];
    }
  return out;
}

/** (a + aᵀ)/2 in place: products of symmetric matrices drift from symmetry by rounding. */
function symmetrize(a: Float64Array, d: number): Float64Array {
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) a[i * d + j] = a[j * d + i] = (a[i * d + j] + a[j * d + i]) / 2;
  return a;
}

/** Eigenvalues and eigenvectors (columns of `vectors`) of a symmetric d×d matrix. */
interface SymmetricEigen {
  values: Float64Array;
  vectors: Float64Array;
}

/** Cyclic Jacobi: d is a head width, so d³ is small, and it is accurate for any spectrum. */
function symmetricEigen(a: Float64Array, d: number): SymmetricEigen {
  const m = Float64Array.from(a);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    let total = 0;
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        if (i === j) total += m[i * d + j] ** 2;
        else off += m[i * d + j] ** 2;
      }
    }
    if (off <= 1e-30 * (total + off) || off === 0) break;
    for (let p = 0; p < d - 1; p++)
      for (let q = p + 1; q < d; q++) {
        const apq = m[p * d + q];
        if (apq === 0) continue;
        const theta = (m[q * d + q] - m[p * d + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const mkp = m[k * d + p];
          const mkq = m[k * d + q];
          m[k * d + p] = c * mkp - s * mkq;
          m[k * d + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < d; k++) {
          const mpk = m[p * d + k];
          const mqk = m[q * d + k];
          m[p * d + k] = c * mpk - s * mqk;
          m[q * d + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p];
          const vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
  }
  return { values: Float64Array.from({ length: d }, (_, e) => m[e * d + e]), vectors: v };
}

/** V·diag(f(w))·Vᵀ: a function of the matrix, with tiny or negative eigenvalues floored at 1e-12 of the largest. */
function matrixFunction({ values, vectors }: SymmetricEigen, d: number, f: (eigenvalue: number) => number): Float64Array {
  const largest = values.reduce((a, b) => Math.max(a, b), 0);
  const out = new Float64Array(d * d);
  for (let e = 0; e < d; e++) {
    const fe = f(Math.max(values[e], 1e-12 * largest, Number.MIN_VALUE));
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) out[i * d + j] += vectors[i * d + e] * fe * vectors[j * d + e];
  }
  return out;
}

/**
 * A symmetric M that balances the second moments of Q and K: with P = Σ_Q⁻¹ # Σ_K (the matrix
 * geometric mean, P·Σ_Q·P = Σ_K) and M = P^{1/2}, the rows of Q·M and K·M⁻¹ have the same second
 * moment, so a Cauchy–Schwarz bound in those coordinates no longer pays for the two sides being
 * stretched along different directions. Returns M and M⁻¹.
 */
function balancingTransform(querySecondMoment: Float64Array, k: Float64Array, lk: number, d: number): { m: Float64Array; inverse: Float64Array } {
  const queryMoment = symmetricEigen(querySecondMoment, d);
  const a = matrixFunction(queryMoment, d, Math.sqrt);
  const aInverse = matrixFunction(queryMoment, d, (w) => 1 / Math.sqrt(w));
  const middle = matrixFunction(symmetricEigen(symmetrize(transform(transform(a, d, secondMoment(k, lk, d), d), d, a, d), d), d), d, Math.sqrt);
  const p = symmetricEigen(symmetrize(transform(transform(aInverse, d, middle, d), d, aInverse, d), d), d);
  return { m: matrixFunction(p, d, Math.sqrt), inverse: matrixFunction(p, d, (w) => 1 / Math.sqrt(w)) };
}

/**
 * The indices of `values` in decreasing order, sorted only as far as they are asked for: the scans
 * stop after a few rows, and a comparison sort of a million rows would cost more than the rest of
 * the range. Each extension at least doubles the sorted prefix: every value at or above a threshold
 * read from a plain numeric sort of the values, ordered by a comparison sort of just those.
 */
class DescendingOrder {
  private prefix = new Int32Array(0);
  private ascending: Float64Array | undefined;

  constructor(private readonly values: Float64Array) {}

  /** The index of the n-th largest value (0-based, n < values.length); ties by index. */
  at(n: number): number {
    if (n >= this.prefix.length) this.extend(n + 1);
    return this.prefix[n];
  }

  private extend(count: number): void {
    const { values } = this;
    const wanted = Math.min(values.length, Math.max(count, 2 * this.prefix.length, 64));
    this.ascending ??= Float64Array.from(values).sort();
    const threshold = this.ascending[values.length - wanted];
    const picked: number[] = [];
    for (let i = 0; i < values.length; i++) if (values[i] >= threshold) picked.push(i);
    this.prefix = Int32Array.from(picked).sort((a, b) => values[b] - values[a] || a - b);
  }
}

/** Most rows per side whose scores are computed exactly: past this the work would rival the fast path's. */
const MAX_EXACT_ROWS = 64;

/**
 * max |q_i·k_j| over every pair, bounded in O(L·d² + m·L·d) and usually attained: the m rows of
 * largest norm on each side (in balanced coordinates) are scored exactly against the other side,
 * and every remaining pair is bounded by Cauchy–Schwarz with the (m+1)-th norms; m doubles from 8
 * until that remainder is below the exact maximum (or m reaches 64). A row's scan takes the other
 * side in order of decreasing norm and stops where the product of the two norms falls to the
 * maximum found so far: no later pair can exceed it. Any invertible M keeps q·k = (Mq)·(M⁻¹k), so
 * the bounds hold whatever M is; the residual of M·M⁻¹ − I and the rounding of the dot products are
 * added, so they hold in floating point too.
 */
function maxAbsScore(
  queries: { values: Float64Array; secondMoment: Float64Array },
  lq: number,
  k: Float64Array,
  lk: number,
  d: number,
): { value: number; cauchySchwarz: number; exactRows: number } {
  const q = queries.values;
  const largest = (values: Float64Array) => values.reduce((a, b) => Math.max(a, b), 0);
  const cauchySchwarz = largest(rowNorms(q, lq, d)) * largest(rowNorms(k, lk, d));
  if (cauchySchwarz === 0) return { value: 0, cauchySchwarz, exactRows: 0 };
  const { m, inverse } = balancingTransform(queries.secondMoment, k, lk, d);
  // (q·M)·(k·M⁻¹) = q·M·M⁻ᵀ·kᵀ: the residual E = M·M⁻ᵀ − I measures how far that is from q·k.
  const residual = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      let s = i === j ? -1 : 0;
      for (let c = 0; c < d; c++) s += m[i * d + c] * inverse[j * d + c];
      residual[i * d + j] = s;
    }
  const transformError = Math.sqrt(residual.reduce((s, x) => s + x * x, 0));
  const qBalancedNorms = transformedRowNorms(q, lq, m, d);
  const kBalancedNorms = transformedRowNorms(k, lk, inverse, d);
  const qOrder = new DescendingOrder(qBalancedNorms);
  const kOrder = new DescendingOrder(kBalancedNorms);
  const score = (i: number, j: number) => {
    let s = 0;
    for (let c = 0; c < d; c++) s += q[i * d + c] * k[j * d + c];
    return Math.abs(s);
  };
  let exact = 0;
  let done = 0;
  let rows = Math.min(8, lq, lk);
  for (;;) {
    for (let t = done; t < rows; t++) {
      if (t < lq) {
        const i = qOrder.at(t);
        for (let n = 0; n < lk && qBalancedNorms[i] * kBalancedNorms[kOrder.at(n)] > exact; n++) exact = Math.max(exact, score(i, kOrder.at(n)));
      }
      if (t < lk) {
        const j = kOrder.at(t);
        for (let n = 0; n < lq && kBalancedNorms[j] * qBalancedNorms[qOrder.at(n)] > exact; n++) exact = Math.max(exact, score(qOrder.at(n), j));
      }
    }
    done = rows;
    const rest = rows >= lq || rows >= lk ? 0 : qBalancedNorms[qOrder.at(rows)] * kBalancedNorms[kOrder.at(rows)];
    if (!(exact >= 0)) return { value: Number.POSITIVE_INFINITY, cauchySchwarz, exactRows: rows };
    if (rest <= exact || rows >= MAX_EXACT_ROWS || rows >= Math.max(lq, lk)) {
      const slack = (transformError + 4 * (d + 2) * UNIT_ROUNDOFF) * cauchySchwarz;
      return { value: Math.min(Math.max(exact, rest) + slack, cauchySchwarz * (1 + 4 * (d + 2) * UNIT_ROUNDOFF)), cauchySchwarz, exactRows: rows };
    }
    rows = Math.min(2 * rows, MAX_EXACT_ROWS, Math.max(lq, lk));
  }
}

/**
 * R bounding |β·q_i·k_j| for all pairs, sharper than β·max‖q‖·max‖k‖ (see `cauchySchwarzRange`) and
 * on typical data equal to the true maximum: balanced coordinates plus the largest rows scored
 * exactly (O(L·d² + 64·L·d)). With `centerKeys`, the mean key is subtracted too — softmax rows are
 * unchanged by it, since q_i·k̄ is constant along a row — and used only when it makes R smaller.
 */
export function certifiedRange(q: Matrix, k: Matrix, beta: number, centerKeys = false): RangeReport {
  checkQueryKey(q, k, beta);
  const d = q.cols;
  // Each key divided before summing: a sum of keys near the largest float64 would overflow.
  const mean = new Float64Array(k.cols);
  if (centerKeys) for (let j = 0; j < k.rows; j++) for (let c = 0; c < k.cols; c++) mean[c] += k.data[k.offset + j * k.stride + c] / k.rows;
  const queries = dense(q, QUERY_SLOT);
  const querySide = { values: queries.values, secondMoment: secondMoment(queries.values, q.rows, d) };
  // |q·k| ≤ R for the scaled rows means |q·k| ≤ R·scale_q·scale_k for the rows as given.
  const score = (keys: { values: Float64Array; scale: number }) => {
    // Keys shifted by the mean can overflow even where the keys do not: nothing is certified then.
    if (!Number.isFinite(queries.scale) || !Number.isFinite(keys.scale))
      return { value: Number.POSITIVE_INFINITY, cauchySchwarz: Number.POSITIVE_INFINITY, exactRows: 0 };
    const result = maxAbsScore(querySide, q.rows, keys.values, k.rows, d);
    const factor = beta * queries.scale * keys.scale;
    return { ...result, value: result.value * factor, cauchySchwarz: result.cauchySchwarz * factor };
  };
  const raw = score(dense(k, KEY_SLOT));
  const centeredScore = centerKeys ? score(dense(k, CENTERED_SLOT, mean)) : undefined;
  const rawRange = raw.value;
  const centeredRange = centeredScore ? centeredScore.value : Number.POSITIVE_INFINITY;
  const centered = centeredRange < rawRange;
  const keyMean = zeros(1, k.cols, { dtype: k.dtype });
  if (centered) keyMean.data.set(mean);
  const rootBeta = Math.sqrt(beta);
  return {
    range: centered ? centeredRange : rawRange,
    rawRange,
    centeredRange,
    cauchySchwarzRange: raw.cauchySchwarz,
    featureNormRange: centered ? centeredScore!.cauchySchwarz : raw.cauchySchwarz,
    centered,
    keyMean,
    exactRows: centered ? centeredScore!.exactRows : raw.exactRows,
    gamma: rootBeta * Math.max(maxAbs(q), maxAbs(k)),
    threshold: Math.sqrt(Math.log(Math.max(k.rows, 1))),
  };
}
