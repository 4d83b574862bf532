import { matmul, type Matrix, zeros } from '@almora/tensor';
import { evaluatePolynomial } from './polynomial.js';
import { checkQueryKey } from './range.js';

/**
 * The exact L_q×L_k matrix exp(β·QKᵀ), the thing U₁V₁ᵀ stands for. O(L²) memory: a reference for
 * tests and small cases. Throws if an entry overflows.
 */
export function exactKernel(q: Matrix, k: Matrix, beta: number): Matrix {
  checkQueryKey(q, k, beta);
  const s = matmul(q, k, { transposeB: true });
  const out = zeros(s.rows, s.cols, { dtype: q.dtype });
  for (let t = 0; t < s.data.length; t++) out.data[t] = Math.exp(beta * s.data[t]);
  if (out.data.some((v) => !Number.isFinite(v))) throw new RangeError('exactKernel: exp(β·q·k) overflowed; use exactSoftmax');
  return out;
}

/** The exact softmax f = D⁻¹exp(β·QKᵀ), row by row with the row maximum subtracted so exp never overflows. O(L²) memory. */
export function exactSoftmax(q: Matrix, k: Matrix, beta: number): Matrix {
  checkQueryKey(q, k, beta);
  const s = matmul(q, k, { transposeB: true });
  const out = zeros(s.rows, s.cols, { dtype: q.dtype });
  for (let i = 0; i < s.rows; i++) {
    const row = i * s.cols;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < s.cols; j++) max = Math.max(max, beta * s.data[row + j]);
    let sum = 0;
    for (let j = 0; j < s.cols; j++) {
      const e = Math.exp(beta * s.data[row + j] - max);
      out.data[row + j] = e;
      sum += e;
    }
    for (let j = 0; j < s.cols; j++) out.data[row + j] /= sum;
  }
  return out;
}

/**
 * The largest entrywise relative error |f̂_ij/f_ij − 1| of the polynomial softmax f̂ = p(S)/rowsum
 * against the exact softmax, over the given query rows only (every key, or keys j ≤ i when causal):
 * O(s·L·d) for s rows. An a-posteriori measurement on a sample, not a bound: the rows not sampled
 * may be worse. `keys` are the keys as the features see them (centered, when they were). Infinity
 * when a sampled row's polynomial weights do not sum to a positive number.
 */
export function sampledSoftmaxError(q: Matrix, keys: Matrix, coefficients: readonly number[], beta: number, rows: readonly number[], causal = false): number {
  checkQueryKey(q, keys, beta);
  let worst = 0;
  const scores = new Float64Array(keys.rows);
  for (const i of rows) {
    if (!Number.isInteger(i) || i < 0 || i >= q.rows) throw new RangeError(`sampled row ${i} is not a row of Q (0…${q.rows - 1})`);
    const width = causal ? Math.min(i + 1, keys.rows) : keys.rows;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < width; j++) {
      let s = 0;
      for (let c = 0; c < q.cols; c++) s += q.data[q.offset + i * q.stride + c] * keys.data[keys.offset + j * keys.stride + c];
      scores[j] = beta * s;
      max = Math.max(max, scores[j]);
    }
    let exactSum = 0;
    let polynomialSum = 0;
    for (let j = 0; j < width; j++) {
      exactSum += Math.exp(scores[j] - max);
      polynomialSum += evaluatePolynomial(coefficients, scores[j]);
    }
    if (!(polynomialSum > 0)) return Number.POSITIVE_INFINITY;
    for (let j = 0; j < width; j++) {
      const exact = Math.exp(scores[j] - max) / exactSum;
      worst = Math.max(worst, Math.abs(evaluatePolynomial(coefficients, scores[j]) / polynomialSum / exact - 1));
    }
  }
  return worst;
}
