/**
 * A decoder-only transformer with Hugging Face's Qwen3 conventions — token embedding, RMSNorm,
 * rotary position embedding, per-head q_norm/k_norm, SwiGLU MLP, final norm, LM head — forward and
 * backward, with LoRA on PEFT's target_modules and every attention through @almora/lora's core (LongLoRA's
 * shifted sparse attention as a training option), and text generation with a KV cache.
 *
 * @packageDocumentation
 * @module @almora/model
 */
export { qwen3Config, QWEN3_TINY, type Qwen3Config } from './config.js';
export { initQwen3Weights, qwen3StateDictShapes, qwen3ModulePath, QWEN3_MODULES, type Qwen3Weights, type Qwen3Module, type InitOptions } from './weights.js';
export { initQwen3Adapters, type Qwen3Lora, type Qwen3LoraConfig, type AdapterInitOptions } from './lora.js';
export { qwen3ForCausalLM, type Qwen3Model, type Qwen3Options, type Qwen3Result, type Qwen3Gradients } from './model.js';
export type { Qwen3LayerReport } from './layer.js';
export type { ShiftedSparseAttention, AttentionBlock } from './shifted-sparse.js';
export { IGNORE_INDEX } from './cross-entropy.js';
export { generate, type GenerateOptions, type GenerateResult } from './generate.js';
