import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { GradientMethod } from '@almora/lora';
import type { LoraMethodName } from '@almora/lora-methods';
import {
  initQwen3Weights,
  QWEN3_MODULES,
  qwen3ModulePath,
  qwen3StateDictShapes,
  type Qwen3Config,
  type Qwen3Lora,
  type Qwen3LayerReport,
  type Qwen3LoraConfig,
  qwen3ForCausalLM,
  type Qwen3Model,
  type Qwen3Options,
  type Qwen3Weights,
} from '@almora/model';
import { fromFlat, InvalidArgumentError, type Matrix, NonFiniteError, Rng } from '@almora/tensor';
import { CheckpointError, latestCheckpoint, saveCheckpoint, writeFileAtomic, type CheckpointState } from './checkpoint.js';
import { applyUpdate, createOptimizer, globalNorm, learningRate, type OptimizerState } from './optim.js';
import { lockRunDir, openAppend, runSubfolder } from './run-dir.js';
import { checkResumeSteps, divergence, readMetricsRecords, resumableHash, TrainingDivergedError } from './run-guard.js';
import { MethodAdapters, methodFor } from './method-adapters.js';
import { allocateRanks, allocationNeeds, RANK_ALLOCATIONS, type RankAllocation } from './rank-allocation.js';

/** A byte stream for training and one for held-out evaluation (the tokenizer is UTF-8 bytes, vocab 256). */
export interface TextSplit {
  train: Uint8Array;
  validation: Uint8Array;
}

/**
 * One run of language-model training: 'pretrain' trains every parameter from a fresh
 * initialisation (or the given weights); 'finetune' trains only LoRA adapters on a frozen base.
 */
export interface LanguageModelConfig {
  mode: 'pretrain' | 'finetune';
  /** Tokens per training sequence L (the loss covers L − 1 next-token predictions). */
  contextLength: number;
  /** Sequences per step. */
  batchSize: number;
  steps: number;
  learningRate: number;
  warmupSteps: number;
  decay: 'cosine' | 'linear' | 'none';
  /** Clip the global gradient norm to this (0: off). */
  clipNorm: number;
  /** Seeds the initialisation and the data order. */
  seed: number;
  /** Gradient path of every attention head. */
  method: GradientMethod;
  /** ε of the attention core's certificate. */
  epsilon: number;
  /** The norm control: every q_norm/k_norm gain clamped to [−G, G] (0: none). */
  qkNormCap: number;
  /** LongLoRA's shifted sparse attention during training, with groups of this many tokens (0: full attention). Evaluation always uses full attention. */
  shiftedSparseGroup: number;
  /** The adapters of a fine-tune (ignored when pretraining). */
  lora: Qwen3LoraConfig;
  /**
   * How a fine-tune trains its adapters (@almora/lora-methods): 'lora' (plain LoRA), 'lora-one',
   * 'lora-sb', 'sbora', 'cora', 'lora-pro', or the chains 'rac-lora' and 'xgblora'.
   */
  loraMethod: LoraMethodName;
  /** Steps per stage of a chain method (0: the method's own default); a chain merges its adapter into the weights after each stage. */
  stageSteps: number;
  /**
   * How a fine-tune spreads its ranks over the adapted modules: 'none' (r everywhere), or what r
   * everywhere would train, spread as ranks by 'sr-lora', 'gelora' or 'sublora' (PEFT's rank_pattern).
   */
  rankAllocation: RankAllocation;
  /** Evaluate held-out bits per character every this many steps (0: only before and after). */
  evalEvery: number;
  /** Held-out windows of contextLength tokens per evaluation, spread evenly over the validation text. */
  evalWindows: number;
  /** Checkpoint every this many steps (0: only at the end). */
  checkpointEvery: number;
  /** Stop with `TrainingDivergedError` once the loss exceeds this many times its first value (0: only non-finite values stop a run). */
  divergenceFactor: number;
}

/** One attention layer's state at a step: its largest Γ, the paths its heads took, and the core's reason. */
export interface LayerStep {
  layer: number;
  /** Γ, the largest over heads and sequences of the batch. */
  gamma: number;
  /** Γ's bound by construction from the q_norm/k_norm gains (after the cap). */
  gammaBound: number;
  /** √log L. */
  threshold: number;
  /** Heads (of every sequence) that ran each path. */
  exactHeads: number;
  fastHeads: number;
  /** The core's one-sentence reason. */
  reason: string;
  /** Every head of every sequence (with shifted sparse attention: of every group), as the core decided it. */
  heads: HeadStep[];
}

/** One head's decision at a step: the attention core's numbers behind it. */
export interface HeadStep {
  /** The core's sequence (the batch's sequence, or a group of it with shifted sparse attention). */
  sequence: number;
  head: number;
  chosen: 'exact' | 'fast';
  /** Γ of the queries and keys entering this head's softmax. */
  gamma: number;
  /** Certified range R of β·q·k. */
  range: number;
  /** Polynomial degree and feature rank planned ('auto' or 'fast'); null when none was. */
  degree: number | null;
  rank: number | null;
  reason: string;
}

/** What one step did. */
export interface LanguageModelStep {
  step: number;
  /** Mean next-token cross-entropy of the batch, in bits per character (byte). */
  bitsPerChar: number;
  learningRate: number;
  /** Global norm of the gradient before clipping. */
  gradNorm: number;
  layers: LayerStep[];
  /** Held-out bits per character after this step, when evaluated. */
  validationBitsPerChar: number | undefined;
  seconds: number;
}

/** The outcome of {@link trainLanguageModel}. */
export interface LanguageModelRun {
  runDir: string;
  configHash: string;
  /** Held-out bits per character before the first step (of the base, for a fine-tune). */
  initialValidation: number;
  /** Held-out bits per character after the last step. */
  finalValidation: number;
  records: LanguageModelStep[];
  /** Wall time of the steps run in this process (evaluations excluded). */
  stepSeconds: number;
  resumedFrom: number | undefined;
  notes: string[];
  /** The trained model: the base weights (trained, when pretraining) and the adapters of a fine-tune. */
  model: Qwen3Model;
  /** Numbers the run trained: every weight when pretraining, the method's trainable tensors of a fine-tune (one stage's, for a chain). */
  trainableParameters: number;
}

/** Options of one run. */
export interface LanguageModelRunOptions {
  /** Continue from the newest checkpoint of this config in the run folder. */
  resume?: boolean;
  /** Called after every step. */
  onStep?: (record: LanguageModelStep) => void;
}

const LN2 = Math.LN2;

/**
 * Checks a config for what the trainer needs; a bad value is an `InvalidArgumentError` naming it.
 * Without `model` everything but the context's fit in its positions is checked (what a command
 * line can check before it loads the base).
 */
export function checkLanguageModelConfig(config: LanguageModelConfig, model?: Qwen3Config): void {
  if (!['pretrain', 'finetune'].includes(config.mode)) throw new InvalidArgumentError(`mode must be 'pretrain' or 'finetune', got ${String(config.mode)}`);
  const integer = (name: keyof LanguageModelConfig, min: number) => {
    const value = config[name];
    // Safe integers only: past 2^53 a count no longer counts (seed + 1 === seed).
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min} (and ≤ 2^53 − 1), got ${String(value)}`);
  };
  const finite = (name: keyof LanguageModelConfig, min: number) => {
    const value = config[name];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min)
      throw new InvalidArgumentError(`${name} must be a finite number ≥ ${min}, got ${String(value)}`);
  };
  integer('contextLength', 2);
  integer('batchSize', 1);
  integer('steps', 1);
  integer('warmupSteps', 0);
  integer('seed', 0);
  integer('evalEvery', 0);
  integer('evalWindows', 1);
  integer('checkpointEvery', 0);
  integer('shiftedSparseGroup', 0);
  integer('stageSteps', 0);
  // A step's batch is held as arrays of token ids, and no JavaScript array is longer than 2^32 − 1.
  if (typeof config.batchSize === 'number' && config.batchSize * config.contextLength >= 2 ** 32) {
    throw new InvalidArgumentError(
      `batchSize × contextLength = ${config.batchSize * config.contextLength} tokens a step is more than one process can hold (under 2^32)`,
    );
  }
  finite('learningRate', 0);
  finite('clipNorm', 0);
  finite('qkNormCap', 0);
  finite('epsilon', 0);
  finite('divergenceFactor', 0);
  if (config.divergenceFactor > 0 && config.divergenceFactor <= 1)
    throw new InvalidArgumentError(
      `divergenceFactor must be 0 (off) or > 1 (the loss may not rise past that many times its first value), got ${config.divergenceFactor}`,
    );
  if (config.epsilon === 0) throw new InvalidArgumentError('epsilon must be a finite number > 0, got 0 (the certificate needs a tolerance)');
  if (config.shiftedSparseGroup % 2 !== 0)
    throw new InvalidArgumentError(
      `shiftedSparseGroup must be 0 (full attention) or an even integer ≥ 2 (half of the heads shift by G/2), got ${config.shiftedSparseGroup}`,
    );
  if (!['exact', 'fast', 'auto'].includes(config.method))
    throw new InvalidArgumentError(`method must be 'exact', 'fast' or 'auto', got ${String(config.method)}`);
  if (!['cosine', 'linear', 'none'].includes(config.decay))
    throw new InvalidArgumentError(`decay must be 'cosine', 'linear' or 'none', got ${String(config.decay)}`);
  if (config.mode === 'finetune') {
    checkLora(config.lora);
    const method = methodFor(config.loraMethod, config.stageSteps, config.learningRate, config.lora);
    if (config.stageSteps > 0 && !method.chain)
      throw new InvalidArgumentError(`stageSteps applies to the chain methods (rac-lora, xgblora), not ${config.loraMethod}; leave it 0`);
    if (!RANK_ALLOCATIONS.includes(config.rankAllocation))
      throw new InvalidArgumentError(`rankAllocation must be one of ${RANK_ALLOCATIONS.join(', ')}, got ${String(config.rankAllocation)}`);
    if (config.rankAllocation !== 'none' && method.chain)
      throw new InvalidArgumentError(
        `rankAllocation ${config.rankAllocation} with the chain ${config.loraMethod} is not supported: a chain exports its stages as one adapter of one scaling`,
      );
    if (config.lora.rank_pattern !== undefined && (method.chain || config.rankAllocation !== 'none'))
      throw new InvalidArgumentError(
        `lora.rank_pattern cannot go with ${method.chain ? `the chain ${config.loraMethod} (one scaling for every stage)` : `rankAllocation ${config.rankAllocation} (which makes the rank_pattern)`}`,
      );
  }
  if (model && config.mode === 'finetune') {
    const shapes = qwen3StateDictShapes(model);
    const limit = Math.min(...config.lora.target_modules.map((module) => Math.min(...shapes[`${qwen3ModulePath(0, module)}.weight`])));
    if (config.lora.r > limit)
      throw new InvalidArgumentError(
        `lora r = ${config.lora.r} exceeds ${limit}, the smallest side of the adapted ${config.lora.target_modules.join(', ')} weights: a rank above it adds parameters but no rank`,
      );
  }
  // Ids above 255 could be sampled but never decoded: the tokenizer is the 256 byte values.
  if (model && model.vocab_size !== 256)
    throw new InvalidArgumentError(`the model's vocab_size is ${model.vocab_size}; the text is one token per byte, so it must be 256`);
  if (model && config.contextLength > model.max_position_embeddings)
    throw new InvalidArgumentError(`contextLength ${config.contextLength} exceeds the model's max_position_embeddings (${model.max_position_embeddings})`);
}

/** The adapters' settings of a fine-tune, checked before any work: PEFT's r, lora_alpha and target_modules. */
function checkLora(lora: Qwen3LoraConfig): void {
  if (!Number.isSafeInteger(lora.r) || lora.r < 1) throw new InvalidArgumentError(`lora r must be an integer ≥ 1 (and ≤ 2^53 − 1), got ${String(lora.r)}`);
  if (typeof lora.lora_alpha !== 'number' || !Number.isFinite(lora.lora_alpha) || lora.lora_alpha <= 0)
    throw new InvalidArgumentError(`lora_alpha must be a finite number > 0, got ${String(lora.lora_alpha)}`);
  const targets = lora.target_modules;
  if (
    !Array.isArray(targets) ||
    targets.length === 0 ||
    new Set(targets).size !== targets.length ||
    !targets.every((t) => (QWEN3_MODULES as readonly string[]).includes(t))
  ) {
    throw new InvalidArgumentError(`target_modules must be distinct modules of ${QWEN3_MODULES.join(', ')}, got ${JSON.stringify(targets)}`);
  }
}

/** A stable hash of the config, the base weights and the data: a resume with anything else is refused. */
function runHash(config: LanguageModelConfig, base: Qwen3Model, data: TextSplit): string {
  // The method's keys at their defaults are left out, so runs from before they existed still resume.
  const { loraMethod, stageSteps, rankAllocation, ...rest } = config;
  const hash = resumableHash({
    ...rest,
    ...(loraMethod !== 'lora' ? { loraMethod } : {}),
    ...(stageSteps !== 0 ? { stageSteps } : {}),
    ...(rankAllocation !== 'none' ? { rankAllocation } : {}),
    model: base.config,
  });
  for (const key of Object.keys(base.weights).sort()) hash.update(key).update(new Uint8Array(Float64Array.from(base.weights[key].toFlat()).buffer));
  hash.update(data.train).update(data.validation);
  return hash.digest('hex').slice(0, 16);
}

function forwardOptions(config: LanguageModelConfig, training: boolean, weightGradients: boolean): Qwen3Options {
  const options: Qwen3Options = { method: training ? config.method : 'exact', epsilon: config.epsilon, weightGradients };
  if (config.qkNormCap > 0) options.qkNormCap = config.qkNormCap;
  if (training && config.shiftedSparseGroup > 0) Object.assign(options, { shiftedSparseAttention: { groupSize: config.shiftedSparseGroup } });
  return options;
}

/** The held-out windows: `count` windows of `length` tokens spread evenly over the text (all of them if it has fewer). */
export function evaluationWindows(text: Uint8Array, length: number, count: number): number[][] {
  const available = Math.floor(text.length / length);
  if (available === 0) throw new InvalidArgumentError(`the validation text (${text.length} bytes) is shorter than one window of ${length}`);
  const n = Math.min(count, available);
  return Array.from({ length: n }, (_, w) => {
    const start = Math.floor((w * available) / n) * length;
    return Array.from(text.subarray(start, start + length));
  });
}

/**
 * Held-out bits per character of a model: mean next-token cross-entropy over the windows, in
 * bits (one token is one byte, one character of ASCII text), with full exact attention.
 */
export function bitsPerChar(model: Qwen3Model, windows: number[][], qkNormCap = 0): number {
  let nats = 0;
  let tokens = 0;
  for (const window of windows) {
    const result = qwen3ForCausalLM(model, window, { method: 'exact', ...(qkNormCap > 0 ? { qkNormCap } : {}) });
    nats += result.loss * result.tokens;
    tokens += result.tokens;
    result.dispose();
  }
  return nats / tokens / LN2;
}

/** Every weight of a model being pretrained, by state-dict key. */
function trainableList(model: Qwen3Model): [string, Matrix][] {
  return Object.keys(model.weights).map((key) => [key, model.weights[key]]);
}

function layerSteps(result: { layers: Qwen3LayerReport[] }): LayerStep[] {
  return result.layers.map((l) => ({
    layer: l.layer,
    gamma: l.attention.gamma,
    gammaBound: l.gammaBound,
    threshold: l.attention.threshold,
    exactHeads: l.attention.heads.filter((h) => h.chosen === 'exact').length,
    fastHeads: l.attention.heads.filter((h) => h.chosen === 'fast').length,
    reason: l.attention.reason,
    heads: l.attention.heads.map((h) => ({
      sequence: h.sequence,
      head: h.head,
      chosen: h.chosen,
      gamma: h.gamma,
      range: h.range,
      degree: h.degree ?? null,
      rank: h.rank ?? null,
      reason: h.reason,
    })),
  }));
}

/**
 * Trains a Qwen3 language model on a byte stream: windows of `contextLength` bytes drawn at
 * seeded random offsets, Adam with warm-up, decay and clipping, every attention head through the
 * core with `method` (and its report per layer in each step's record), held-out bits per character
 * before, every `evalEvery` steps and after (full exact attention), checkpoints that resume bit for
 * bit, a metrics line per step. When fine-tuning the base weights are never changed; adapters
 * start as PEFT's (lora_B = 0), so step 0 evaluates the base. Stops with `TrainingDivergedError`,
 * the last good checkpoint intact, if the loss or the gradient stops being finite. Holds the
 * folder's `run.lock` throughout.
 */
export async function trainLanguageModel(
  base: Qwen3Model,
  data: TextSplit,
  config: LanguageModelConfig,
  runDir: string,
  options: LanguageModelRunOptions = {},
): Promise<LanguageModelRun> {
  checkLanguageModelConfig(config, base.config);
  if (data.train.length <= config.contextLength)
    throw new InvalidArgumentError(`the training text (${data.train.length} bytes) must be longer than contextLength (${config.contextLength})`);
  // Made before the folder, so a validation text too short is refused with nothing written.
  const windows = evaluationWindows(data.validation, config.contextLength, config.evalWindows);
  await mkdir(runDir, { recursive: true });
  const lock = await lockRunDir(runDir);
  try {
    return await trainLocked(base, data, windows, config, runDir, options, lock.note ? [lock.note] : []);
  } finally {
    await lock.release();
  }
}

/** The model a run trains, and for a fine-tune its method's adapters (which replace the model's lora before every pass). */
function freshModel(base: Qwen3Model, data: TextSplit, config: LanguageModelConfig): { model: Qwen3Model; methods: MethodAdapters | undefined } {
  if (config.mode === 'pretrain') {
    const weights: Qwen3Weights = {};
    // A copy (slice): fromFlat wraps a typed array of its dtype, and training must not write into the caller's base.
    for (const [key, m] of Object.entries(base.weights)) weights[key] = fromFlat(m.rows, m.cols, m.toFlat().slice());
    return { model: { config: base.config, weights }, methods: undefined };
  }
  const methodAt = (rank: number) => methodFor(config.loraMethod, config.stageSteps, config.learningRate, { r: rank, lora_alpha: config.lora.lora_alpha });
  const method = methodAt(config.lora.r);
  const needs = allocationNeeds(config.rankAllocation);
  let initialGradients: Qwen3Weights | undefined;
  let hiddenStates: Matrix[] | undefined;
  if (method.needsInitialGradient || needs.gradient || needs.hiddenStates) {
    // A probe batch of its own generator (so a resume draws it again): the full-weight gradient at
    // the base and its hidden states, for the methods and allocators that start from them.
    const rng = new Rng(config.seed + 3);
    const batch = Array.from({ length: config.batchSize }, () => {
      const offset = rng.int(data.train.length - config.contextLength + 1);
      return Array.from(data.train.subarray(offset, offset + config.contextLength));
    });
    const probe = qwen3ForCausalLM({ config: base.config, weights: base.weights }, batch, forwardOptions(config, true, true));
    hiddenStates = probe.hiddenStates;
    initialGradients = probe.backward().weights;
  }
  const lora: Qwen3LoraConfig =
    config.rankAllocation === 'none'
      ? config.lora
      : {
          ...config.lora,
          rank_pattern: allocateRanks(base.config, config.lora, config.rankAllocation, {
            weights: base.weights,
            weightGradients: initialGradients,
            hiddenStates,
          }),
        };
  // A shallow copy: a chain replaces the adapted modules' weights with merged ones, never the base's own.
  const weights = { ...base.weights };
  const methods = new MethodAdapters(methodAt, base.config, lora, weights, config.seed, initialGradients);
  return { model: { config: base.config, weights, lora: methods.current() }, methods };
}

async function trainLocked(
  base: Qwen3Model,
  data: TextSplit,
  windows: number[][],
  config: LanguageModelConfig,
  runDir: string,
  options: LanguageModelRunOptions,
  notes: string[],
): Promise<LanguageModelRun> {
  const checkpoints = await runSubfolder(path.join(runDir, 'checkpoints'));
  const metricsFile = path.join(runDir, 'metrics.jsonl');
  const hash = runHash(config, base, data);
  const { model, methods } = freshModel(base, data, config);
  const trainable = (): [string, Matrix][] => (methods ? methods.parameters() : trainableList(model));
  let optimizer: OptimizerState = createOptimizer(
    'adam',
    trainable().map(([, m]) => m.size),
  );
  const rng = new Rng(config.seed + 2);
  let start = 0;
  let records: LanguageModelStep[] = [];
  let resumedFrom: number | undefined;
  let initialValidation: number | undefined;
  const latest = options.resume ? await latestCheckpoint(checkpoints, hash) : undefined;
  if (latest) {
    const state = latest.state;
    if (state.configHash !== hash)
      throw new CheckpointError(`cannot resume ${latest.file}: its content was written with another config (hash ${state.configHash}, now ${hash})`);
    checkResumeSteps(state.step, config.steps, latest.file);
    const saved = (name: string, rows?: number, cols?: number): Matrix => {
      const tensor = state.params[name];
      if (!tensor || (rows !== undefined && (tensor.rows !== rows || tensor.cols !== cols)))
        throw new CheckpointError(`cannot resume ${latest.file}: it has no ${rows === undefined ? '' : `${rows}×${cols} `}"${name}"`);
      return fromFlat(tensor.rows, tensor.cols, tensor.data);
    };
    if (methods)
      methods.restoreStages(
        Object.keys(state.params).filter((name) => /^stage\.\d+\./.test(name)).length / (2 * Object.keys(methods.current().adapters).length),
        saved,
      );
    for (const [name, m] of trainable()) m.data.set(saved(name, m.rows, m.cols).data);
    optimizer = state.optimizer;
    rng.setState(state.rngState);
    start = state.step;
    resumedFrom = state.step;
    // A run extended past the step its last stage ended on: that boundary's merge comes now.
    const chain = methods?.method.chain;
    if (methods && chain && methods.stageEnds(start, config.steps) && methods.stage < start / chain.stepsPerStage) {
      methods.nextStage();
      optimizer = createOptimizer(
        'adam',
        trainable().map(([, m]) => m.size),
      );
    }
    const previous = readMetricsRecords<LanguageModelStep>(await readFile(metricsFile, 'utf8').catch(() => ''), metricsFile, notes);
    // The first line also carries the evaluation before training; a record itself never does.
    initialValidation = (previous as (LanguageModelStep & { initialValidation?: number })[]).find((r) => r.initialValidation !== undefined)?.initialValidation;
    records = previous.filter((r) => r.step < start).map(({ initialValidation: _, ...r }: LanguageModelStep & { initialValidation?: number }) => r);
  }
  initialValidation ??= bitsPerChar(config.mode === 'pretrain' ? model : { config: base.config, weights: base.weights }, windows, config.qkNormCap);
  // The first line carries the evaluation before training, so a resume reports it without recomputing.
  const withInitial = (r: LanguageModelStep, n: number) => (n === 0 ? { ...r, initialValidation } : r);
  await writeFileAtomic(metricsFile, records.map((r, n) => `${JSON.stringify(withInitial(r, n))}\n`).join(''));
  const metrics = await openAppend(metricsFile);
  try {
    const checkpoint = async (step: number) =>
      saveCheckpoint(await runSubfolder(checkpoints), {
        step,
        configHash: hash,
        rngState: rng.state,
        params: Object.fromEntries(
          [...trainable(), ...(methods?.mergedTensors() ?? [])].map(([name, m]) => [name, { rows: m.rows, cols: m.cols, data: Array.from(m.data) }]),
        ),
        optimizer,
      } satisfies CheckpointState);
    let lastCheckpoint: string | undefined = latest?.file;
    let stepSeconds = 0;
    const schedule = { learningRate: config.learningRate, warmupSteps: config.warmupSteps, decay: config.decay, steps: config.steps };
    for (let step = start; step < config.steps; step++) {
      const t0 = performance.now();
      const rate = learningRate(schedule, step);
      const diverged = (what: string) =>
        new TrainingDivergedError(
          `training diverged at step ${step + 1}: ${what} (learning rate ${rate.toPrecision(3)}; try a smaller one). ${lastCheckpoint ? `The last good checkpoint, ${lastCheckpoint}, is intact.` : 'No checkpoint was written yet.'}`,
        );
      const batch = Array.from({ length: config.batchSize }, () => {
        const offset = rng.int(data.train.length - config.contextLength + 1);
        return Array.from(data.train.subarray(offset, offset + config.contextLength));
      });
      let result: ReturnType<typeof qwen3ForCausalLM<number[][]>>;
      let grads: ReturnType<typeof result.backward>;
      let pass = 'forward';
      if (methods) model.lora = methods.current();
      try {
        result = qwen3ForCausalLM(model, batch, forwardOptions(config, true, config.mode === 'pretrain' || (methods?.method.needsWeightGradient ?? false)));
        pass = 'backward';
        grads = result.backward();
      } catch (error) {
        if (error instanceof NonFiniteError) throw diverged(`the ${pass} pass became non-finite (${error.message})`);
        throw error;
      }
      const gradList = methods ? methods.gradients(grads.lora, grads.weights) : trainable().map(([name]) => grads.weights![name]);
      const gradNorm = globalNorm(gradList);
      if (!Number.isFinite(result.loss) || !Number.isFinite(gradNorm))
        throw diverged(!Number.isFinite(result.loss) ? `the loss is ${result.loss}` : `the gradient norm is ${gradNorm}`);
      const risen = divergence(result.loss / LN2, records[0]?.bitsPerChar ?? result.loss / LN2, config.divergenceFactor);
      if (risen) throw diverged(risen);
      const clip = config.clipNorm > 0 && gradNorm > config.clipNorm ? config.clipNorm / gradNorm : 1;
      applyUpdate(
        optimizer,
        trainable().map(([, m]) => m),
        gradList,
        rate,
        clip,
      );
      const broken = trainable().find(([, m]) => !m.data.every(Number.isFinite));
      if (broken) throw diverged(`the update made ${broken[0]} non-finite`);
      if (methods?.stageEnds(step + 1, config.steps)) {
        methods.nextStage();
        // A new stage trains new tensors: Adam starts afresh for them.
        optimizer = createOptimizer(
          'adam',
          trainable().map(([, m]) => m.size),
        );
      }
      if (methods) model.lora = methods.current();
      const seconds = (performance.now() - t0) / 1000;
      stepSeconds += seconds;
      const done = step + 1;
      const evaluate = done === config.steps || (config.evalEvery > 0 && done % config.evalEvery === 0);
      const record: LanguageModelStep = {
        step,
        bitsPerChar: result.loss / LN2,
        learningRate: rate,
        gradNorm,
        layers: layerSteps(result),
        validationBitsPerChar: evaluate ? heldOut(model, windows, config.qkNormCap, diverged) : undefined,
        seconds,
      };
      records.push(record);
      await metrics.appendFile(`${JSON.stringify(withInitial(record, records.length - 1))}\n`);
      options.onStep?.(record);
      if ((config.checkpointEvery > 0 && done % config.checkpointEvery === 0) || done === config.steps) lastCheckpoint = await checkpoint(done);
    }
    // A resume of a finished run whose metrics were lost has no records: evaluate the checkpoint.
    const last = records.at(-1);
    return {
      runDir,
      configHash: hash,
      initialValidation,
      finalValidation: last?.validationBitsPerChar ?? bitsPerChar(model, windows, config.qkNormCap),
      records,
      stepSeconds,
      resumedFrom,
      notes,
      // A fine-tune's model is the base with the run's adapters (a chain's stages side by side as one).
      model: methods ? { config: base.config, weights: base.weights, lora: methods.exported() } : model,
      trainableParameters: trainable().reduce((sum, [, m]) => sum + m.size, 0),
    };
  } finally {
    await metrics.close();
  }
}

/** Held-out bits per character after a step; a non-finite evaluation is the step's divergence, not a number in the metrics. */
function heldOut(model: Qwen3Model, windows: number[][], qkNormCap: number, diverged: (what: string) => TrainingDivergedError): number {
  let bits: number;
  try {
    bits = bitsPerChar(model, windows, qkNormCap);
  } catch (error) {
    if (error instanceof NonFiniteError) throw diverged(`the held-out evaluation became non-finite (${error.message})`);
    throw error;
  }
  if (!Number.isFinite(bits)) throw diverged(`the held-out bits per character are ${bits}`);
  return bits;
}

/** A fresh model of this shape, initialised as transformers does, from `seed`. */
export function freshQwen3(config: Qwen3Config, seed: number): Qwen3Model {
  return { config, weights: initQwen3Weights(config, new Rng(seed)) };
}

/** The adapters of a run's model (a fine-tune), or an error saying it has none. */
export function adaptersOf(run: LanguageModelRun): Qwen3Lora {
  if (!run.model.lora) throw new InvalidArgumentError('this run trained no adapters (it was a pretraining run)');
  return run.model.lora;
}
