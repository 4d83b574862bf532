import type { LoraWeights } from '@almora/lora';
import { assertFinite, type DType, DTypeError, InvalidArgumentError, randomUniform, type Rng, ShapeError, zeros } from '@almora/tensor';
import type { Qwen3Config } from './config.js';
import { isMatrix, QWEN3_MODULES, type Qwen3Module, qwen3ModulePath, qwen3StateDictShapes } from './weights.js';

/**
 * LoRA on a Qwen3 model as PEFT's `LoraConfig` sets it: one lora_alpha, adapters on every layer's
 * `target_modules`, each of rank r unless `rank_pattern` gives its module another.
 */
export interface Qwen3LoraConfig {
  /** The rank r (rows of every lora_A) of each module `rank_pattern` does not name. */
  r: number;
  /** lora_alpha; each module's update is scaled by lora_alpha / (its rank) (PEFT's `scaling`). */
  lora_alpha: number;
  /** The adapted linear maps, in every layer, by PEFT's names. */
  target_modules: readonly Qwen3Module[];
  /**
   * PEFT's `rank_pattern`: another rank for some adapted modules, keyed by module path exactly as
   * {@link qwen3ModulePath} writes it (`model.layers.3.self_attn.q_proj`). A module's rank is
   * `rank_pattern[path] ?? r` and its scaling lora_alpha / that rank (PEFT's rule without
   * `alpha_pattern`). A key that is not an adapted module of the model, or a rank that is not a
   * positive safe integer, is an `InvalidArgumentError`. Default: every module has rank r.
   */
  rank_pattern?: Readonly<Record<string, number>>;
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

/** A module's rank: `rank_pattern[path]` where given, else r. */
export function moduleRank(lora: Qwen3LoraConfig, path: string): number {
  const pattern = lora.rank_pattern;
  return pattern !== undefined && Object.hasOwn(pattern, path) ? pattern[path] : lora.r;
}

function checkLoraConfig(config: Qwen3Config, lora: Qwen3LoraConfig): void {
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
  const pattern: unknown = lora.rank_pattern;
  if (pattern === undefined) return;
  if (typeof pattern !== 'object' || pattern === null || Array.isArray(pattern))
    throw new InvalidArgumentError('lora.rank_pattern must be an object of module paths to ranks');
  const known = new Set(adaptedModules(config, lora.target_modules).map((m) => m.path));
  for (const [path, rank] of Object.entries(pattern)) {
    if (!known.has(path))
      throw new InvalidArgumentError(
        `lora.rank_pattern has "${path}", which is not an adapted module of this ${config.num_hidden_layers}-layer model (target_modules: ${lora.target_modules.join(', ')}; paths as qwen3ModulePath writes them, model.layers.N.self_attn.q_proj)`,
      );
    if (typeof rank !== 'number' || !Number.isSafeInteger(rank) || rank < 1)
      throw new InvalidArgumentError(`lora.rank_pattern["${path}"] must be a positive safe integer, got ${String(rank)}`);
  }
}

/**
 * Fresh adapters as PEFT initialises them: lora_A Kaiming-uniform (torch's default for a Linear,
 * uniform on ±1/√in), lora_B zeros, so the adapted model starts as the base model and only lora_B
 * moves in the first step.
 */
export function initQwen3Adapters(config: Qwen3Config, lora: Qwen3LoraConfig, rng: Rng, options: AdapterInitOptions = {}): Qwen3Lora {
  checkLoraConfig(config, lora);
  const dtype = options.dtype ?? 'float64';
  const adapters: Record<string, LoraWeights> = {};
  for (const { path, out, in: inner } of adaptedModules(config, lora.target_modules)) {
    const bound = 1 / Math.sqrt(inner);
    const rank = moduleRank(lora, path);
    adapters[path] = { lora_A: randomUniform(rank, inner, rng, { dtype, low: -bound, high: bound }), lora_B: zeros(out, rank, { dtype }) };
  }
  const result: Qwen3Lora = { r: lora.r, lora_alpha: lora.lora_alpha, target_modules: [...lora.target_modules], adapters };
  if (lora.rank_pattern !== undefined) result.rank_pattern = { ...lora.rank_pattern };
  return result;
}

/** A checked adapter and the scaling its update runs with. */
export interface ScaledAdapter {
  /** lora_A (rank×in) and lora_B (out×rank). */
  weights: LoraWeights;
  /** lora_alpha / rank, the module's own rank (`rank_pattern` or r). */
  scaling: number;
}

/** The checked adapters, by module path, each with its scaling. */
export interface CheckedLora {
  /** Every adapter and its scaling lora_alpha / (its rank), by module path. */
  adapters: Map<string, ScaledAdapter>;
}

/**
 * Checks the adapters against the config: one adapter for each target module of each layer and
 * no other, lora_A rank×in and lora_B out×rank with the module's rank (`rank_pattern` or r), the
 * model's dtype, finite values.
 */
export function checkLora(config: Qwen3Config, lora: Qwen3Lora | undefined, dtype: DType): CheckedLora {
  if (lora === undefined) return { adapters: new Map() };
  checkLoraConfig(config, lora);
  if (typeof lora.adapters !== 'object' || lora.adapters === null) throw new InvalidArgumentError('lora.adapters must be an object of module paths');
  const expected = adaptedModules(config, lora.target_modules);
  const known = new Set(expected.map((m) => m.path));
  for (const path of Object.keys(lora.adapters)) {
    if (!known.has(path))
      throw new InvalidArgumentError(
        `lora.adapters has "${path}", which is not a target module of this ${config.num_hidden_layers}-layer model (target_modules: ${lora.target_modules.join(', ')})`,
      );
  }
  const adapters = new Map<string, ScaledAdapter>();
  for (const { path, out, in: inner } of expected) {
    const rank = moduleRank(lora, path);
    const adapter = lora.adapters[path];
    if (!adapter || !isMatrix(adapter.lora_A) || !isMatrix(adapter.lora_B))
      throw new InvalidArgumentError(`lora.adapters["${path}"] is missing or lacks lora_A and lora_B matrices`);
    const { lora_A: a, lora_B: b } = adapter;
    if (a.rows !== rank || a.cols !== inner) throw new ShapeError(`${path}.lora_A is ${a.rows}×${a.cols} but must be r×in = ${rank}×${inner}`);
    if (b.rows !== out || b.cols !== rank) throw new ShapeError(`${path}.lora_B is ${b.rows}×${b.cols} but must be out×r = ${out}×${rank}`);
    if (a.dtype !== dtype || b.dtype !== dtype) throw new DTypeError(`lora.adapters["${path}"] is ${a.dtype}/${b.dtype} but the weights are ${dtype}`);
    assertFinite(a, `${path}.lora_A`);
    assertFinite(b, `${path}.lora_B`);
    adapters.set(path, { weights: adapter, scaling: lora.lora_alpha / rank });
  }
  return { adapters };
}
