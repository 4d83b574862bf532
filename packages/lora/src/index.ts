/**
 * Exact and almost-linear LoRA gradients of attention (partial and full adaptation), with the regime check that picks between them and a certified error bound.
 *
 * @packageDocumentation
 * @module @almora/lora
 */
export {
  loraAttention,
  loraAttentionAsync,
  type AttentionLayer,
  type LoraConfig,
  type ModuleName,
  type LayerOptions,
  type LayerGradients,
  type LoraAttentionResult,
  type AsyncLoraAttentionResult,
} from './layer.js';
export type { LoraWeights } from './adapters.js';
export { attention, attentionAsync, type AttentionResult, type AsyncAttentionResult, type AttentionGradients } from './attention.js';
export type { AttentionCoreOptions } from './plan.js';
export type { AttentionReport, HeadReport } from './report.js';
export {
  DEFAULT_EPSILON,
  DEFAULT_BLOCK_SIZE,
  DEFAULT_MEMORY_BUDGET,
  DEFAULT_PROBABILITY_BUDGET,
  type AttentionOptions,
  type GradientMethod,
  type FastVariant,
} from './options.js';
export {
  loraGradients,
  loraGradientsAsync,
  type LoraOptions,
  type LoraGradients,
  type AdapterGradient,
  type GradientReport,
  type GradientErrorBound,
  type AdapterErrorBound,
} from './gradients.js';
export type { LoraProblem, Adapter, CrossInput, SequenceInput, Target } from './problem.js';
export { attentionForward, type ForwardOptions } from './forward.js';
export { predictedHeadCost, type NormQuantity, type HeadCost, type HeadBytes } from './regime.js';
export { faceSplitApply } from './low-rank.js';
export { syntheticProblem, relativeGradientError, type SyntheticProblemSpec } from './synthetic.js';
