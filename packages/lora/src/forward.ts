import { addInto, type Backend, cpuBackend, InvalidArgumentError, matmul, type Matrix, ShapeError, sliceCols, zeros } from '@almora/tensor';
import { exactForwardHead } from './exact.js';
import { readNow } from './head.js';
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
 * The attention output O = [softmax(β·Q_hK_hᵀ)·V_h]_h for Q = X_Q·W_Q, K = X_K·W_K, V = X_V·W_V —
 * the exact forward pass alone (inference, or producing a teacher's targets), blocked so no L×L
 * matrix is held.
 */
export function attentionForward(x: SequenceInput, weights: { q: Matrix; k: Matrix; v: Matrix }, options: ForwardOptions = {}): Matrix {
  const cross = !('rows' in x);
  const [xq, xk, xv] = cross ? [(x as CrossInput).q, (x as CrossInput).k, (x as CrossInput).v] : [x as Matrix, x as Matrix, x as Matrix];
  const heads = options.heads ?? 1;
  const dOut = weights.q.cols;
  if (!Number.isInteger(heads) || heads < 1 || dOut % heads !== 0) throw new ShapeError(`d_out = ${dOut} is not a multiple of heads = ${heads}`);
  const dh = dOut / heads;
  const beta = options.beta ?? 1 / Math.sqrt(dh);
  if (!Number.isFinite(beta) || beta <= 0) throw new InvalidArgumentError(`beta must be finite and > 0, got ${beta}`);
  const causal = options.causal ?? false;
  if (causal && xq.rows !== xk.rows) throw new ShapeError(`causal attention needs as many queries as keys; X_Q has ${xq.rows} rows and X_K ${xk.rows}`);
  const q = matmul(xq, weights.q);
  const k = matmul(xk, weights.k);
  const v = matmul(xv, weights.v);
  const out = zeros(q.rows, dOut, { dtype: q.dtype });
  const backend = options.backend ?? cpuBackend;
  for (let h = 0; h < heads; h++) {
    const cols = (m: Matrix) => sliceCols(m, h * dh, (h + 1) * dh);
    const device = { q: backend.upload(cols(q)), k: backend.upload(cols(k)), v: backend.upload(cols(v)), beta, causal };
    const head = exactForwardHead(backend, device);
    addInto(cols(out), readNow(backend, head, q.dtype));
    for (const handle of [device.q, device.k, device.v, head]) backend.dispose(handle);
  }
  return out;
}
