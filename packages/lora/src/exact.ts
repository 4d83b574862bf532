import { addInto, allocate, block, matmul, Matrix, sliceRows, zeros } from '@almora/tensor';
import type { HeadInput, HeadResult } from './head.js';

/** Query rows per block of the exact path: memory is O(block·L), never L×L. */
export const DEFAULT_BLOCK_SIZE = 128;

/**
 * f = D⁻¹exp(β·Q_b·Kᵀ) for one block of query rows starting at row `start`: the row maximum is
 * subtracted first so exp never overflows (it cancels in D⁻¹); causal masking zeroes keys j > i.
 */
function softmaxBlock(qb: Matrix, kb: Matrix, beta: number, causal: boolean, start: number, scratch: Float64Array | Float32Array): Matrix {
  const f = matmul(qb, kb, { transposeB: true, out: new Matrix(qb.rows, kb.rows, scratch) });
  const keys = kb.rows;
  for (let r = 0; r < qb.rows; r++) {
    const base = r * keys;
    const allowed = causal ? start + r + 1 : keys;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < allowed; j++) max = Math.max(max, beta * f.data[base + j]);
    let sum = 0;
    for (let j = 0; j < allowed; j++) {
      const e = Math.exp(beta * f.data[base + j] - max);
      f.data[base + j] = e;
      sum += e;
    }
    const inverse = 1 / sum;
    for (let j = 0; j < allowed; j++) f.data[base + j] *= inverse;
    for (let j = allowed; j < keys; j++) f.data[base + j] = 0;
  }
  return f;
}

/** O = f·V for one head, blocked like {@link exactHead} but with no backward pass. */
export function exactForwardHead(q: Matrix, k: Matrix, v: Matrix, beta: number, causal: boolean, blockSize = DEFAULT_BLOCK_SIZE): Matrix {
  const output = zeros(q.rows, v.cols, { dtype: q.dtype });
  const scratch = allocate(blockSize * k.rows, q.dtype);
  for (let start = 0; start < q.rows; start += blockSize) {
    const end = Math.min(start + blockSize, q.rows);
    const keys = causal ? end : k.rows;
    const f = softmaxBlock(sliceRows(q, start, end), sliceRows(k, 0, keys), beta, causal, start, scratch);
    addInto(sliceRows(output, start, end), matmul(f, sliceRows(v, 0, keys)));
  }
  return output;
}

/**
 * Exact loss, output and gradients of one head — the paper's Theorem F.1 — in Θ(L²·d) time and
 * O(L·d + block·L) memory. Query rows are processed in blocks (the flash-attention idea); for each
 * block, with S = β·Q_b·Kᵀ:
 *   f = D⁻¹exp(S − rowmax)          (the row maximum keeps exp from overflowing; it cancels in D⁻¹)
 *   O = f·V,  c = O − Y
 *   p = f ∘ (c·Vᵀ) − diag(⟨c_i, O_i⟩)·f   (= ∂loss/∂S; the paper's p₁ − p₂)
 *   ∂Q_b = β·p·K,  ∂K += β·pᵀ·Q_b,  ∂V += fᵀ·c.
 * One pass suffices because a block's O depends only on its own rows. Causal masking drops keys
 * j > i. Works in the inputs' dtype (float64 or float32).
 */
export function exactHead(input: HeadInput, blockSize = DEFAULT_BLOCK_SIZE): HeadResult {
  const { q, k, v, y, beta, causal } = input;
  const lq = q.rows;
  const lk = k.rows;
  const dh = q.cols;
  const dtype = q.dtype;
  const output = zeros(lq, dh, { dtype });
  const dq = zeros(lq, dh, { dtype });
  const dk = zeros(lk, dh, { dtype });
  const dv = zeros(lk, v.cols, { dtype });
  let loss = 0;
  // Two block×L buffers reused by every block: allocating them per block spent ~30% of the time
  // in the kernel (page faults) at L = 32,768.
  const scoreScratch = allocate(blockSize * lk, dtype);
  const gradientScratch = allocate(blockSize * lk, dtype);
  for (let start = 0; start < lq; start += blockSize) {
    const end = Math.min(start + blockSize, lq);
    const keys = causal ? end : lk;
    const qb = sliceRows(q, start, end);
    const kb = sliceRows(k, 0, keys);
    const vb = sliceRows(v, 0, keys);
    const f = softmaxBlock(qb, kb, beta, causal, start, scoreScratch);
    const rows = end - start;
    const ob = matmul(f, vb);
    const c = zeros(rows, dh, { dtype });
    const rowDot = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      const yBase = y.offset + (start + r) * y.stride;
      let dot = 0;
      for (let l = 0; l < dh; l++) {
        const o = ob.data[r * dh + l];
        const diff = o - y.data[yBase + l];
        c.data[r * dh + l] = diff;
        loss += 0.5 * diff * diff;
        dot += diff * o;
      }
      rowDot[r] = dot;
    }
    const p = matmul(c, vb, { transposeB: true, out: new Matrix(rows, keys, gradientScratch) });
    for (let r = 0; r < rows; r++) {
      const base = r * keys;
      for (let j = 0; j < keys; j++) p.data[base + j] = f.data[base + j] * (p.data[base + j] - rowDot[r]);
    }
    addInto(sliceRows(output, start, end), ob);
    const dqb = matmul(p, kb);
    for (let t = 0; t < dqb.data.length; t++) dqb.data[t] *= beta;
    addInto(sliceRows(dq, start, end), dqb);
    const dkb = matmul(p, qb, { transposeA: true });
    for (let t = 0; t < dkb.data.length; t++) dkb.data[t] *= beta;
    addInto(block(dk, 0, 0, keys, dh), dkb);
    addInto(block(dv, 0, 0, keys, v.cols), matmul(f, c, { transposeA: true }));
  }
  return { loss, output, dq, dk, dv };
}
