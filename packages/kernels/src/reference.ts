import { matmul, type Matrix, zeros } from '@almora/tensor';
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
