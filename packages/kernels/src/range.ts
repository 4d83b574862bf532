import { assertFinite, colSums, InvalidArgumentError, Matrix, maxAbs, ShapeError, zeros } from '@almora/tensor';

/** The norm quantities that decide whether the fast path can work, computed in O(L·d). */
export interface RangeReport {
  /** Certified range used: |β·q_i·k_j| ≤ range for every pair (after centering, when it was applied). */
  range: number;
  /** β·max‖q_i‖·max‖k_j‖ for the keys as given. */
  rawRange: number;
  /** The same with the mean key subtracted. */
  centeredRange: number;
  /** Whether keys are centered in the approximation (asked for, and it shrank the range). */
  centered: boolean;
  /** The mean key k̄ (1×d) that centering subtracts; zeros when not centered. */
  keyMean: Matrix;
  /** The paper's Γ: max(‖√β·Q‖∞, ‖√β·K‖∞), entrywise, for the keys as given. */
  gamma: number;
  /** √(log L) (natural log), the threshold Γ is compared with; L = the number of keys. */
  threshold: number;
}

function maxRowNorm(m: Matrix, shift?: Float64Array): number {
  let best = 0;
  for (let i = 0; i < m.rows; i++) {
    const base = m.offset + i * m.stride;
    let s = 0;
    for (let j = 0; j < m.cols; j++) {
      const v = m.data[base + j] - (shift ? shift[j] : 0);
      s += v * v;
    }
    best = Math.max(best, s);
  }
  return Math.sqrt(best);
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
 * R = β·max_i‖q_i‖₂·max_j‖k_j‖₂ bounds |β·q_i·k_j| for all pairs (Cauchy–Schwarz). With
 * `centerKeys`, the mean key is subtracted too — softmax rows are unchanged by it, since q_i·k̄ is
 * constant along a row — and used only when it makes R smaller, so centering never widens the range.
 */
export function certifiedRange(q: Matrix, k: Matrix, beta: number, centerKeys = false): RangeReport {
  checkQueryKey(q, k, beta);
  const mean = Float64Array.from(colSums(k), (s) => s / k.rows);
  const maxQ = maxRowNorm(q);
  const rawRange = beta * maxQ * maxRowNorm(k);
  const centeredRange = beta * maxQ * maxRowNorm(k, mean);
  const centered = centerKeys && centeredRange < rawRange;
  const keyMean = zeros(1, k.cols, { dtype: k.dtype });
  if (centered) keyMean.data.set(mean);
  const rootBeta = Math.sqrt(beta);
  return {
    range: centered ? centeredRange : rawRange,
    rawRange,
    centeredRange,
    centered,
    keyMean,
    gamma: rootBeta * Math.max(maxAbs(q), maxAbs(k)),
    threshold: Math.sqrt(Math.log(Math.max(k.rows, 1))),
  };
}
