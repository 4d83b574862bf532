import { fused } from '@almora/kernels';
import { type Backend, type DeviceMatrix, scoped, type ScopedBackend } from '@almora/tensor';
import type { HeadGradients, HeadInput } from './head.js';

/** What the exact forward pass returns: O, and each block's probabilities when they were kept. */
export interface ExactForward<T extends DeviceMatrix> {
  /** O = f·V (L_q×d_v). */
  output: T;
  /** f of each block of query rows, kept for the backward pass (undefined: it recomputes them). */
  probabilities: T[] | undefined;
}

/** Bytes the probabilities of one head take when kept: Σ over blocks of rows × keys seen (causal blocks see fewer). */
export function probabilityBytes(queries: number, keys: number, causal: boolean, blockSize: number, bytesPerEntry: number): number {
  let entries = 0;
  for (let start = 0; start < queries; start += blockSize) {
    const end = Math.min(start + blockSize, queries);
    entries += (end - start) * (causal ? end : keys);
  }
  return entries * bytesPerEntry;
}

/**
 * O = f·V for one head — the forward pass of the exact path — in blocks of query rows, so no L×L
 * matrix is needed (the flash-attention idea); with `causal`, row i sees only keys j ≤ i. With
 * `keepProbabilities` each block's f is kept for the backward pass, trading memory for its
 * recomputation.
 */
export function exactForwardHead<T extends DeviceMatrix>(
  backend: Backend<T>,
  input: HeadInput<T>,
  blockSize: number,
  keepProbabilities = false,
): ExactForward<T> {
  const { q, k, v, beta, causal } = input;
  const output = backend.zeros(q.rows, v.cols, q);
  const probabilities: T[] = [];
  const scope = scoped(backend);
  for (let start = 0; start < q.rows; start += blockSize) {
    const end = Math.min(start + blockSize, q.rows);
    const keys = causal ? end : k.rows;
    const f = fused(keepProbabilities ? backend : scope).attentionProbabilities(
      scope.sliceRows(q, start, end),
      scope.sliceRows(k, 0, keys),
      beta,
      causal ? start : undefined,
    );
    if (keepProbabilities) probabilities.push(f);
    backend.accumulate(output, scope.matmul(f, scope.sliceRows(v, 0, keys)), start);
    scope.releaseAll();
  }
  return { output, probabilities: keepProbabilities ? probabilities : undefined };
}

/** A block's output rows O_b and upstream gradient c_b = ∂loss/∂O_b, given its probabilities f_b. */
type BlockUpstream<T extends DeviceMatrix> = (scope: ScopedBackend<T>, f: T, values: T, start: number, end: number) => { output: T; c: T };

/**
 * The exact backward pass of one head — the paper's Theorem F.1 — for any upstream gradient, in
 * Θ(L²·d) time and O(L·d + block·L) memory. For each block of query rows, with S = Q_b·Kᵀ:
 *   f = D⁻¹exp(β·S − rowmax)        (kept from the forward pass, or recomputed; rowmax cancels in D⁻¹)
 *   p = f ∘ (c·Vᵀ − ⟨c_i, O_i⟩·1ᵀ)  (= ∂loss/∂(βS); the paper's p₁ − p₂, with c = ∂loss/∂O)
 *   ∂Q_b = β·p·K,  ∂K = β·Σ_b pᵀ·Q_b,  ∂V = Σ_b fᵀ·c.
 */
function exactBlocks<T extends DeviceMatrix>(
  backend: Backend<T>,
  input: HeadInput<T>,
  blockSize: number,
  upstream: BlockUpstream<T>,
  keepOutput: boolean,
  kept: T[] | undefined,
): HeadGradients<T> & { output: T | undefined } {
  const { q, k, v, beta, causal } = input;
  const output = keepOutput ? backend.zeros(q.rows, v.cols, q) : undefined;
  const dqUnscaled = backend.zeros(q.rows, q.cols, q);
  const dkUnscaled = backend.zeros(k.rows, k.cols, q);
  const dv = backend.zeros(v.rows, v.cols, q);
  // Per-block temporaries go back to the backend after each block; on the CPU the block×L
  // buffers are then reused by the next block instead of being allocated again.
  const scope = scoped(backend);
  const kernels = fused(scope);
  for (let start = 0, block = 0; start < q.rows; start += blockSize, block++) {
    const end = Math.min(start + blockSize, q.rows);
    const keys = causal ? end : k.rows;
    const qb = scope.sliceRows(q, start, end);
    const kb = scope.sliceRows(k, 0, keys);
    const vb = scope.sliceRows(v, 0, keys);
    // A kept block belongs to the backward pass now, which releases it once used.
    const f = kept ? kept[block] : kernels.attentionProbabilities(qb, kb, beta, causal ? start : undefined);
    const { output: ob, c } = upstream(scope, f, vb, start, end);
    const p = kernels.attentionScoresGradient(f, c, vb, scope.rowSums(scope.hadamard(c, ob)));
    if (output) backend.accumulate(output, ob, start);
    backend.accumulate(dqUnscaled, scope.matmul(p, kb), start);
    backend.accumulate(dkUnscaled, scope.matmul(p, qb, { transposeA: true }));
    backend.accumulate(dv, scope.matmul(f, c, { transposeA: true }));
    scope.releaseAll();
    if (kept) backend.dispose(f);
  }
  const dq = backend.affine(dqUnscaled, beta);
  const dk = backend.affine(dkUnscaled, beta);
  backend.dispose(dqUnscaled);
  backend.dispose(dkUnscaled);
  return { output, dq, dk, dv };
}

/**
 * ∂Q, ∂K, ∂V of one head for an upstream gradient ∂O of the forward pass {@link exactForwardHead}
 * made: its kept probabilities are used (and released), or the blocks are recomputed.
 */
export function exactBackwardHead<T extends DeviceMatrix>(
  backend: Backend<T>,
  input: HeadInput<T>,
  forward: ExactForward<T>,
  outputGradient: T,
  blockSize: number,
): HeadGradients<T> {
  const { dq, dk, dv } = exactBlocks(
    backend,
    input,
    blockSize,
    (scope, _f, _values, start, end) => ({ output: scope.sliceRows(forward.output, start, end), c: scope.sliceRows(outputGradient, start, end) }),
    false,
    forward.probabilities,
  );
  return { dq, dk, dv };
}

/**
 * Output and gradients of the paper's loss ½‖O − Y‖² for one head in a single pass: a block's rows
 * of O depend only on that block, so c = O_b − Y_b is known as soon as O_b is, and nothing is
 * computed twice (five L×L×d products instead of the seven of forward then backward).
 */
export function exactLossHead<T extends DeviceMatrix>(
  backend: Backend<T>,
  input: HeadInput<T>,
  target: T,
  blockSize: number,
): HeadGradients<T> & { output: T } {
  const result = exactBlocks(
    backend,
    input,
    blockSize,
    (scope, f, values, start, end) => {
      const output = scope.matmul(f, values);
      return { output, c: scope.sub(output, scope.sliceRows(target, start, end)) };
    },
    true,
    undefined,
  );
  return { ...result, output: result.output! };
}
