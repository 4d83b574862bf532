import { QWEN3_MODULES, type Qwen3Config, qwen3Config, type Qwen3Lora, type Qwen3Module, type Qwen3Weights, qwen3StateDictShapes } from '@almora/model';
import {
  checkAdapterForModel,
  type JsonObject,
  loraConfig,
  matrixToTensor,
  readModelConfig,
  readModelFolder,
  readPeftAdapter,
  type SafetensorsDType,
  type SafetensorsTensor,
  tensorToMatrix,
  writeModelFolder,
  writePeftAdapter,
} from '@almora/peft';
import { InvalidArgumentError, type Matrix } from '@almora/tensor';
import { writeFileAtomic } from './checkpoint.js';

/**
 * The config.json field that records the q_norm/k_norm gain cap a model was trained with (the norm
 * control); transformers keeps unknown fields as attributes and computes as without it, which is
 * the same model while every gain is inside the cap.
 */
export const QK_NORM_CAP_FIELD = 'almora_qk_norm_cap';

const TORCH_DTYPE: Record<SafetensorsDType, string> = { F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/**
 * Writes a Qwen3 model as Hugging Face saves one (@almora/peft's model folder): `config.json`
 * (with `architectures` and `torch_dtype`) and `model.safetensors` under the state-dict keys, each
 * tensor in its torch shape (RMSNorm weights 1-D). Both files are written atomically.
 */
export async function saveQwen3(dir: string, config: Qwen3Config, weights: Qwen3Weights, dtype: SafetensorsDType = 'F32', qkNormCap?: number): Promise<void> {
  if (qkNormCap !== undefined && !(Number.isFinite(qkNormCap) && qkNormCap > 0))
    throw new InvalidArgumentError(`saveQwen3: qkNormCap must be finite and > 0, got ${qkNormCap}`);
  const tensors: Record<string, SafetensorsTensor> = {};
  for (const [key, shape] of Object.entries(qwen3StateDictShapes(config))) {
    const m = weights[key] as Matrix | undefined;
    // A torch shape [out, in] is an out×in matrix here, and [n] a 1×n one.
    const [rows, cols] = shape.length === 1 ? [1, shape[0]] : shape;
    if (!m) throw new InvalidArgumentError(`saveQwen3: the weights have no "${key}"`);
    if (m.rows !== rows || m.cols !== cols) throw new InvalidArgumentError(`saveQwen3: "${key}" is ${m.rows}×${m.cols}, the config needs ${rows}×${cols}`);
    tensors[key] = matrixToTensor(m, dtype, shape);
  }
  const json = {
    architectures: ['Qwen3ForCausalLM'],
    ...config,
    torch_dtype: TORCH_DTYPE[dtype],
    ...(qkNormCap === undefined ? {} : { [QK_NORM_CAP_FIELD]: qkNormCap }),
  };
  await writeModelFolder(dir, { config: json, tensors }, { writeFile: writeFileAtomic });
}

/** The q_norm/k_norm cap a model folder's config.json records ({@link QK_NORM_CAP_FIELD}), or undefined. */
export async function readQkNormCap(dir: string): Promise<number | undefined> {
  return qkNormCapOf(await readModelConfig(dir), dir);
}

function qkNormCapOf(json: JsonObject, dir: string): number | undefined {
  const cap = json[QK_NORM_CAP_FIELD];
  if (cap === undefined || cap === null) return undefined;
  if (typeof cap !== 'number' || !Number.isFinite(cap) || cap <= 0)
    throw new InvalidArgumentError(`${dir}/config.json: ${QK_NORM_CAP_FIELD} must be a finite number > 0, got ${JSON.stringify(cap)}`);
  return cap;
}

/**
 * Reads a model folder in Hugging Face's layout (`config.json`, `model.safetensors`) into float64
 * weights, with the q_norm/k_norm cap it was trained with if its config.json records one; the
 * config is checked by `qwen3Config`, and a missing, unknown or misshapen tensor is an
 * `InvalidArgumentError` naming its key.
 */
export async function loadQwen3(dir: string): Promise<{ config: Qwen3Config; weights: Qwen3Weights; qkNormCap: number | undefined }> {
  const { config: json, tensors } = await readModelFolder(dir);
  const qkNormCap = qkNormCapOf(json, dir);
  const config = qwen3Config(json);
  const shapes = qwen3StateDictShapes(config);
  const weights: Qwen3Weights = {};
  for (const [key, shape] of Object.entries(shapes)) {
    const tensor = tensors[key];
    if (!tensor) throw new InvalidArgumentError(`${dir}/model.safetensors has no tensor "${key}"`);
    if (tensor.shape.join(',') !== shape.join(','))
      throw new InvalidArgumentError(`${dir}/model.safetensors: "${key}" has shape [${tensor.shape.join(', ')}] but config.json needs [${shape.join(', ')}]`);
    weights[key] = tensorToMatrix(tensor);
  }
  for (const key of Object.keys(tensors)) {
    if (!(key in shapes) && !(key === 'lm_head.weight' && config.tie_word_embeddings))
      throw new InvalidArgumentError(`${dir}/model.safetensors has the unknown tensor "${key}"`);
  }
  return { config, weights, qkNormCap };
}

/**
 * Writes LoRA adapters of a Qwen3 model as PEFT saves them for a causal LM (@almora/peft):
 * `adapter_config.json` (peft_type LORA, task_type CAUSAL_LM, base_model_name_or_path,
 * target_modules, r, lora_alpha, rank_pattern by module path) and `adapter_model.safetensors` with keys
 * `base_model.model.<module path>.lora_A.weight` (r×in) and `….lora_B.weight` (out×r), which
 * `PeftModel.from_pretrained` loads onto the base. Both files are written atomically.
 */
export async function savePeftAdapters(dir: string, lora: Qwen3Lora, baseModel: string, dtype: SafetensorsDType = 'F32'): Promise<void> {
  const config = loraConfig({
    r: lora.r,
    lora_alpha: lora.lora_alpha,
    target_modules: [...lora.target_modules],
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    ...(lora.rank_pattern ? { rank_pattern: { ...lora.rank_pattern } } : {}),
  });
  await writePeftAdapter(dir, { config, modules: lora.adapters }, { dtype, writeFile: writeFileAtomic });
}

/**
 * Reads adapters written by {@link savePeftAdapters} or by PEFT for this model, checked by
 * @almora/peft against the model's linear layers: every module target_modules selects, in every
 * layer, must be there with lora_A r×in and lora_B out×r (r from rank_pattern where a key
 * matches), and nothing else. What a Qwen3Lora cannot hold — use_rslora, per-module alphas,
 * targets other than a list of Qwen3's module names — is refused, not silently ignored.
 */
export async function loadPeftAdapters(dir: string, config: Qwen3Config): Promise<Qwen3Lora> {
  const adapter = await readPeftAdapter(dir);
  const { r, lora_alpha, target_modules: targets, use_rslora, rank_pattern, alpha_pattern } = adapter.config;
  if (use_rslora) throw new InvalidArgumentError(`${dir}/adapter_config.json: use_rslora is true; only false is supported`);
  if (Object.keys(alpha_pattern).length > 0)
    throw new InvalidArgumentError(`${dir}/adapter_config.json: alpha_pattern is not supported (one lora_alpha for every module)`);
  if (!Array.isArray(targets) || !targets.every((t) => (QWEN3_MODULES as readonly string[]).includes(t)))
    throw new InvalidArgumentError(`${dir}/adapter_config.json: target_modules must list some of ${QWEN3_MODULES.join(', ')}`);
  if (new Set(targets).size !== targets.length)
    throw new InvalidArgumentError(`${dir}/adapter_config.json: target_modules lists a module twice: ${JSON.stringify(targets)}`);
  const linear = Object.fromEntries(
    Object.entries(qwen3StateDictShapes(config))
      .filter(([key, shape]) => key.endsWith('.weight') && shape.length === 2 && !key.endsWith('embed_tokens.weight'))
      .map(([key, shape]) => [key.slice(0, -'.weight'.length), shape]),
  );
  try {
    checkAdapterForModel(adapter, linear);
  } catch (error) {
    if (error instanceof Error) error.message = `${dir}: ${error.message}`;
    throw error;
  }
  // rank_pattern's keys may be patterns (PEFT matches them against module names); the checked
  // adapters carry each module's rank, and the model wants them by module path.
  const ranks = Object.fromEntries(
    Object.entries(adapter.modules)
      .filter(([, a]) => a.lora_A.rows !== r)
      .map(([path, a]) => [path, a.lora_A.rows]),
  );
  return {
    r,
    lora_alpha,
    target_modules: targets as Qwen3Module[],
    ...(Object.keys(rank_pattern).length > 0 ? { rank_pattern: ranks } : {}),
    adapters: adapter.modules,
  };
}
