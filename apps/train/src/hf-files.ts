import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { QWEN3_MODULES, type Qwen3Config, qwen3Config, type Qwen3Lora, type Qwen3LoraConfig, type Qwen3Module, qwen3ModulePath, type Qwen3Weights, qwen3StateDictShapes } from '@almora/model';
import { fromFlat, InvalidArgumentError, type Matrix } from '@almora/tensor';
import { writeFileAtomic } from './checkpoint.js';
import { writePeftFiles } from './peft.js';
import { decodeSafetensors, encodeSafetensors, type SafetensorsDType, type SafetensorsTensor } from './safetensors.js';

const PEFT_PREFIX = 'base_model.model.';

function tensorOf(m: Matrix, shape: number[], dtype: SafetensorsDType): SafetensorsTensor {
  const flat = m.toFlat();
  return { dtype, shape, data: dtype === 'F32' ? Float32Array.from(flat) : Float64Array.from(flat) };
}

async function readBytes(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (error) {
    throw new InvalidArgumentError(`cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

async function readJson(file: string): Promise<unknown> {
  const text = new TextDecoder().decode(await readBytes(file));
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError(`${file} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * The config.json field that records the q_norm/k_norm gain cap a model was trained with (the norm
 * control); transformers keeps unknown fields as attributes and computes as without it, which is
 * the same model while every gain is inside the cap.
 */
export const QK_NORM_CAP_FIELD = 'almora_qk_norm_cap';

/**
 * Writes a Qwen3 model as Hugging Face saves one: `config.json` (with `architectures` and
 * `torch_dtype`) and `model.safetensors` under the state-dict keys, each tensor in its torch
 * shape (RMSNorm weights 1-D). Both files are written atomically.
 */
export async function saveQwen3(dir: string, config: Qwen3Config, weights: Qwen3Weights, dtype: SafetensorsDType = 'F32', qkNormCap?: number): Promise<void> {
  if (qkNormCap !== undefined && !(Number.isFinite(qkNormCap) && qkNormCap > 0)) throw new InvalidArgumentError(`saveQwen3: qkNormCap must be finite and > 0, got ${qkNormCap}`);
  await mkdir(dir, { recursive: true });
  const tensors: Record<string, SafetensorsTensor> = {};
  for (const [key, shape] of Object.entries(qwen3StateDictShapes(config))) {
    const m = weights[key] as Matrix | undefined;
    // A torch shape [out, in] is an out×in matrix here, and [n] a 1×n one.
    const [rows, cols] = shape.length === 1 ? [1, shape[0]] : shape;
    if (!m) throw new InvalidArgumentError(`saveQwen3: the weights have no "${key}"`);
    if (m.rows !== rows || m.cols !== cols) throw new InvalidArgumentError(`saveQwen3: "${key}" is ${m.rows}×${m.cols}, the config needs ${rows}×${cols}`);
    tensors[key] = tensorOf(m, shape, dtype);
  }
  const json = { architectures: ['Qwen3ForCausalLM'], ...config, torch_dtype: dtype === 'F32' ? 'float32' : 'float64', ...(qkNormCap === undefined ? {} : { [QK_NORM_CAP_FIELD]: qkNormCap }) };
  await writeFileAtomic(path.join(dir, 'config.json'), `${JSON.stringify(json, null, 2)}\n`);
  await writeFileAtomic(path.join(dir, 'model.safetensors'), encodeSafetensors({ tensors, metadata: { format: 'pt' } }));
}

/** The q_norm/k_norm cap a model folder's config.json records ({@link QK_NORM_CAP_FIELD}), or undefined. */
export async function readQkNormCap(dir: string): Promise<number | undefined> {
  return qkNormCapOf((await readJson(path.join(dir, 'config.json'))) as Record<string, unknown>, dir);
}

function qkNormCapOf(json: Record<string, unknown>, dir: string): number | undefined {
  const cap = json[QK_NORM_CAP_FIELD];
  if (cap === undefined || cap === null) return undefined;
  if (typeof cap !== 'number' || !Number.isFinite(cap) || cap <= 0) throw new InvalidArgumentError(`${dir}/config.json: ${QK_NORM_CAP_FIELD} must be a finite number > 0, got ${JSON.stringify(cap)}`);
  return cap;
}

/**
 * Reads a model folder in Hugging Face's layout (`config.json`, `model.safetensors`) into float64
 * weights, with the q_norm/k_norm cap it was trained with if its config.json records one; the
 * config is checked by `qwen3Config`, and a missing, unknown or misshapen tensor is an
 * `InvalidArgumentError` naming its key.
 */
export async function loadQwen3(dir: string): Promise<{ config: Qwen3Config; weights: Qwen3Weights; qkNormCap: number | undefined }> {
  const json = (await readJson(path.join(dir, 'config.json'))) as Record<string, unknown>;
  const qkNormCap = qkNormCapOf(json, dir);
  const config = qwen3Config(json);
  const file = decodeSafetensors(await readBytes(path.join(dir, 'model.safetensors')));
  const shapes = qwen3StateDictShapes(config);
  const weights: Qwen3Weights = {};
  for (const [key, shape] of Object.entries(shapes)) {
    const tensor = file.tensors[key];
    if (!tensor) throw new InvalidArgumentError(`${dir}/model.safetensors has no tensor "${key}"`);
    if (tensor.shape.join(',') !== shape.join(',')) throw new InvalidArgumentError(`${dir}/model.safetensors: "${key}" has shape [${tensor.shape.join(', ')}] but config.json needs [${shape.join(', ')}]`);
    weights[key] = fromFlat(shape.length === 1 ? 1 : shape[0], shape[shape.length - 1], Array.from(tensor.data));
  }
  for (const key of Object.keys(file.tensors)) {
    if (!(key in shapes) && !(key === 'lm_head.weight' && config.tie_word_embeddings)) throw new InvalidArgumentError(`${dir}/model.safetensors has the unknown tensor "${key}"`);
  }
  return { config, weights, qkNormCap };
}

/**
 * Writes LoRA adapters of a Qwen3 model as PEFT saves them for a causal LM: `adapter_config.json`
 * (peft_type LORA, task_type CAUSAL_LM, base_model_name_or_path, target_modules, r, lora_alpha)
 * and `adapter_model.safetensors` with keys `base_model.model.<module path>.lora_A.weight` (r×in)
 * and `….lora_B.weight` (out×r), which `PeftModel.from_pretrained` loads onto the base.
 */
export async function savePeftAdapters(dir: string, lora: Qwen3Lora, baseModel: string, dtype: SafetensorsDType = 'F32'): Promise<void> {
  const tensors: Record<string, SafetensorsTensor> = {};
  for (const [module, { lora_A: a, lora_B: b }] of Object.entries(lora.adapters)) {
    tensors[`${PEFT_PREFIX}${module}.lora_A.weight`] = tensorOf(a, [a.rows, a.cols], dtype);
    tensors[`${PEFT_PREFIX}${module}.lora_B.weight`] = tensorOf(b, [b.rows, b.cols], dtype);
  }
  await writePeftFiles(dir, { taskType: 'CAUSAL_LM', baseModel, r: lora.r, alpha: lora.lora_alpha, targetModules: [...lora.target_modules] }, tensors);
}

/**
 * Reads adapters written by {@link savePeftAdapters} or by PEFT for this model: every target
 * module of every layer must be there with lora_A r×in and lora_B out×r, and nothing else;
 * use_rslora, DoRA, biases and per-module ranks are refused, not silently ignored.
 */
export async function loadPeftAdapters(dir: string, config: Qwen3Config): Promise<Qwen3Lora> {
  const json = (await readJson(path.join(dir, 'adapter_config.json'))) as Record<string, unknown>;
  if (json.peft_type !== 'LORA') throw new InvalidArgumentError(`${dir}/adapter_config.json: peft_type is ${JSON.stringify(json.peft_type)}, only "LORA" is supported`);
  for (const [field, allowed] of [['use_rslora', false], ['use_dora', false], ['bias', 'none']] as const) {
    if (json[field] !== undefined && json[field] !== allowed) throw new InvalidArgumentError(`${dir}/adapter_config.json: ${field} is ${JSON.stringify(json[field])}; only ${JSON.stringify(allowed)} is supported`);
  }
  for (const field of ['rank_pattern', 'alpha_pattern']) {
    const value = json[field];
    if (value !== undefined && value !== null && Object.keys(value as object).length > 0) throw new InvalidArgumentError(`${dir}/adapter_config.json: ${field} is not supported (one r and lora_alpha for every module)`);
  }
  const targets = json.target_modules;
  if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => (QWEN3_MODULES as readonly unknown[]).includes(t))) throw new InvalidArgumentError(`${dir}/adapter_config.json: target_modules must list some of ${QWEN3_MODULES.join(', ')}`);
  if (new Set(targets).size !== targets.length) throw new InvalidArgumentError(`${dir}/adapter_config.json: target_modules lists a module twice: ${JSON.stringify(targets)}`);
  const r = json.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw new InvalidArgumentError(`${dir}/adapter_config.json: r must be an integer ≥ 1, got ${JSON.stringify(r)}`);
  const alpha = json.lora_alpha;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0) throw new InvalidArgumentError(`${dir}/adapter_config.json: lora_alpha must be a finite number > 0, got ${JSON.stringify(alpha)}`);
  const settings: Qwen3LoraConfig = { r, lora_alpha: alpha, target_modules: targets as Qwen3Module[] };
  const file = decodeSafetensors(await readBytes(path.join(dir, 'adapter_model.safetensors')));
  const shapes = qwen3StateDictShapes(config);
  const adapters: Qwen3Lora['adapters'] = {};
  const matrix = (key: string, rows: number, cols: number) => {
    const tensor = file.tensors[key];
    if (!tensor) throw new InvalidArgumentError(`${dir}/adapter_model.safetensors has no tensor "${key}"`);
    if (tensor.shape.join(',') !== `${rows},${cols}`) throw new InvalidArgumentError(`${dir}/adapter_model.safetensors: "${key}" has shape [${tensor.shape.join(', ')}] but r = ${r} and the model need [${rows}, ${cols}]`);
    return fromFlat(rows, cols, Array.from(tensor.data));
  };
  for (let layer = 0; layer < config.num_hidden_layers; layer++) {
    for (const module of settings.target_modules) {
      const modulePath = qwen3ModulePath(layer, module);
      const [out, inner] = shapes[`${modulePath}.weight`];
      adapters[modulePath] = { lora_A: matrix(`${PEFT_PREFIX}${modulePath}.lora_A.weight`, r, inner), lora_B: matrix(`${PEFT_PREFIX}${modulePath}.lora_B.weight`, out, r) };
    }
  }
  const expected = new Set(Object.keys(adapters).flatMap((m) => [`${PEFT_PREFIX}${m}.lora_A.weight`, `${PEFT_PREFIX}${m}.lora_B.weight`]));
  const extra = Object.keys(file.tensors).find((key) => !expected.has(key));
  if (extra !== undefined) throw new InvalidArgumentError(`${dir}/adapter_model.safetensors has the tensor "${extra}", which is not an adapter of ${settings.target_modules.join(', ')} in ${config.num_hidden_layers} layers`);
  return { ...settings, adapters };
}
