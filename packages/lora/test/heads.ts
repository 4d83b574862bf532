// One head's paths with the paper's loss ½‖O − Y‖², assembled from the package's internal steps, so
// the head-level tests can hold each step against a dense reference.
import { planSoftmaxApproximation, type ApproximationOptions, type ApproximationPlan } from '@almora/kernels';
import { cpuBackend } from '@almora/kernels';
import { type Matrix, sub } from '@almora/tensor';
import { autodiffBackward } from '../src/autodiff.js';
import { chainedBackward } from '../src/chained.js';
import { runNow } from '../src/head.js';
import { featureFactor } from '../src/low-rank.js';
import { applyF, type LowRankSoftmax, softmaxFactors } from '../src/softmax-factors.js';

/** One head's inputs with a target Y. */
export interface HeadInput {
  q: Matrix;
  k: Matrix;
  v: Matrix;
  y: Matrix;
  beta: number;
  causal: boolean;
}

export function planHead(q: Matrix, k: Matrix, options: ApproximationOptions): ApproximationPlan {
  return planSoftmaxApproximation(q, k, options);
}

export function buildSoftmax(q: Matrix, k: Matrix, plan: ApproximationPlan, beta: number, causal: boolean): LowRankSoftmax {
  return runNow(softmaxFactors(cpuBackend, { q, k }, k, plan, beta, causal));
}

/** f̂ with its features made block by block, `blockRows` rows at a time, instead of stored: the unmasked autodiff backward's way at long L. */
export function streamedSoftmax(f: LowRankSoftmax, q: Matrix, blockRows: number): LowRankSoftmax {
  return {
    ...f,
    u: { ...featureFactor(q, f.trees.query, 8), blockRows },
    v: { ...featureFactor(f.keys, f.trees.key, 8), blockRows },
  };
}

function withLoss(backward: typeof chainedBackward, input: HeadInput, f: LowRankSoftmax) {
  const output = applyF(cpuBackend, f, input.v);
  return { output, ...backward(cpuBackend, input, f, output, sub(output, input.y)) };
}

/** Output and gradients of ½‖f̂V − Y‖² by the paper's chain. */
export function chainedHead(input: HeadInput, f: LowRankSoftmax) {
  return withLoss(chainedBackward, input, f);
}

/** Output and gradients of ½‖f̂V − Y‖² by reverse mode through the features. */
export function autodiffHead(input: HeadInput, f: LowRankSoftmax) {
  return withLoss(autodiffBackward, input, f);
}
