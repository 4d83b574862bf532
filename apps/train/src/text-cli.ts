import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { InvalidArgumentError, Rng } from '@almora/tensor';
import { generate, type Qwen3Config } from '@almora/model';
import { checkLanguageModelConfig, type LanguageModelConfig } from './language-model.js';
import { FINETUNE_DEFAULTS, finetune, SHIPPED_BASE_DIR } from './finetune.js';
import { loadPeftAdapters, loadQwen3, readQkNormCap } from './hf-files.js';
import { decodeBytes, encodeBytes } from './brown.js';
import { BROWN_BASE_SHAPE, PRETRAIN_DEFAULTS, pretrain } from './pretrain.js';
import { lockRunDir } from './run-dir.js';

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The numeric recipe keys a flag may set, with what each must be. */
const NUMERIC_KEYS = ['contextLength', 'batchSize', 'steps', 'learningRate', 'warmupSteps', 'clipNorm', 'seed', 'epsilon', 'qkNormCap', 'shiftedSparseGroup', 'evalEvery', 'evalWindows', 'checkpointEvery'] as const;

/** Flags of the text commands, parsed and checked; the recipe keys override `defaults`. */
export function parseTextFlags(argv: string[], defaults: Readonly<LanguageModelConfig>, command: string, extra: Record<string, { type: 'string' | 'boolean' }> = {}) {
  const options: Record<string, { type: 'string' | 'boolean' }> = { 'run-dir': { type: 'string' }, resume: { type: 'boolean' }, quiet: { type: 'boolean' }, help: { type: 'boolean' }, method: { type: 'string' }, decay: { type: 'string' }, ...extra };
  for (const key of NUMERIC_KEYS) options[kebab(key)] = { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new InvalidArgumentError(`${error instanceof Error ? error.message : String(error)} (almora ${command} --help lists the options)`);
  }
  const config: LanguageModelConfig = { ...defaults, lora: { ...defaults.lora, target_modules: [...defaults.lora.target_modules] } };
  for (const key of NUMERIC_KEYS) {
    const text = values[kebab(key)];
    if (typeof text !== 'string') continue;
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value)) throw new InvalidArgumentError(`--${kebab(key)} must be a number, got "${text}"`);
    config[key] = value;
  }
  if (typeof values.method === 'string') {
    if (!['exact', 'fast', 'auto'].includes(values.method)) throw new InvalidArgumentError(`--method must be exact, fast or auto, got "${values.method}"`);
    config.method = values.method as LanguageModelConfig['method'];
  }
  if (typeof values.decay === 'string') {
    if (!['cosine', 'linear', 'none'].includes(values.decay)) throw new InvalidArgumentError(`--decay must be cosine, linear or none, got "${values.decay}"`);
    config.decay = values.decay as LanguageModelConfig['decay'];
  }
  return { values, config };
}

/** Checks the recipe before any folder is made or file read, naming a bad key by its flag. */
function checkFlags(config: LanguageModelConfig, model?: Qwen3Config): void {
  try {
    checkLanguageModelConfig(config, model);
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    const names: [string, string][] = [...NUMERIC_KEYS.map((k): [string, string] => [k, kebab(k)]), ['lora r', 'rank'], ['lora_alpha', 'lora-alpha'], ['target_modules', 'target-modules']];
    const named = names.find(([key]) => error.message.startsWith(`${key} `));
    throw named ? new InvalidArgumentError(`--${named[1]}${error.message.slice(named[0].length)}`) : error;
  }
}

const pretrainUsage = `usage: almora pretrain [--run-dir dir] [--resume] [--quiet] [--<key> value …]
Trains the base model (QWEN3_TINY's shape, one token per byte) on the informative half of the Brown corpus and writes it in Hugging Face's layout to <run-dir>/model.
keys (defaults: the recipe of the shipped base): ${NUMERIC_KEYS.map((k) => `--${kebab(k)} ${String(PRETRAIN_DEFAULTS[k])}`).join(', ')}, --method ${PRETRAIN_DEFAULTS.method}, --decay ${PRETRAIN_DEFAULTS.decay}`;

/** `almora pretrain`. */
export async function pretrainCommand(argv: string[]): Promise<void> {
  const { values, config } = parseTextFlags(argv, PRETRAIN_DEFAULTS, 'pretrain');
  if (values.help) {
    console.log(pretrainUsage);
    return;
  }
  checkFlags(config, BROWN_BASE_SHAPE);
  const runDir = path.resolve(typeof values['run-dir'] === 'string' ? values['run-dir'] : 'runs/pretrain');
  await mkdir(runDir, { recursive: true });
  const lock = await lockRunDir(runDir);
  try {
    if (lock.note) console.log(lock.note);
    const run = await pretrain(config, path.join(runDir, 'run'), { resume: values.resume === true, quiet: values.quiet === true, command: ['almora pretrain', ...argv].join(' ') });
    if (run.resumedFrom !== undefined) console.log(`pretrain: resumed from step ${run.resumedFrom}`);
    for (const note of run.notes) console.log(`pretrain: ${note}`);
    console.log(`pretrain: held-out ${run.initialValidation.toFixed(3)} → ${run.finalValidation.toFixed(3)} bits/char in ${run.stepSeconds.toFixed(0)} s of steps; model in ${path.join(runDir, 'run', 'model')}`);
  } finally {
    await lock.release();
  }
}

const finetuneUsage = `usage: almora train [--task text|teacher] [--base dir] [--run-dir dir] [--resume] [--quiet] [--<key> value …]
The main job (--task text, the default): LoRA fine-tuning of the shipped Brown base model (or --base, a folder with Hugging Face's config.json and model.safetensors) on the imaginative half of the Brown corpus, with --method (default auto) and exact gradients side by side on the same seed (--compare-exact false: only --method); the report lands in <run-dir>/report.md, the PEFT adapters in <run-dir>/<method>/adapter.
keys: ${NUMERIC_KEYS.map((k) => `--${kebab(k)} ${String(FINETUNE_DEFAULTS[k])}`).join(', ')}, --method ${FINETUNE_DEFAULTS.method}, --decay ${FINETUNE_DEFAULTS.decay}, --rank ${FINETUNE_DEFAULTS.lora.r}, --lora-alpha ${FINETUNE_DEFAULTS.lora.lora_alpha}, --target-modules ${FINETUNE_DEFAULTS.lora.target_modules.join(',')}
--qk-norm-cap defaults to the cap the base's config.json records (almora_qk_norm_cap), else ${FINETUNE_DEFAULTS.qkNormCap}.
--task teacher runs the paper's synthetic teacher task instead (almora train --task teacher --help).`;

/** `almora train` on text, the main job. */
export async function finetuneCommand(argv: string[]): Promise<void> {
  const extra = { base: { type: 'string' }, 'compare-exact': { type: 'string' }, rank: { type: 'string' }, 'lora-alpha': { type: 'string' }, 'target-modules': { type: 'string' }, task: { type: 'string' } } as const;
  const { values, config } = parseTextFlags(argv, FINETUNE_DEFAULTS, 'train', extra);
  if (values.help) {
    console.log(finetuneUsage);
    return;
  }
  if (typeof values.rank === 'string') config.lora.r = Number(values.rank);
  if (typeof values['lora-alpha'] === 'string') config.lora.lora_alpha = Number(values['lora-alpha']);
  if (typeof values['target-modules'] === 'string') config.lora.target_modules = values['target-modules'].split(',').map((m) => m.trim()) as typeof config.lora.target_modules;
  const compare = values['compare-exact'];
  if (compare !== undefined && compare !== 'true' && compare !== 'false') throw new InvalidArgumentError(`--compare-exact must be true or false, got "${String(compare)}"`);
  // The context's fit in the base's positions is checked once the base is loaded.
  checkFlags(config);
  const baseDir = typeof values.base === 'string' ? path.resolve(values.base) : SHIPPED_BASE_DIR;
  if (baseDir === SHIPPED_BASE_DIR && !existsSync(path.join(baseDir, 'config.json'))) {
    throw new InvalidArgumentError(`the shipped base model is missing (${baseDir} has no config.json): pass --base <folder with config.json and model.safetensors>, or make one with almora pretrain`);
  }
  // Without --qk-norm-cap the base's own cap applies: fine-tuning under another one computes another model.
  if (values['qk-norm-cap'] === undefined) config.qkNormCap = (await readQkNormCap(baseDir)) ?? config.qkNormCap;
  const runDir = path.resolve(typeof values['run-dir'] === 'string' ? values['run-dir'] : 'runs/default');
  await mkdir(runDir, { recursive: true });
  const lock = await lockRunDir(runDir);
  try {
    if (lock.note) console.log(lock.note);
    await finetune(config, runDir, {
      baseDir,
      resume: values.resume === true,
      quiet: values.quiet === true,
      compareExact: compare !== 'false',
      command: ['almora train', ...argv].join(' '),
    });
  } finally {
    await lock.release();
  }
}

const generateUsage = `usage: almora generate --prompt text [--base dir] [--adapter dir] [--tokens 200] [--temperature 0.8] [--top-k 40] [--seed 1] [--qk-norm-cap G]
Continues the prompt with the base model (default: the shipped one) or with PEFT adapters applied (--adapter, a folder with adapter_config.json and adapter_model.safetensors, e.g. runs/default/auto/adapter). Temperature 0 is greedy. --qk-norm-cap defaults to the cap the base's config.json records.`;

function numberFlag(values: Record<string, string | boolean | undefined>, name: string, fallback: number, check: (v: number) => boolean, what: string): number {
  const text = values[name];
  if (text === undefined) return fallback;
  const value = Number(text);
  if (typeof text !== 'string' || text.trim() === '' || !check(value)) throw new InvalidArgumentError(`--${name} must be ${what}, got "${String(text)}"`);
  return value;
}

/** `almora generate`: text from a prompt, with the base or with adapters applied. */
export async function generateCommand(argv: string[]): Promise<void> {
  const options = { prompt: { type: 'string' }, base: { type: 'string' }, adapter: { type: 'string' }, tokens: { type: 'string' }, temperature: { type: 'string' }, 'top-k': { type: 'string' }, seed: { type: 'string' }, 'qk-norm-cap': { type: 'string' }, help: { type: 'boolean' } } as const;
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new InvalidArgumentError(`${error instanceof Error ? error.message : String(error)} (almora generate --help lists the options)`);
  }
  if (values.help) {
    console.log(generateUsage);
    return;
  }
  if (typeof values.prompt !== 'string' || values.prompt === '') throw new InvalidArgumentError('almora generate needs --prompt <text> (almora generate --help)');
  const tokens = numberFlag(values, 'tokens', 200, (v) => Number.isSafeInteger(v) && v >= 0, 'a non-negative integer');
  const temperature = numberFlag(values, 'temperature', 0.8, (v) => Number.isFinite(v) && v >= 0, 'a number ≥ 0');
  const topK = numberFlag(values, 'top-k', 40, (v) => Number.isSafeInteger(v) && v >= 1, 'a positive integer');
  const seed = numberFlag(values, 'seed', 1, (v) => Number.isSafeInteger(v) && v >= 0, 'a non-negative integer');
  const baseDir = typeof values.base === 'string' ? path.resolve(values.base) : SHIPPED_BASE_DIR;
  const base = await loadQwen3(baseDir);
  if (base.config.vocab_size !== 256) throw new InvalidArgumentError(`almora generate decodes one token per byte: ${baseDir} has vocab_size ${base.config.vocab_size}, not 256`);
  const cap = numberFlag(values, 'qk-norm-cap', base.qkNormCap ?? 0, (v) => Number.isFinite(v) && v > 0, 'a number > 0');
  const lora = typeof values.adapter === 'string' ? await loadPeftAdapters(path.resolve(values.adapter), base.config) : undefined;
  const prompt = Array.from(encodeBytes(values.prompt));
  const room = base.config.max_position_embeddings - prompt.length;
  if (tokens > room) throw new InvalidArgumentError(`--tokens ${tokens} and a prompt of ${prompt.length} bytes exceed the model's ${base.config.max_position_embeddings} positions: at most ${Math.max(0, room)} new tokens`);
  const { ids } = generate({ config: base.config, weights: base.weights, lora }, prompt, { maxNewTokens: tokens, temperature, topK, rng: new Rng(seed), ...(cap > 0 ? { qkNormCap: cap } : {}) });
  process.stdout.write(`${values.prompt}${decodeBytes(ids)}\n`);
}
