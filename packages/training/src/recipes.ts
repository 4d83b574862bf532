import { fileURLToPath } from 'node:url';
import { QWEN3_TINY, qwen3Config, type Qwen3Config } from '@almora/model';
import type { LanguageModelConfig } from './language-model.js';

/** The base model's shape: QWEN3_TINY (2 layers of width 64, 4 query heads sharing 2 key/value heads of width 16, tied embeddings, one token per byte), positions up to 4,096. */
export const BROWN_BASE_SHAPE: Readonly<Qwen3Config> = Object.freeze(qwen3Config({ ...QWEN3_TINY, max_position_embeddings: 4096 }));

/** The pretraining recipe of the shipped base model (`almora pretrain` with no flags). */
export const PRETRAIN_DEFAULTS: Readonly<LanguageModelConfig> = Object.freeze<LanguageModelConfig>({
  mode: 'pretrain',
  contextLength: 256,
  batchSize: 4,
  steps: 2400,
  learningRate: 3e-3,
  warmupSteps: 100,
  decay: 'cosine',
  clipNorm: 1,
  seed: 1,
  method: 'exact',
  epsilon: 1e-3,
  qkNormCap: 1.5,
  shiftedSparseGroup: 0,
  lora: { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] },
  evalEvery: 200,
  evalWindows: 16,
  checkpointEvery: 200,
  divergenceFactor: 10,
  loraMethod: 'lora',
  stageSteps: 0,
  rankAllocation: 'none',
});

/** The shipped base model's folder (config.json, model.safetensors), made by `almora pretrain`. */
export const SHIPPED_BASE_DIR = fileURLToPath(new URL('../base-model/', import.meta.url));

/**
 * The main job's recipe: LoRA (r = 8, α = 16) on every linear map of the shipped base, fine-tuned
 * on the imaginative half of the Brown corpus at L = 2,048 — eight times the base's pretraining
 * context — with the base's q_norm/k_norm cap.
 */
export const FINETUNE_DEFAULTS: Readonly<LanguageModelConfig> = Object.freeze<LanguageModelConfig>({
  mode: 'finetune',
  contextLength: 2048,
  batchSize: 1,
  steps: 40,
  learningRate: 3e-3,
  warmupSteps: 4,
  decay: 'cosine',
  clipNorm: 1,
  seed: 1,
  method: 'auto',
  epsilon: 1e-3,
  qkNormCap: 1.5,
  shiftedSparseGroup: 0,
  lora: { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
  evalEvery: 0,
  evalWindows: 8,
  checkpointEvery: 10,
  divergenceFactor: 10,
  loraMethod: 'lora',
  stageSteps: 0,
  rankAllocation: 'none',
});
