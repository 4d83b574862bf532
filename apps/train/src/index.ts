export { DEFAULT_CONFIG, parseConfig, resolveConfig, flagValue, CONFIG_KEYS, type TrainConfig } from './config.js';
export { teacherTask, normalizeRows, checkTask, taskFromSafetensors, type TeacherTask, type TrainingTask } from './task.js';
export { trainRun, configHash, TrainingDivergedError, type RunOptions, type RunResult, type StepRecord } from './trainer.js';
export { createOptimizer, learningRate, globalNorm, applyUpdate, type OptimizerState } from './optim.js';
export {
  saveCheckpoint,
  loadCheckpoint,
  latestCheckpoint,
  listCheckpoints,
  writeFileAtomic,
  CheckpointError,
  type CheckpointState,
} from './checkpoint.js';
export {
  encodeSafetensors,
  decodeSafetensors,
  SafetensorsError,
  type SafetensorsFile,
  type SafetensorsTensor,
  type SafetensorsDType,
} from './safetensors.js';
export { exportPeft, importPeft, type PeftAdapters } from './peft.js';
export { RunDirError, RunLockedError } from './run-dir.js';
export { writeReport } from './report.js';
