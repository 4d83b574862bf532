/**
 * LoRA training methods per adapted module, by name — LoRA-One, LoRA-SB, SBoRA, CoRA, LoRA-Pro,
 * the RAC-LoRA and XGBLoRA chains — and rank allocators (SR-LoRA, GeLoRA, SubLoRA) that return
 * PEFT's rank_pattern. Model-agnostic: a method sees one module's W, its adapter and gradients.
 *
 * @packageDocumentation
 * @module @almora/lora-methods
 */
export type { LoraMethod, LoraMethodName, MethodInit, ModuleMethodState, ChainSchedule } from './method.js';
export { LORA_METHODS, loraMethod, RANK_ALLOCATORS, rankAllocator, type RankAllocatorName } from './registry.js';
export { lora } from './lora.js';
export { loraOne, type LoraOneOptions } from './lora-one.js';
export { loraSb, type LoraSbOptions } from './lora-sb.js';
export { sbora, type SboraOptions } from './sbora.js';
export { cora, commonSubspace, type CoraOptions } from './cora.js';
export { loraPro, loraProGradients, type LoraProOptions } from './lora-pro.js';
export { racLora, xgbLora, nextStage, mergeIntoWeight, type ChainModule, type RacLoraOptions, type XgbLoraOptions } from './chain.js';
export { apportion, type RankAllocation } from './allocation.js';
export { srLoraRanks, stableRank } from './sr-lora.js';
export { geloraRanks, twoNN, type GeloraInput, type TwoNNOptions } from './gelora.js';
export { subloraRanks, type SubloraInput, type SubloraAllocation } from './sublora.js';
export { svd, cholesky, spdSolve, pseudoInverse, spectralNorm, type Svd } from './linalg.js';
