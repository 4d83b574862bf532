/**
 * Exact and almost-linear LoRA gradients of attention (partial and full adaptation), with the regime check that picks between them and a certified error bound.
 *
 * @packageDocumentation
 * @module @almora/lora
 */
export {
  loraGradients,
  loraGradientsAsync,
  type LoraOptions,
  type LoraGradients,
  type AdapterGradient,
  type GradientReport,
  type GradientErrorBound,
  type AdapterErrorBound,
  type GradientMethod,
  type FastVariant,
} from './gradients.js';
export {
  normalizeProblem,
  TARGETS,
  type LoraProblem,
  type Adapter,
  type CrossInput,
  type SequenceInput,
  type Target,
  type NormalizedProblem,
  type Sequence,
} from './problem.js';
export { exactHead, exactForwardHead, DEFAULT_BLOCK_SIZE } from './exact.js';
export { attentionForward, type ForwardOptions } from './forward.js';
export { chainedHead, cTerm, p1Term, applyP1, p2Diagonal, type P1, type CTerm } from './chained.js';
export { autodiffHead } from './autodiff.js';
export { chainedGradientBound, type HeadBound } from './bound.js';
export { buildSoftmax, disposeSoftmax, planHead, applyF, applyFTransposed, type LowRankSoftmax, type SoftmaxFactorOptions } from './softmax-factors.js';
export { lowRankApply, lowRankApplyTransposed, faceSplitApply, faceSplitFactor, stored, type RowFactor } from './low-rank.js';
export { normQuantities, predictedHeadCost, type NormQuantity, type HeadCost } from './regime.js';
export type { HeadInput, HeadResult } from './head.js';
export { syntheticProblem, relativeGradientError, type SyntheticProblemSpec } from './synthetic.js';
