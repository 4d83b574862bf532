export { DEFAULT_CONFIG, parseConfig, resolveConfig, flagValue, CONFIG_KEYS, type TrainConfig } from './config.js';
export { teacherTask, normalizeRows, checkTask, taskFromSafetensors, type TeacherTask, type TrainingTask } from './task.js';
export { trainRun, configHash, TrainingDivergedError, type RunOptions, type RunResult, type StepRecord } from './trainer.js';
export { createOptimizer, learningRate, globalNorm, applyUpdate, type OptimizerState } from './optim.js';
export { saveCheckpoint, loadCheckpoint, latestCheckpoint, listCheckpoints, writeFileAtomic, CheckpointError, type CheckpointState } from './checkpoint.js';
export { exportPeft, importPeft, type PeftAdapters } from './peft.js';
export { RunDirError, RunLockedError } from './run-dir.js';
export { writeReport } from './report.js';
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
  type TextSplit,
} from './language-model.js';
export { saveQwen3, loadQwen3, savePeftAdapters, loadPeftAdapters } from './hf-files.js';
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
export { pretrain, PRETRAIN_DEFAULTS, BROWN_BASE_SHAPE } from './pretrain.js';
export { finetune, FINETUNE_DEFAULTS, SHIPPED_BASE_DIR, type FinetuneOutcome } from './finetune.js';
export { helpText, cliReference, type CommandSpec, type OptionSpec } from './cli-options.js';
export { COMMANDS } from './commands.js';
