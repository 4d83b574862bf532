import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { LORA_METHODS } from '@almora/lora-methods';
import { InvalidArgumentError, Rng } from '@almora/tensor';
import { generate, type Qwen3Config } from '@almora/model';
import {
  BROWN_BASE_SHAPE,
  checkLanguageModelConfig,
  decodeBytes,
  encodeBytes,
  FINETUNE_DEFAULTS,
  type LanguageModelConfig,
  loadPeftAdapters,
  loadQwen3,
  lockRunDir,
  PRETRAIN_DEFAULTS,
  RANK_ALLOCATIONS,
  readQkNormCap,
  refuseExistingRun,
  SHIPPED_BASE_DIR,
} from '@almora/training';
import { finetune } from './finetune.js';
import { pretrain } from './pretrain.js';
import { type CommandSpec, helpText, numberOption, parseOptions } from './cli-options.js';
import { FINETUNE_COMMAND, GENERATE_COMMAND, kebab, PRETRAIN_COMMAND, RECIPE_KEYS } from './commands.js';

const NUMERIC_KEYS = Object.keys(RECIPE_KEYS) as (keyof typeof RECIPE_KEYS)[];

/** A text command's options, parsed and checked; the recipe keys override `defaults`. */
export function parseTextFlags(argv: string[], defaults: Readonly<LanguageModelConfig>, spec: CommandSpec) {
  const values = parseOptions(spec, argv);
  const config: LanguageModelConfig = { ...defaults, lora: { ...defaults.lora, target_modules: [...defaults.lora.target_modules] } };
  for (const key of NUMERIC_KEYS) config[key] = numberOption(values, kebab(key), config[key], Number.isFinite, 'a number');
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
    const names: [string, string][] = [
      ...NUMERIC_KEYS.map((k): [string, string] => [k, kebab(k)]),
      ['lora r', 'rank'],
      ['lora_alpha', 'lora-alpha'],
      ['target_modules', 'target-modules'],
      ['stageSteps', 'stage-steps'],
      ['rankAllocation', 'rank-allocation'],
    ];
    const named = names.find(([key]) => error.message.startsWith(`${key} `));
    throw named ? new InvalidArgumentError(`--${named[1]}${error.message.slice(named[0].length)}`) : error;
  }
}

/** `almora pretrain`. */
export async function pretrainCommand(argv: string[]): Promise<void> {
  const { values, config } = parseTextFlags(argv, PRETRAIN_DEFAULTS, PRETRAIN_COMMAND);
  if (values.help) {
    console.log(helpText(PRETRAIN_COMMAND));
    return;
  }
  checkFlags(config, BROWN_BASE_SHAPE);
  const runDir = path.resolve(typeof values['run-dir'] === 'string' ? values['run-dir'] : 'runs/pretrain');
  await mkdir(runDir, { recursive: true });
  const lock = await lockRunDir(runDir);
  try {
    await refuseExistingRun(runDir, values.resume === true, values.force === true);
    if (lock.note) console.log(lock.note);
    const run = await pretrain(config, path.join(runDir, 'run'), {
      resume: values.resume === true,
      quiet: values.quiet === true,
      command: ['almora pretrain', ...argv].join(' '),
    });
    if (run.resumedFrom !== undefined) console.log(`pretrain: resumed from step ${run.resumedFrom}`);
    for (const note of run.notes) console.log(`pretrain: ${note}`);
    console.log(
      `pretrain: held-out ${run.initialValidation.toFixed(3)} → ${run.finalValidation.toFixed(3)} bits/char in ${run.stepSeconds.toFixed(0)} s of steps; model in ${path.join(runDir, 'run', 'model')}`,
    );
  } finally {
    await lock.release();
  }
}

/** `almora train` on text, the main job. */
export async function finetuneCommand(argv: string[]): Promise<void> {
  const { values, config } = parseTextFlags(argv, FINETUNE_DEFAULTS, FINETUNE_COMMAND);
  if (values.help) {
    console.log(helpText(FINETUNE_COMMAND));
    return;
  }
  config.lora.r = numberOption(values, 'rank', config.lora.r, Number.isFinite, 'a number');
  config.lora.lora_alpha = numberOption(values, 'lora-alpha', config.lora.lora_alpha, Number.isFinite, 'a number');
  if (typeof values['target-modules'] === 'string')
    config.lora.target_modules = values['target-modules'].split(',').map((m) => m.trim()) as typeof config.lora.target_modules;
  if (typeof values['lora-method'] === 'string') {
    if (!Object.keys(LORA_METHODS).includes(values['lora-method']))
      throw new InvalidArgumentError(`--lora-method must be one of ${Object.keys(LORA_METHODS).join(', ')}, got "${values['lora-method']}"`);
    config.loraMethod = values['lora-method'] as LanguageModelConfig['loraMethod'];
  }
  config.stageSteps = numberOption(values, 'stage-steps', config.stageSteps, Number.isFinite, 'a number');
  if (typeof values['rank-allocation'] === 'string') {
    if (!(RANK_ALLOCATIONS as readonly string[]).includes(values['rank-allocation']))
      throw new InvalidArgumentError(`--rank-allocation must be one of ${RANK_ALLOCATIONS.join(', ')}, got "${values['rank-allocation']}"`);
    config.rankAllocation = values['rank-allocation'] as LanguageModelConfig['rankAllocation'];
  }
  const compare = values['compare-exact'];
  if (compare !== undefined && compare !== 'true' && compare !== 'false')
    throw new InvalidArgumentError(`--compare-exact must be true or false, got "${String(compare)}"`);
  // The context's fit in the base's positions is checked once the base is loaded.
  checkFlags(config);
  const baseDir = typeof values.base === 'string' ? path.resolve(values.base) : SHIPPED_BASE_DIR;
  if (baseDir === SHIPPED_BASE_DIR && !existsSync(path.join(baseDir, 'config.json'))) {
    throw new InvalidArgumentError(
      `the shipped base model is missing (${baseDir} has no config.json): pass --base <folder with config.json and model.safetensors>, or make one with almora pretrain`,
    );
  }
  // Without --qk-norm-cap the base's own cap applies: fine-tuning under another one computes another model.
  if (values['qk-norm-cap'] === undefined) config.qkNormCap = (await readQkNormCap(baseDir)) ?? config.qkNormCap;
  const runDir = path.resolve(typeof values['run-dir'] === 'string' ? values['run-dir'] : 'runs/default');
  await mkdir(runDir, { recursive: true });
  const lock = await lockRunDir(runDir);
  try {
    await refuseExistingRun(runDir, values.resume === true, values.force === true);
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

/** `almora generate`: text from a prompt, with the base or with adapters applied. */
export async function generateCommand(argv: string[]): Promise<void> {
  const values = parseOptions(GENERATE_COMMAND, argv);
  if (values.help) {
    console.log(helpText(GENERATE_COMMAND));
    return;
  }
  if (typeof values.prompt !== 'string' || values.prompt === '') throw new InvalidArgumentError('generate needs --prompt <text> (almora generate --help)');
  const tokens = numberOption(values, 'tokens', 200, (v) => Number.isSafeInteger(v) && v >= 0, 'a non-negative integer');
  const temperature = numberOption(values, 'temperature', 0.8, (v) => Number.isFinite(v) && v >= 0, 'a number ≥ 0');
  const topK = numberOption(values, 'top-k', 40, (v) => Number.isSafeInteger(v) && v >= 1, 'a positive integer');
  const seed = numberOption(values, 'seed', 1, (v) => Number.isSafeInteger(v) && v >= 0, 'a non-negative integer');
  const baseDir = typeof values.base === 'string' ? path.resolve(values.base) : SHIPPED_BASE_DIR;
  const base = await loadQwen3(baseDir);
  if (base.config.vocab_size !== 256)
    throw new InvalidArgumentError(`almora generate decodes one token per byte: ${baseDir} has vocab_size ${base.config.vocab_size}, not 256`);
  const cap = numberOption(values, 'qk-norm-cap', base.qkNormCap ?? 0, (v) => Number.isFinite(v) && v > 0, 'a number > 0');
  const lora = typeof values.adapter === 'string' ? await loadPeftAdapters(path.resolve(values.adapter), base.config) : undefined;
  const prompt = Array.from(encodeBytes(values.prompt));
  const room = base.config.max_position_embeddings - prompt.length;
  if (tokens > room)
    throw new InvalidArgumentError(
      `--tokens ${tokens} and a prompt of ${prompt.length} bytes exceed the model's ${base.config.max_position_embeddings} positions: at most ${Math.max(0, room)} new tokens`,
    );
  const { ids } = generate({ config: base.config, weights: base.weights, lora }, prompt, {
    maxNewTokens: tokens,
    temperature,
    topK,
    rng: new Rng(seed),
    ...(cap > 0 ? { qkNormCap: cap } : {}),
  });
  process.stdout.write(`${values.prompt}${decodeBytes(ids)}\n`);
}
