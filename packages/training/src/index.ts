/**
 * Training a small Qwen3-shaped language model on real text, the library the `almora` CLI and the
 * bench's model suite share: the training loop (pretraining every weight, or LoRA fine-tuning on a
 * frozen base) with checkpoints, resume and divergence stops; Adam with warm-up and decay; run
 * folders that are locked, never written through symlinks and replaced atomically; Hugging Face and
 * PEFT files; the Brown corpus as byte streams; and the main job's recipes with its shipped base.
 *
 * @packageDocumentation
 * @module @almora/training
 */
export {
  trainLanguageModel,
  bitsPerChar,
  evaluationWindows,
  checkLanguageModelConfig,
  freshQwen3,
  adaptersOf,
  type LanguageModelConfig,
  type LanguageModelRun,
  type LanguageModelRunOptions,
  type LanguageModelStep,
  type LayerStep,
  type HeadStep,
  type TextSplit,
} from './language-model.js';
export { trainableParameterCount, methodFor } from './method-adapters.js';
export { allocateRanks, RANK_ALLOCATIONS, type RankAllocation, type AllocationInputs } from './rank-allocation.js';
export { BROWN_BASE_SHAPE, PRETRAIN_DEFAULTS, FINETUNE_DEFAULTS, SHIPPED_BASE_DIR } from './recipes.js';
export { saveQwen3, loadQwen3, readQkNormCap, savePeftAdapters, loadPeftAdapters } from './hf-files.js';
export {
  readBrownCorpus,
  splitByCategory,
  encodeBytes,
  decodeBytes,
  brownCorpusDir,
  INFORMATIVE_CATEGORIES,
  IMAGINATIVE_CATEGORIES,
  type BrownDocument,
} from './brown.js';
export { brownText, type BrownDomain } from './brown-text.js';
export { saveCheckpoint, loadCheckpoint, latestCheckpoint, listCheckpoints, writeFileAtomic, CheckpointError, type CheckpointState } from './checkpoint.js';
export { createOptimizer, learningRate, globalNorm, applyUpdate, type OptimizerState, type LearningRateSchedule } from './optim.js';
export { lockRunDir, refuseExistingRun, runSubfolder, openAppend, RunDirError, RunLockedError, type RunLock } from './run-dir.js';
export { TrainingDivergedError, divergence, resumableHash, checkResumeSteps, readMetricsRecords } from './run-guard.js';
