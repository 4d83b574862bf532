import { type Matrix, zeros } from '@almora/tensor';

/** Hugging Face's `ignore_index`: a label of −100 contributes nothing to the loss. */
export const IGNORE_INDEX = -100;

function logSumExp(logits: Matrix, i: number): number {
  const base = logits.offset + i * logits.stride;
  let largest = -Infinity;
  for (let j = 0; j < logits.cols; j++) largest = Math.max(largest, logits.data[base + j]);
  let sum = 0;
  for (let j = 0; j < logits.cols; j++) sum += Math.exp(logits.data[base + j] - largest);
  return largest + Math.log(sum);
}

/**
 * Mean cross-entropy of the rows that have a target (targets[t] ≥ 0; {@link IGNORE_INDEX}
 * elsewhere): (1/N)·Σ_t (logsumexp(z_t) − z_t[target_t]), computed with the row maximum subtracted.
 */
export function crossEntropy(logits: Matrix, targets: readonly number[]): { loss: number; count: number } {
  let sum = 0;
  let count = 0;
  targets.forEach((target, t) => {
    if (target === IGNORE_INDEX) return;
    sum += logSumExp(logits, t) - logits.data[logits.offset + t * logits.stride + target];
    count++;
  });
  return { loss: sum / count, count };
}

/** The gradient of {@link crossEntropy}'s mean: (softmax(z_t) − e_target)/N on rows with a target, 0 elsewhere. */
export function crossEntropyBackward(logits: Matrix, targets: readonly number[], count: number): Matrix {
  const dz = zeros(logits.rows, logits.cols, { dtype: logits.dtype });
  targets.forEach((target, t) => {
    if (target === IGNORE_INDEX) return;
    const base = logits.offset + t * logits.stride;
    const lse = logSumExp(logits, t);
    for (let j = 0; j < logits.cols; j++) dz.data[t * logits.cols + j] = Math.exp(logits.data[base + j] - lse) / count;
    dz.data[t * logits.cols + target] -= 1 / count;
  });
  return dz;
}
