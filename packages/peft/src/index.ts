/**
 * PEFT LoRA adapters in and out of JavaScript: `adapter_config.json` and
 * `adapter_model.safetensors` for any module paths, in PEFT's names and orientation (lora_A r×in,
 * lora_B out×r, scaling lora_alpha / r); a safetensors reader that treats its bytes as hostile
 * (F64, F32, F16, BF16); target_modules as a list, a regex or `all-linear`; merge and unmerge; and
 * model folders in Hugging Face's layout.
 *
 * @packageDocumentation
 * @module @almora/peft
 */
export { SafetensorsError, PeftError, PeftShapeError } from './errors.js';
export type { JsonValue, JsonObject } from './json.js';
export {
  encodeSafetensors,
  decodeSafetensors,
  type SafetensorsDType,
  type SafetensorsTensor,
  type SafetensorsFile,
  type SafetensorsOptions,
} from './safetensors.js';
export { tensorToMatrix, matrixToTensor, type ToMatrixOptions } from './matrix.js';
export { loraConfig, parseAdapterConfig, adapterConfigJson, loraScaling, type PeftLoraConfig, type LoraConfigInput } from './config.js';
export { ALL_LINEAR } from './targets.js';
export {
  encodePeftAdapter,
  decodePeftAdapter,
  checkAdapterForModel,
  ADAPTER_FILES,
  type PeftAdapter,
  type PeftFiles,
  type ReadAdapterOptions,
  type WriteAdapterOptions,
  type ModelCheckOptions,
} from './adapter.js';
export { mergeAdapter, unmergeAdapter, adapterDelta } from './merge.js';
export {
  readPeftAdapter,
  writePeftAdapter,
  readModelFolder,
  readModelConfig,
  writeModelFolder,
  type ModelFolder,
  type FolderWriteOptions,
  type WriteFile,
} from './files.js';
export { mutateSafetensors, HOSTILE_JSON_DOCUMENTS, HOSTILE_JSON_VALUES, type Mutation } from './mutate.js';
