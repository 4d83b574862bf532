import type { LoraWeights } from '@almora/lora';
import type { DType } from '@almora/tensor';
import {
  adapterConfigJson,
  compileConfig,
  type CompiledConfig,
  isTargeted,
  MATCH_BUDGET_STEPS,
  moduleSettings,
  parseAdapterConfig,
  type PeftLoraConfig,
} from './config.js';
import { PeftError, PeftShapeError } from './errors.js';
import type { MatchBudget } from './pattern.js';
import { decodeSafetensors, encodeSafetensors, type SafetensorsDType, type SafetensorsTensor } from './safetensors.js';
import { matrixToTensor, tensorToMatrix } from './matrix.js';

/**
 * A PEFT LoRA adapter: its config and, for every adapted module by path
 * (`model.layers.0.self_attn.q_proj`), lora_A (r×in) and lora_B (out×r) in PEFT's names and
 * orientation. The module computes x·(W + scaling·lora_B·lora_A)ᵀ, W its out×in weight.
 */
export interface PeftAdapter {
  /** adapter_config.json's settings. */
  config: PeftLoraConfig;
  /** lora_A and lora_B of every adapted module, by module path (a null-prototype record when read). */
  modules: Record<string, LoraWeights>;
  /** The dtype the file stored every tensor in, when read from one that used a single dtype. */
  dtype?: SafetensorsDType;
}

/** The two files of an adapter folder, as text and bytes. */
export interface PeftFiles {
  /** adapter_config.json. */
  config: string;
  /** adapter_model.safetensors. */
  weights: Uint8Array;
}

/** File names of an adapter folder, as PEFT's `save_pretrained` writes them. */
export const ADAPTER_FILES = {
  /** The LoraConfig, as JSON. */
  config: 'adapter_config.json',
  /** lora_A and lora_B of every adapted module. */
  weights: 'adapter_model.safetensors',
} as const;

/** Options of {@link decodePeftAdapter} and `readPeftAdapter`. */
export interface ReadAdapterOptions {
  /** Element type of the returned matrices; default float64 (F64 files then load exactly). */
  dtype?: DType;
  /** Accept NaN and ±Infinity in the tensors; default false (a `NonFiniteError`). */
  allowNonFinite?: boolean;
}

/** Options of {@link encodePeftAdapter} and `writePeftAdapter`. */
export interface WriteAdapterOptions {
  /** The dtype written: F32 (default), F64, F16 or BF16 — `adapter.dtype` keeps a read file's. */
  dtype?: SafetensorsDType;
  /** Write NaN and ±Infinity (and F16/BF16 overflows) instead of refusing them. */
  allowNonFinite?: boolean;
}

const PREFIX = 'base_model.model.';
const SUFFIX = { lora_A: '.lora_A.weight', lora_B: '.lora_B.weight' } as const;

/** The state-dict key PEFT saves a module's lora_A or lora_B under: `base_model.model.<module>.lora_A.weight`. */
export function adapterKey(module: string, which: 'lora_A' | 'lora_B'): string {
  return `${PREFIX}${module}${SUFFIX[which]}`;
}

/** The module and matrix a key names, or undefined for a key that is not a LoRA weight. */
function parseKey(key: string): { module: string; which: 'lora_A' | 'lora_B' } | undefined {
  if (!key.startsWith(PREFIX)) return undefined;
  for (const which of ['lora_A', 'lora_B'] as const) {
    if (!key.endsWith(SUFFIX[which])) continue;
    const module = key.slice(PREFIX.length, key.length - SUFFIX[which].length);
    if (module.length > 0 && !module.split('.').includes('')) return { module, which };
  }
  return undefined;
}

/** A module's lora_A and lora_B shapes, [rows, cols] each. */
type ModuleShapes = [module: string, a: [number, number], b: [number, number]];

/**
 * Checks what {@link encodePeftAdapter} writes and {@link decodePeftAdapter} reads alike: at least
 * one module; every module targeted by the config; lora_A r×in and lora_B out×r with the module's
 * r (rank_pattern) and in, out ≥ 1.
 */
function checkModules(compiled: CompiledConfig, modules: ModuleShapes[], where: string): void {
  if (modules.length === 0) throw new PeftError(`${where}: no adapted module (an adapter of nothing)`);
  const budget: MatchBudget = { steps: MATCH_BUDGET_STEPS };
  const { target_modules, exclude_modules } = compiled.config;
  for (const [module, a, b] of modules) {
    if (!isTargeted(compiled, module, budget))
      throw new PeftError(
        `${where}: ${module} has adapter tensors, but target_modules ${describeSpec(target_modules)}${exclude_modules === null ? '' : ` less exclude_modules ${describeSpec(exclude_modules)}`} does not select it`,
      );
    const { r } = moduleSettings(compiled, module, budget);
    if (a[0] !== r || b[1] !== r || a[1] < 1 || b[0] < 1) {
      throw new PeftShapeError(
        `${where}: ${module} has lora_A [${a.join(', ')}] and lora_B [${b.join(', ')}]; with r = ${r} they must be [${r}, in] and [out, ${r}], in and out ≥ 1`,
      );
    }
  }
}

const shapesOf = (modules: Record<string, LoraWeights>): ModuleShapes[] =>
  Object.keys(modules).map((m) => [m, [modules[m].lora_A.rows, modules[m].lora_A.cols], [modules[m].lora_B.rows, modules[m].lora_B.cols]]);

function describeSpec(spec: string[] | string): string {
  return typeof spec === 'string'
    ? JSON.stringify(spec.slice(0, 80))
    : `[${spec
        .slice(0, 8)
        .map((s) => JSON.stringify(s.slice(0, 40)))
        .join(', ')}${spec.length > 8 ? ', …' : ''}]`;
}

/**
 * The two files PEFT's `save_pretrained` writes for `adapter`: adapter_config.json and
 * adapter_model.safetensors with keys `base_model.model.<module>.lora_A.weight` (r×in) and
 * `….lora_B.weight` (out×r) and `__metadata__` `{ format: 'pt' }`. What it writes,
 * {@link decodePeftAdapter} reads back: the same checks run first.
 */
export function encodePeftAdapter(adapter: PeftAdapter, options: WriteAdapterOptions = {}): PeftFiles {
  const compiled = compileConfig(adapter.config, (m) => new PeftError(`encodePeftAdapter: ${m}`));
  checkModules(compiled, shapesOf(adapter.modules), 'encodePeftAdapter');
  const dtype = options.dtype ?? 'F32';
  const tensors = Object.create(null) as Record<string, SafetensorsTensor>;
  for (const module of Object.keys(adapter.modules)) {
    tensors[adapterKey(module, 'lora_A')] = matrixToTensor(adapter.modules[module].lora_A, dtype);
    tensors[adapterKey(module, 'lora_B')] = matrixToTensor(adapter.modules[module].lora_B, dtype);
  }
  const metadata = { format: 'pt' };
  return { config: adapterConfigJson(adapter.config), weights: encodeSafetensors({ tensors, metadata }, { allowNonFinite: options.allowNonFinite }) };
}

/**
 * Reads an adapter from its two files. adapter_config.json is checked as `parseAdapterConfig`
 * says; adapter_model.safetensors as `decodeSafetensors` says; then every tensor must be a
 * `base_model.model.<module>.lora_A.weight` or `….lora_B.weight` of a module the config
 * targets, each lora_A with its lora_B, lora_A r×in and lora_B out×r (r per rank_pattern).
 * Anything else — an unknown key (`….lora_A.default.weight`, DoRA's magnitude, an embedding
 * adapter), a missing half, a shape that disagrees with r — is a typed error, never dropped.
 */
export function decodePeftAdapter(files: { config: string | Uint8Array; weights: Uint8Array }, options: ReadAdapterOptions = {}): PeftAdapter {
  const text = typeof files.config === 'string' ? files.config : decodeUtf8(files.config);
  const config = parseAdapterConfig(text);
  const compiled = compileConfig(config, (m) => new PeftError(`${ADAPTER_FILES.config}: ${m}`));
  const file = decodeSafetensors(files.weights, { allowNonFinite: options.allowNonFinite });
  const found = Object.create(null) as Record<string, Partial<Record<'lora_A' | 'lora_B', SafetensorsTensor>>>;
  const dtypes = new Set<SafetensorsDType>();
  for (const key of Object.keys(file.tensors)) {
    const parsed = parseKey(key);
    if (!parsed)
      throw new PeftError(
        `${ADAPTER_FILES.weights}: ${JSON.stringify(key.slice(0, 200))} is not a LoRA weight (base_model.model.<module>.lora_A.weight or .lora_B.weight)`,
      );
    (found[parsed.module] ??= {})[parsed.which] = file.tensors[key];
    dtypes.add(file.tensors[key].dtype);
  }
  const shapes: ModuleShapes[] = [];
  for (const module of Object.keys(found).sort()) {
    const { lora_A: a, lora_B: b } = found[module];
    if (!a || !b) throw new PeftError(`${ADAPTER_FILES.weights}: ${module} has ${a ? 'lora_A but no lora_B' : 'lora_B but no lora_A'}`);
    if (a.shape.length !== 2 || b.shape.length !== 2)
      throw new PeftShapeError(`${ADAPTER_FILES.weights}: ${module} has lora_A [${a.shape.join(', ')}] and lora_B [${b.shape.join(', ')}]; both must be 2-D`);
    shapes.push([module, [a.shape[0], a.shape[1]], [b.shape[0], b.shape[1]]]);
  }
  checkModules(compiled, shapes, ADAPTER_FILES.weights);
  const modules = Object.create(null) as Record<string, LoraWeights>;
  for (const [module] of shapes)
    modules[module] = { lora_A: tensorToMatrix(found[module].lora_A!, options), lora_B: tensorToMatrix(found[module].lora_B!, options) };
  return { config, modules, ...(dtypes.size === 1 ? { dtype: [...dtypes][0] } : {}) };
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new PeftError(`${ADAPTER_FILES.config} is not valid UTF-8`);
  }
}

/** Options of {@link checkAdapterForModel}. */
export interface ModelCheckOptions {
  /** The output layer `all-linear` leaves out; default `'lm_head'`. */
  outputLayer?: string;
}

/**
 * Checks an adapter against the model it is for, as `PeftModel.from_pretrained` would apply it:
 * `linearLayers` maps each linear layer's module path to its weight's torch shape ([out, in], or
 * [in, out] with fan_in_fan_out). The modules target_modules selects among them (all-linear
 * resolved against them) must be exactly the adapter's — a targeted layer without tensors would
 * keep PEFT's fresh initialisation, an adapter of a layer the model lacks would be ignored — and
 * each lora_A must be r×in, each lora_B out×r. Throws a {@link PeftError} or {@link PeftShapeError}.
 */
export function checkAdapterForModel(adapter: PeftAdapter, linearLayers: Readonly<Record<string, readonly number[]>>, options: ModelCheckOptions = {}): void {
  const compiled = compileConfig(adapter.config, (m) => new PeftError(m));
  const budget = { steps: MATCH_BUDGET_STEPS };
  const layers = Object.keys(linearLayers);
  const excluded = (m: string) => compiled.exclude?.matches(m, budget, options.outputLayer) ?? false;
  const expected = new Set(compiled.target.select(layers, budget, options.outputLayer).filter((m) => !excluded(m)));
  for (const module of expected)
    if (!Object.hasOwn(adapter.modules, module))
      throw new PeftError(`the config targets ${module}, but the adapter has no lora_A/lora_B for it (PEFT would keep that layer's fresh initialisation)`);
  for (const module of Object.keys(adapter.modules)) {
    if (!expected.has(module))
      throw new PeftError(
        Object.hasOwn(linearLayers, module)
          ? `the adapter adapts ${module}, which the config's target_modules does not select in this model`
          : `the adapter adapts ${module}, which is not a linear layer of the model`,
      );
    const shape = linearLayers[module];
    if (shape.length !== 2) throw new PeftShapeError(`${module}: the model's weight has shape [${shape.join(', ')}], not [out, in]`);
    const [out, inner] = adapter.config.fan_in_fan_out ? [shape[1], shape[0]] : [shape[0], shape[1]];
    const { lora_A: a, lora_B: b } = adapter.modules[module];
    const { r } = moduleSettings(compiled, module, budget);
    if (a.rows !== r || a.cols !== inner || b.rows !== out || b.cols !== r) {
      throw new PeftShapeError(
        `${module}: lora_A is ${a.rows}×${a.cols} and lora_B ${b.rows}×${b.cols}; the model's ${out}×${inner} layer with r = ${r} needs ${r}×${inner} and ${out}×${r}`,
      );
    }
  }
}
