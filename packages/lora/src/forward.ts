import { type Backend, matmul, type Matrix } from '@almora/tensor';
import { attention } from './attention.js';
import type { CrossInput, SequenceInput } from './problem.js';

/** Options of {@link attentionForward}. */
export interface ForwardOptions {
  /** Heads H; d_out must be a multiple. Default 1. */
  heads?: number;
  /** Softmax temperature; default 1/√(d_out/H). */
  beta?: number;
  /** Causal masking; default false. */
  causal?: boolean;
  /** Where each head's attention runs; default the CPU. */
  backend?: Backend;
}

/**
 * The exact attention output O = [softmax(β·Q_hK_hᵀ)·V_h]_h for Q = X_Q·W_Q, K = X_K·W_K,
 * V = X_V·W_V in the paper's orientation (W is d_in×d_out) — inference, or a teacher's targets —
 * through the attention core, blocked so no L×L matrix is held.
 */
export function attentionForward(x: SequenceInput, weights: { q: Matrix; k: Matrix; v: Matrix }, options: ForwardOptions = {}): Matrix {
  const [xq, xk, xv] = 'rows' in x ? [x, x, x] : [(x as CrossInput).q, (x as CrossInput).k, (x as CrossInput).v];
  const result = attention(matmul(xq, weights.q), matmul(xk, weights.k), matmul(xv, weights.v), { ...options, method: 'exact' });
  result.dispose();
  return result.output;
}
