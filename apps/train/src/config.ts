import { backendNames, backendUnavailable } from '@almora/backends';
import { InvalidArgumentError } from '@almora/tensor';
import type { GradientMethod } from '@almora/lora';
import type { Target } from '@almora/lora';
import { describeValue } from './describe.js';

/** Everything a training run needs; every field has a documented default in {@link DEFAULT_CONFIG}. */
export interface TrainConfig {
  /** Seed of the task, the initialisation and the data order. */
  seed: number;
  /** Sequence length L of every training sequence. */
  length: number;
  /** Model dimension d (= d_in = d_out). */
  dim: number;
  /** Attention heads; dim must be a multiple. */
  heads: number;
  /** LoRA rank r. */
  rank: number;
  /** LoRA α; the update is (α/r)·B·A. */
  alpha: number;
  /** Adapted projections: ['q', 'v'] (partial) or ['q', 'k', 'v'] (full). */
  targets: Target[];
  /** Causal masking. */
  causal: boolean;
  /** Number of training sequences in the embedded task. */
  sequences: number;
  /** Sequences per step. */
  batchSize: number;
  /** Optimizer steps. */
  steps: number;
  /** 'adam' (default) or 'sgd'. */
  optimizer: 'adam' | 'sgd';
  /** Peak learning rate. */
  learningRate: number;
  /** Steps of linear warm-up from 0 to the peak. */
  warmupSteps: number;
  /** Decay after warm-up: cosine to 10% of the peak, linear to 10%, or none. */
  decay: 'cosine' | 'linear' | 'none';
  /** Clip the global gradient norm to this (0: no clipping). */
  clipNorm: number;
  /** Gradient method per step; 'auto' re-checks the regime every step. */
  method: GradientMethod;
  /** ε for the regime check (certified attention error). */
  epsilon: number;
  /** Scale of the teacher's hidden ΔW relative to W*. */
  teacherScale: number;
  /** Entry scale of the inputs X (sets Γ). */
  inputScale: number;
  /** Pre-normalise every row of X to this Euclidean norm (0: off). */
  normalizeInputs: number;
  /** Keep Γ of the adapted Q and K at or below this by rescaling B after a step (0: off). */
  gammaBound: number;
  /** Checkpoint every this many steps (0: only at the end). */
  checkpointEvery: number;
  /** Stop with `TrainingDivergedError` once the loss exceeds this many times its first value (0: only non-finite values stop a run). */
  divergenceFactor: number;
  /** Write a second run with method 'exact' on the same seed beside the main one, and compare. */
  compareExact: boolean;
  /** Where the attention work runs: a name of @almora/backends' registry ('cpu', 'wasm', 'wasm:N', 'gpu.js:<mode>'). */
  backend: string;
}

/**
 * The embedded default: the paper's own setting at L = 4096, where the fast path matters. Rows of
 * X are pre-normalised to 0.5 (Remark 5.2), which keeps Γ inside the efficient regime so 'auto'
 * can certify the fast path at ε = 1e-2; with the exact run beside it, about a minute here.
 */
export const DEFAULT_CONFIG: TrainConfig = {
  seed: 1,
  length: 4096,
  dim: 4,
  heads: 1,
  rank: 2,
  alpha: 4,
  targets: ['q', 'v'],
  causal: false,
  sequences: 8,
  batchSize: 1,
  steps: 60,
  optimizer: 'adam',
  learningRate: 0.1,
  warmupSteps: 5,
  decay: 'cosine',
  clipNorm: 10,
  method: 'auto',
  epsilon: 1e-2,
  teacherScale: 0.5,
  inputScale: 1,
  normalizeInputs: 0.5,
  gammaBound: 0,
  checkpointEvery: 10,
  divergenceFactor: 10,
  compareExact: true,
  backend: 'cpu',
};

/** How a key's value is checked: numbers by sign and integrality, strings from a list. */
export type Kind = 'integer' | 'count' | 'countOrZero' | 'positive' | 'nonnegative' | 'boolean' | 'targets' | 'backend' | { oneOf: readonly string[] };

/** How each key of {@link TrainConfig} is checked (and so what its flag takes). */
export const SCHEMA: Record<keyof TrainConfig, Kind> = {
  seed: 'integer',
  length: 'count',
  dim: 'count',
  heads: 'count',
  rank: 'count',
  alpha: 'positive',
  targets: 'targets',
  causal: 'boolean',
  sequences: 'count',
  batchSize: 'count',
  steps: 'count',
  optimizer: { oneOf: ['adam', 'sgd'] },
  learningRate: 'positive',
  warmupSteps: 'countOrZero',
  decay: { oneOf: ['cosine', 'linear', 'none'] },
  clipNorm: 'nonnegative',
  method: { oneOf: ['exact', 'fast', 'auto'] },
  epsilon: 'positive',
  teacherScale: 'positive',
  inputScale: 'positive',
  normalizeInputs: 'nonnegative',
  gammaBound: 'nonnegative',
  checkpointEvery: 'countOrZero',
  divergenceFactor: 'nonnegative',
  compareExact: 'boolean',
  backend: 'backend',
};

const NUMBER_RULES: Record<'integer' | 'count' | 'countOrZero' | 'positive' | 'nonnegative', [string, (n: number) => boolean]> = {
  // Safe integers only: 1e308 is an integer to JavaScript, and then a size of Infinity.
  integer: ['an integer', Number.isSafeInteger],
  count: ['an integer > 0', (n) => Number.isSafeInteger(n) && n > 0],
  countOrZero: ['an integer ≥ 0', (n) => Number.isSafeInteger(n) && n >= 0],
  positive: ['a number > 0', (n) => n > 0],
  nonnegative: ['a number ≥ 0', (n) => n >= 0],
};

function checkValue(key: keyof TrainConfig, value: unknown, source: string): unknown {
  const kind = SCHEMA[key];
  // A flag names itself (--learning-rate); a file names the file and the key.
  const fail = (expected: string) =>
    new InvalidArgumentError(`${source.startsWith('--') ? source : `${source}: "${key}"`} must be ${expected}, got ${describeValue(value)}`);
  if (kind === 'boolean') {
    if (typeof value !== 'boolean') throw fail('true or false');
  } else if (kind === 'targets') {
    if (!Array.isArray(value) || value.length === 0 || !value.every((t) => t === 'q' || t === 'k' || t === 'v') || new Set(value).size !== value.length) {
      throw fail('a list of distinct targets from "q", "k", "v"');
    }
  } else if (kind === 'backend') {
    if (typeof value !== 'string') throw fail(`a backend name (${backendNames().join(', ')})`);
    const why = backendUnavailable(value);
    if (why !== undefined) throw fail(`a backend that runs here: ${why}`);
  } else if (typeof kind === 'object') {
    if (typeof value !== 'string' || !kind.oneOf.includes(value)) throw fail(`one of ${kind.oneOf.map((o) => `"${o}"`).join(', ')}`);
  } else {
    const [expected, ok] = NUMBER_RULES[kind];
    if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) throw fail(expected);
  }
  return value;
}

/**
 * Validates a partial config (from a JSON file or flags): an unknown key or a value of the wrong
 * type is an error that names the key and where it came from.
 */
export function parseConfig(input: unknown, source: string): Partial<TrainConfig> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new InvalidArgumentError(`${source}: the config must be a JSON object`);
  const out: Partial<TrainConfig> = {};
  for (const [key, value] of Object.entries(input)) {
    // Own keys only: `in` would accept "__proto__" and "constructor" from Object.prototype.
    if (!Object.hasOwn(SCHEMA, key)) {
      throw new InvalidArgumentError(`${source}: unknown key "${key}"; known keys: ${Object.keys(SCHEMA).join(', ')}`);
    }
    (out as Record<string, unknown>)[key] = checkValue(key as keyof TrainConfig, value, source);
  }
  return out;
}

/** The most elements a Float64Array can have in V8. */
const MAX_ENTRIES = 2 ** 32;

/** Defaults, then the file, then flags; checks the relations between fields. */
export function resolveConfig(...layers: Partial<TrainConfig>[]): TrainConfig {
  const config = Object.assign({}, DEFAULT_CONFIG, ...layers) as TrainConfig;
  if (config.dim % config.heads !== 0) throw new InvalidArgumentError(`config: "dim" (${config.dim}) must be a multiple of "heads" (${config.heads})`);
  if (config.batchSize > config.sequences)
    throw new InvalidArgumentError(`config: "batchSize" (${config.batchSize}) exceeds "sequences" (${config.sequences})`);
  if (config.divergenceFactor > 0 && config.divergenceFactor <= 1)
    throw new InvalidArgumentError(`config: "divergenceFactor" must be 0 (off) or > 1, got ${config.divergenceFactor}`);
  if (config.rank > config.dim) throw new InvalidArgumentError(`config: "rank" (${config.rank}) exceeds "dim" (${config.dim})`);
  for (const [what, rows] of [
    ['a sequence (length × dim)', config.length],
    ['a weight (dim × dim)', config.dim],
  ] as const) {
    if (rows * config.dim > MAX_ENTRIES)
      throw new InvalidArgumentError(`config: ${what} would have ${rows * config.dim} entries, more than the 2^32 an array can hold`);
  }
  return config;
}

/** The keys of {@link TrainConfig}, for flags. */
export const CONFIG_KEYS = Object.keys(SCHEMA) as (keyof TrainConfig)[];

/** How each key's flag value is parsed from text. */
export function flagValue(key: keyof TrainConfig, text: string): unknown {
  const kind = SCHEMA[key];
  if (kind === 'boolean') return text === 'true' ? true : text === 'false' ? false : text;
  if (kind === 'targets') return text.split(',').map((t) => t.trim());
  if (typeof kind === 'object' || kind === 'backend') return text;
  const n = Number(text);
  return Number.isNaN(n) ? text : n;
}
