export { DEFAULT_CONFIG, parseConfig, resolveConfig, flagValue, CONFIG_KEYS, type TrainConfig } from './config.js';
export { teacherTask, normalizeRows, checkTask, taskFromSafetensors, type TeacherTask, type TrainingTask } from './task.js';
export { trainRun, configHash, type RunOptions, type RunResult, type StepRecord } from './trainer.js';
export { exportPeft, importPeft, saveHeadBase, type PeftAdapters, type HeadBase } from './peft.js';
export { writeReport } from './report.js';
export { pretrain } from './pretrain.js';
export { finetune, type FinetuneOutcome } from './finetune.js';
export { helpText, cliReference, type CommandSpec, type OptionSpec } from './cli-options.js';
export { COMMANDS } from './commands.js';
