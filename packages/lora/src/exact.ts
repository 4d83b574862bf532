import { type Backend, type DeviceMatrix, scoped } from '@almora/tensor';
import type { HeadInput, HeadResult } from './head.js';

/** Query rows per block of the exact path: memory is O(block·L), never L×L. */
export const DEFAULT_BLOCK_SIZE = 128;

/** O = f·V for one head, blocked like {@link exactHead} but with no backward pass. */
export function exactForwardHead<T extends DeviceMatrix>(
  backend: Backend<T>,
  input: Pick<HeadInput<T>, 'q' | 'k' | 'v' | 'beta' | 'causal'>,
  blockSize = DEFAULT_BLOCK_SIZE,
): T {
  const { q, k, v, beta, causal } = input;
  const output = backend.zeros(q.rows, v.cols, q);
  const scope = scoped(backend);
  for (let start = 0; start < q.rows; start += blockSize) {
    const end = Math.min(start + blockSize, q.rows);
    const keys = causal ? end : k.rows;
    const f = scope.attentionProbabilities(scope.sliceRows(q, start, end), scope.sliceRows(k, 0, keys), beta, causal ? start : undefined);
    backend.accumulate(output, scope.matmul(f, scope.sliceRows(v, 0, keys)), start);
    scope.releaseAll();
  }
  return output;
}

/**
 * Exact output and gradients of one head — the paper's Theorem F.1 — in Θ(L²·d) time and
 * O(L·d + block·L) memory. Query rows are processed in blocks (the flash-attention idea); for each
 * block, with S = Q_b·Kᵀ:
 *   f = D⁻¹exp(β·S − rowmax)        (the row maximum keeps exp from overflowing; it cancels in D⁻¹)
 *   O = f·V,  c = O − Y
 *   p = f ∘ (c·Vᵀ − ⟨c_i, O_i⟩·1ᵀ)  (= ∂loss/∂(βS); the paper's p₁ − p₂)
 *   ∂Q_b = β·p·K,  ∂K = β·Σ_b pᵀ·Q_b,  ∂V = Σ_b fᵀ·c.
 * One pass suffices because a block's O depends only on its own rows. Causal masking drops keys
 * j > i. Works in the backend's precision (on the CPU, the inputs' dtype).
 */
export function exactHead<T extends DeviceMatrix>(backend: Backend<T>, input: HeadInput<T>, blockSize = DEFAULT_BLOCK_SIZE): HeadResult<T> {
  const { q, k, v, y, beta, causal } = input;
  const output = backend.zeros(q.rows, v.cols, q);
  const dqUnscaled = backend.zeros(q.rows, q.cols, q);
  const dkUnscaled = backend.zeros(k.rows, k.cols, q);
  const dv = backend.zeros(v.rows, v.cols, q);
  // Per-block temporaries go back to the backend after each block; on the CPU the block×L
  // buffers are then reused by the next block instead of being allocated again.
  const scope = scoped(backend);
  for (let start = 0; start < q.rows; start += blockSize) {
    const end = Math.min(start + blockSize, q.rows);
    const keys = causal ? end : k.rows;
    const qb = scope.sliceRows(q, start, end);
    const kb = scope.sliceRows(k, 0, keys);
    const vb = scope.sliceRows(v, 0, keys);
    const f = scope.attentionProbabilities(qb, kb, beta, causal ? start : undefined);
    const ob = scope.matmul(f, vb);
    const c = scope.sub(ob, scope.sliceRows(y, start, end));
    const p = scope.attentionScoresGradient(f, c, vb, scope.rowSums(scope.hadamard(c, ob)));
    backend.accumulate(output, ob, start);
    backend.accumulate(dqUnscaled, scope.matmul(p, kb), start);
    backend.accumulate(dkUnscaled, scope.matmul(p, qb, { transposeA: true }));
    backend.accumulate(dv, scope.matmul(f, c, { transposeA: true }));
    scope.releaseAll();
  }
  const dq = backend.affine(dqUnscaled, beta);
  const dk = backend.affine(dkUnscaled, beta);
  backend.dispose(dqUnscaled);
  backend.dispose(dkUnscaled);
  return { output, dq, dk, dv };
}
