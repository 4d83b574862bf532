import type { LoraWeights } from '@almora/lora';
import { assertFinite, type DType, DTypeError, InvalidArgumentError, randomUniform, type Rng, ShapeError, zeros } from '@almora/tensor';
import type { Qwen3Config } from './config.js';
import { isMatrix, QWEN3_MODULES, type Qwen3Module, qwen3ModulePath, qwen3StateDictShapes } from './weights.js';

/** LoRA on a Qwen3 model as PEFT's `LoraConfig` sets it: one r and lora_alpha, adapters on every layer's `target_modules`. */
export interface Qwen3LoraConfig {
  /** The rank r (rows of every lora_A). */
  r: number;
  /** lora_alpha; each update is scaled by lora_alpha/r (PEFT's `scaling`). */
  lora_alpha: number;
  /** The adapted linear maps, in every layer, by PEFT's names. */
  target_modules: readonly Qwen3Module[];
}

/**
 * A {@link Qwen3LoraConfig} with its tensors: `adapters` maps every adapted module's path
 * ({@link qwen3ModulePath}: `model.layers.N.self_attn.q_proj`, `model.layers.N.mlp.up_proj`, …) to
 * its lora_A (r×in) and lora_B (out×r); the module computes x·(W + (lora_alpha/r)·lora_B·lora_A)ᵀ.
 * PEFT stores the same tensors as `base_model.model.<path>.lora_A.weight` and `….lora_B.weight`.
 */
export interface Qwen3Lora extends Qwen3LoraConfig {
  /** lora_A and lora_B of every adapted module, by module path. */
  adapters: Record<string, LoraWeights>;
}

/** Options of {@link initQwen3Adapters}. */
export interface AdapterInitOptions {
  /** Element type; default float64 (it must match the model's weights). */
  dtype?: DType;
}

/** Every adapted module's path and its (out, in), layer by layer, in target_modules order. */
export function adaptedModules(config: Qwen3Config, targets: readonly Qwen3Module[]): { path: string; out: number; in: number }[] {
  const shapes = qwen3StateDictShapes(config);
  const list: { path: string; out: number; in: number }[] = [];
  for (let l = 0; l < config.num_hidden_layers; l++) {
    for (const module of targets) {
      const path = qwen3ModulePath(l, module);
      const [out, inner] = shapes[`${path}.weight`];
      list.push({ path, out, in: inner });
    }
  }
  return list;
}

function checkLoraConfig(lora: Qwen3LoraConfig): void {
  if (typeof lora !== 'object' || lora === null) throw new InvalidArgumentError('lora must be an object with r, lora_alpha and target_modules');
  if (!Number.isInteger(lora.r) || lora.r < 1) throw new InvalidArgumentError(`lora.r must be a positive integer, got ${String(lora.r)}`);
  if (typeof lora.lora_alpha !== 'number' || !Number.isFinite(lora.lora_alpha) || lora.lora_alpha <= 0)
    throw new InvalidArgumentError(`lora.lora_alpha must be finite and > 0, got ${String(lora.lora_alpha)}`);
  if (!Array.isArray(lora.target_modules) || lora.target_modules.length === 0)
    throw new InvalidArgumentError('lora.target_modules must name at least one module');
  for (const module of lora.target_modules) {
    if (!(QWEN3_MODULES as readonly string[]).includes(module))
      throw new InvalidArgumentError(`lora.target_modules names unknown module "${String(module)}"; Qwen3's are ${QWEN3_MODULES.join(', ')}`);
  }
  if (new Set(lora.target_modules).size !== lora.target_modules.length)
    throw new InvalidArgumentError(`lora.target_modules lists a module twice: ${lora.target_modules.join(', ')}`);
}

/**
 * Fresh adapters as PEFT initialises them: lora_A Kaiming-uniform (torch's default for a Linear,
 * uniform on ±1/√in), lora_B zeros, so the adapted model starts as the base model and only lora_B
 * moves in the first step.
 */
export function initQwen3Adapters(config: Qwen3Config, lora: Qwen3LoraConfig, rng: Rng, options: AdapterInitOptions = {}): Qwen3Lora {
  checkLoraConfig(lora);
  const dtype = options.dtype ?? 'float64';
  const adapters: Record<string, LoraWeights> = {};
  for (const { path, out, in: inner } of adaptedModules(config, lora.target_modules)) {
    const bound = 1 / Math.sqrt(inner);
    adapters[path] = { lora_A: randomUniform(lora.r, inner, rng, { dtype, low: -bound, high: bound }), lora_B: zeros(out, lora.r, { dtype }) };
  }
  return { r: lora.r, lora_alpha: lora.lora_alpha, target_modules: [...lora.target_modules], adapters };
}

/** The checked adapters, by module path, and the scaling lora_alpha/r. */
export interface CheckedLora {
  /** lora_alpha / r. */
  scaling: number;
  /** Every adapter, by module path. */
  adapters: Map<string, LoraWeights>;
}

/**
 * Checks the adapters against the config: one adapter for each target module of each layer and
 * no other, lora_A r×in and lora_B out×r, the model's dtype, finite values.
 */
export function checkLora(config: Qwen3Config, lora: Qwen3Lora | undefined, dtype: DType): CheckedLora {
  if (lora === undefined) return { scaling: 0, adapters: new Map() };
  checkLoraConfig(lora);
  if (typeof lora.adapters !== 'object' || lora.adapters === null) throw new InvalidArgumentError('lora.adapters must be an object of module paths');
  const expected = adaptedModules(config, lora.target_modules);
  const known = new Set(expected.map((m) => m.path));
  for (const path of Object.keys(lora.adapters)) {
    if (!known.has(path))
      throw new InvalidArgumentError(
        `lora.adapters has "${path}", which is not a target module of this ${config.num_hidden_layers}-layer model (target_modules: ${lora.target_modules.join(', ')})`,
      );
  }
  const adapters = new Map<string, LoraWeights>();
  for (const { path, out, in: inner } of expected) {
    const adapter = lora.adapters[path];
    if (!adapter || !isMatrix(adapter.lora_A) || !isMatrix(adapter.lora_B))
      throw new InvalidArgumentError(`lora.adapters["${path}"] is missing or lacks lora_A and lora_B matrices`);
    const { lora_A: a, lora_B: b } = adapter;
    if (a.rows !== lora.r || a.cols !== inner) throw new ShapeError(`${path}.lora_A is ${a.rows}×${a.cols} but must be r×in = ${lora.r}×${inner}`);
    if (b.rows !== out || b.cols !== lora.r) throw new ShapeError(`${path}.lora_B is ${b.rows}×${b.cols} but must be out×r = ${out}×${lora.r}`);
    if (a.dtype !== dtype || b.dtype !== dtype) throw new DTypeError(`lora.adapters["${path}"] is ${a.dtype}/${b.dtype} but the weights are ${dtype}`);
    assertFinite(a, `${path}.lora_A`);
    assertFinite(b, `${path}.lora_B`);
    adapters.set(path, adapter);
  }
  return { scaling: lora.lora_alpha / lora.r, adapters };
}
