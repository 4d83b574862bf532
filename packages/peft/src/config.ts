import type { AlmoraError } from '@almora/tensor';
import { PeftError } from './errors.js';
import { isJsonObject, jsonKind, parseJson, type JsonObject, type JsonValue } from './json.js';
import type { MatchBudget } from './pattern.js';
import { ModuleSelector, PatternTable } from './targets.js';

/**
 * PEFT's `LoraConfig` as `adapter_config.json` holds it, with PEFT's field names. Each module's
 * update is scaling·lora_B·lora_A with scaling = lora_alpha / r (lora_alpha / √r with
 * `use_rslora`), r and lora_alpha taken from `rank_pattern` and `alpha_pattern` where a key
 * matches the module's path.
 */
export interface PeftLoraConfig {
  /** Always `'LORA'`. */
  peft_type: 'LORA';
  /** PEFT's task, e.g. `'CAUSAL_LM'`; null for a bare model. */
  task_type: string | null;
  /** The base model's Hub id or folder, which `PeftModel.from_pretrained` does not load by itself. */
  base_model_name_or_path: string | null;
  /** The rank r (rows of lora_A, columns of lora_B) of every module `rank_pattern` does not name. */
  r: number;
  /** lora_alpha of every module `alpha_pattern` does not name. */
  lora_alpha: number;
  /** Dropout on the adapter's input during training; no effect on loading or merging. */
  lora_dropout: number;
  /** Only `'none'` (no trained biases) is read and written. */
  bias: 'none';
  /** True for layers that store their weight in×out (GPT-2's Conv1D); lora_A and lora_B keep PEFT's orientation either way. */
  fan_in_fan_out: boolean;
  /** Scale by lora_alpha / √r instead of lora_alpha / r. */
  use_rslora: boolean;
  /** The adapted modules: a list of names (a path or its last components), a regex the whole path matches, or `'all-linear'`. */
  target_modules: string[] | string;
  /** Modules left out even when `target_modules` selects them, with the same rules; null for none. */
  exclude_modules: string[] | string | null;
  /** Per-module r: the first key whose regex matches the end of a module's path (after a dot) wins. */
  rank_pattern: Record<string, number>;
  /** Per-module lora_alpha, matched like `rank_pattern`. */
  alpha_pattern: Record<string, number>;
  /** Whether the adapter is saved for inference (PEFT writes true when saving). */
  inference_mode: boolean;
}

/** What {@link loraConfig} needs; every other field has PEFT's default. */
export type LoraConfigInput = Pick<PeftLoraConfig, 'r' | 'lora_alpha' | 'target_modules'> & Partial<PeftLoraConfig>;

/** A config with its patterns compiled, made once per load, encode or merge. */
export interface CompiledConfig {
  config: PeftLoraConfig;
  target: ModuleSelector;
  exclude: ModuleSelector | undefined;
  ranks: PatternTable;
  alphas: PatternTable;
  fail: (message: string) => AlmoraError;
}

/** Steps one load, encode or merge may spend matching module names (ample for any real model). */
export const MATCH_BUDGET_STEPS = 50_000_000;

/**
 * Fields PEFT may write whose non-default values change what the adapter computes and which this
 * reader does not implement: refused, never silently dropped. [field, is it at its default?].
 */
const UNSUPPORTED: [string, (v: JsonValue | undefined) => boolean][] = [
  ['use_dora', (v) => v === undefined || v === false],
  ['modules_to_save', (v) => v === undefined || v === null || (Array.isArray(v) && v.length === 0)],
  ['layers_to_transform', (v) => v === undefined || v === null],
  ['layer_replication', (v) => v === undefined || v === null],
  ['lora_bias', (v) => v === undefined || v === false],
  ['target_parameters', (v) => v === undefined || v === null || (Array.isArray(v) && v.length === 0)],
  ['trainable_token_indices', (v) => v === undefined || v === null],
  ['use_qalora', (v) => v === undefined || v === false],
];

function moduleSpec(value: JsonValue | undefined, field: string, fail: (message: string) => AlmoraError, nullable: boolean): string[] | string | null {
  if (nullable && (value === undefined || value === null)) return null;
  if (typeof value === 'string' && value.length > 0) return value;
  if (Array.isArray(value) && value.length > 0 && value.every((v): v is string => typeof v === 'string' && v.length > 0)) return value;
  const hint = value === null || value === undefined ? ' (PEFT would pick modules by architecture; name them)' : '';
  throw fail(`${field} must be ${nullable ? 'null, ' : ''}a non-empty list of module names or a regex string, got ${jsonKind(value)}${hint}`);
}

function numberTable(value: JsonValue | undefined, field: string, integer: boolean, fail: (message: string) => AlmoraError): Record<string, number> {
  const table = Object.create(null) as Record<string, number>;
  if (value === undefined || value === null) return table;
  if (!isJsonObject(value)) throw fail(`${field} must be an object, got ${jsonKind(value)}`);
  for (const key of Object.keys(value)) {
    const v = value[key];
    if (typeof v !== 'number' || !(integer ? Number.isSafeInteger(v) && v >= 1 : Number.isFinite(v) && v > 0)) {
      throw fail(`${field}[${JSON.stringify(key.slice(0, 80))}] must be ${integer ? 'an integer ≥ 1' : 'a finite number > 0'}, got ${jsonKind(v)}`);
    }
    table[key] = v;
  }
  return table;
}

/** Every field checked and defaulted; `fields` is a parsed adapter_config.json or a {@link LoraConfigInput}. */
function checkedConfig(fields: JsonObject, fail: (message: string) => AlmoraError): PeftLoraConfig {
  const { peft_type, task_type, base_model_name_or_path, r, lora_alpha, lora_dropout, bias, fan_in_fan_out, use_rslora, inference_mode } = fields;
  if (peft_type !== 'LORA') throw fail(`peft_type is ${jsonKind(peft_type)}; only "LORA" is read`);
  for (const [field, isDefault] of UNSUPPORTED)
    if (!isDefault(fields[field])) throw fail(`${field} is ${jsonKind(fields[field])}; this reader implements plain LoRA without it`);
  if (bias !== undefined && bias !== 'none') throw fail(`bias is ${jsonKind(bias)}; only "none" is read (trained biases are not)`);
  if (typeof r !== 'number' || !Number.isSafeInteger(r) || r < 1) throw fail(`r must be an integer ≥ 1, got ${jsonKind(r)}`);
  // JSON reads 1e999 as Infinity: a finite check, not only a sign check.
  if (typeof lora_alpha !== 'number' || !Number.isFinite(lora_alpha) || !(lora_alpha > 0))
    throw fail(`lora_alpha must be a finite number > 0, got ${jsonKind(lora_alpha)}`);
  if (lora_dropout !== undefined && (typeof lora_dropout !== 'number' || !(lora_dropout >= 0 && lora_dropout <= 1)))
    throw fail(`lora_dropout must be a number in [0, 1], got ${jsonKind(lora_dropout)}`);
  for (const [field, value] of [
    ['fan_in_fan_out', fan_in_fan_out],
    ['use_rslora', use_rslora],
    ['inference_mode', inference_mode],
  ] as const) {
    if (value !== undefined && typeof value !== 'boolean') throw fail(`${field} must be true or false, got ${jsonKind(value)}`);
  }
  for (const [field, value] of [
    ['task_type', task_type],
    ['base_model_name_or_path', base_model_name_or_path],
  ] as const) {
    if (value !== undefined && value !== null && typeof value !== 'string') throw fail(`${field} must be a string or null, got ${jsonKind(value)}`);
  }
  return {
    peft_type: 'LORA',
    task_type: (task_type as string | null | undefined) ?? null,
    base_model_name_or_path: (base_model_name_or_path as string | null | undefined) ?? null,
    r,
    lora_alpha,
    lora_dropout: (lora_dropout as number | undefined) ?? 0,
    bias: 'none',
    fan_in_fan_out: fan_in_fan_out === true,
    use_rslora: use_rslora === true,
    target_modules: moduleSpec(fields.target_modules, 'target_modules', fail, false)!,
    exclude_modules: moduleSpec(fields.exclude_modules, 'exclude_modules', fail, true),
    rank_pattern: numberTable(fields.rank_pattern, 'rank_pattern', true, fail),
    alpha_pattern: numberTable(fields.alpha_pattern, 'alpha_pattern', false, fail),
    inference_mode: inference_mode !== false,
  };
}

/**
 * A checked {@link PeftLoraConfig} from `r`, `lora_alpha`, `target_modules` and any other field,
 * the rest at PEFT's defaults (no dropout, bias 'none', scaling lora_alpha / r). A bad field, or a
 * module pattern this package cannot match, is a {@link PeftError}.
 */
export function loraConfig(input: LoraConfigInput): PeftLoraConfig {
  const fail = (message: string) => new PeftError(`loraConfig: ${message}`);
  const fields = Object.assign(Object.create(null) as JsonObject, { peft_type: 'LORA' }, input as unknown as JsonObject);
  const config = checkedConfig(fields, fail);
  compileConfig(config, fail);
  return config;
}

/**
 * Reads `adapter_config.json`: JSON parsed into null-prototype objects (a `__proto__` key is a
 * key), every field checked, PEFT's defaults for missing ones, patterns compiled. Unknown fields
 * that do not change the computation (revision, init_lora_weights, …) are ignored; those that do
 * and are not implemented (use_dora, modules_to_save, layers_to_transform, …) are refused.
 */
export function parseAdapterConfig(text: string, source = 'adapter_config.json'): PeftLoraConfig {
  const fail = (message: string) => new PeftError(`${source}: ${message}`);
  const json = parseJson(text, (message) => fail(`not valid JSON: ${message}`));
  if (!isJsonObject(json)) throw fail(`must hold a JSON object, got ${jsonKind(json)}`);
  const config = checkedConfig(json, fail);
  compileConfig(config, fail);
  return config;
}

/** The fields of {@link PeftLoraConfig} in the order PEFT writes them. */
const FIELD_ORDER = [
  'peft_type',
  'task_type',
  'base_model_name_or_path',
  'r',
  'lora_alpha',
  'lora_dropout',
  'bias',
  'fan_in_fan_out',
  'use_rslora',
  'target_modules',
  'exclude_modules',
  'rank_pattern',
  'alpha_pattern',
  'inference_mode',
] as const satisfies readonly (keyof PeftLoraConfig)[];

/** `adapter_config.json`'s text for `config`, fields in PEFT's order, two-space indented. */
export function adapterConfigJson(config: PeftLoraConfig): string {
  const ordered = {
    ...Object.fromEntries(FIELD_ORDER.map((field) => [field, config[field]])),
    use_dora: false,
    modules_to_save: null,
    layers_to_transform: null,
  };
  return `${JSON.stringify(ordered, null, 2)}\n`;
}

/** The config's patterns compiled; a pattern this package cannot match is `fail(message)`. */
export function compileConfig(config: PeftLoraConfig, fail: (message: string) => AlmoraError): CompiledConfig {
  return {
    config,
    target: new ModuleSelector(config.target_modules, (m) => fail(`target_modules: ${m}`)),
    exclude: config.exclude_modules === null ? undefined : new ModuleSelector(config.exclude_modules, (m) => fail(`exclude_modules: ${m}`)),
    ranks: new PatternTable(config.rank_pattern, (m) => fail(`rank_pattern: ${m}`)),
    alphas: new PatternTable(config.alpha_pattern, (m) => fail(`alpha_pattern: ${m}`)),
    fail,
  };
}

/** Whether PEFT puts a LoRA layer on `module`: selected by target_modules and not by exclude_modules. */
export function isTargeted(compiled: CompiledConfig, module: string, budget: MatchBudget, outputLayer?: string): boolean {
  return compiled.target.matches(module, budget, outputLayer) && !(compiled.exclude?.matches(module, budget, outputLayer) ?? false);
}

/** r and scaling of `module`: rank_pattern and alpha_pattern where a key matches, else r and lora_alpha. */
export function moduleSettings(compiled: CompiledConfig, module: string, budget: MatchBudget): { r: number; scaling: number } {
  const { config, fail } = compiled;
  const r = compiled.ranks.lookup(module, budget, fail) ?? config.r;
  const alpha = compiled.alphas.lookup(module, budget, fail) ?? config.lora_alpha;
  return { r, scaling: config.use_rslora ? alpha / Math.sqrt(r) : alpha / r };
}

/**
 * The scaling PEFT applies to `module`'s update: lora_alpha / r (or lora_alpha / √r with
 * use_rslora), each taken from alpha_pattern and rank_pattern where a key matches the module.
 */
export function loraScaling(config: PeftLoraConfig, module: string): number {
  return moduleSettings(
    compileConfig(config, (m) => new PeftError(m)),
    module,
    { steps: MATCH_BUDGET_STEPS },
  ).scaling;
}
