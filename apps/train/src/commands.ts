import { type CommandSpec, type OptionSpec, RUN_OPTIONS } from './cli-options.js';
import { CONFIG_KEYS, DEFAULT_CONFIG, SCHEMA, type TrainConfig } from './config.js';
import { LORA_METHODS } from '@almora/lora-methods';
import { FINETUNE_DEFAULTS, type LanguageModelConfig, PRETRAIN_DEFAULTS, RANK_ALLOCATIONS } from '@almora/training';

/** A camelCase key as its flag: learningRate → learning-rate. */
export const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The recipe keys of the text commands a flag sets (numbers), with what each does. */
export const RECIPE_KEYS = {
  contextLength: ['N', 'Tokens (bytes) per training sequence L.'],
  batchSize: ['N', 'Sequences per step.'],
  steps: ['N', 'Optimizer steps; with --resume, a larger value extends the run.'],
  learningRate: ['x', 'Peak learning rate (Adam).'],
  warmupSteps: ['N', 'Steps of linear warm-up to the peak learning rate.'],
  clipNorm: ['x', 'Clip the global gradient norm to this (0: off).'],
  seed: ['N', 'Seeds the initialisation and the data order.'],
  epsilon: ['x', "The certified attention error 'auto' must meet to take the fast path."],
  qkNormCap: ['G', 'Clamp every q_norm/k_norm gain to [−G, G], which bounds Γ (0: none).'],
  shiftedSparseGroup: ['N', "LongLoRA's shifted sparse attention while training, in groups of N tokens (0: full attention)."],
  evalEvery: ['N', 'Evaluate held-out bits per character every N steps (0: before and after only).'],
  evalWindows: ['N', 'Held-out windows of --context-length tokens per evaluation.'],
  checkpointEvery: ['N', 'Checkpoint every N steps (0: only at the end).'],
  divergenceFactor: ['x', 'Stop with an error once the loss exceeds this many times its first value (0: only a non-finite loss stops a run).'],
} as const satisfies Partial<Record<keyof LanguageModelConfig, readonly [string, string]>>;

/** The recipe keys as text-command options, with the defaults of `defaults`. */
function recipeOptions(defaults: Readonly<LanguageModelConfig>): OptionSpec[] {
  return [
    ...Object.entries(RECIPE_KEYS).map(([key, [value, description]]) => ({
      name: kebab(key),
      value,
      description,
      default: String(defaults[key as keyof typeof RECIPE_KEYS]),
    })),
    { name: 'method', value: 'path', description: 'Gradient path of every attention head.', default: defaults.method, choices: ['auto', 'exact', 'fast'] },
    {
      name: 'decay',
      value: 'schedule',
      description: 'Learning-rate decay after warm-up (to 10% of the peak).',
      default: defaults.decay,
      choices: ['cosine', 'linear', 'none'],
    },
  ];
}

/** `almora train` (the text task, the main job). */
export const FINETUNE_COMMAND: CommandSpec = {
  command: 'train',
  summary: 'LoRA fine-tuning of a small transformer on real text: the main job.',
  description:
    'Fine-tunes the shipped Brown base model (or --base) on the imaginative half of the Brown corpus, with --method and exact gradients side by side on the same seed; writes <run-dir>/report.md (held-out bits per character, the path every head took and why, samples) and PEFT adapters in <run-dir>/<method>/adapter.',
  options: [
    {
      name: 'task',
      value: 'task',
      description: "The job: text (this one) or teacher, the paper's synthetic task (almora train --task teacher --help).",
      default: 'text',
      choices: ['text', 'teacher'],
    },
    { name: 'base', value: 'dir', description: "A base model folder (Hugging Face's config.json and model.safetensors).", default: 'the shipped base-model/' },
    {
      name: 'compare-exact',
      value: 'bool',
      description: 'Also run exact gradients on the same seed and compare.',
      default: 'true',
      choices: ['true', 'false'],
    },
    { name: 'rank', value: 'r', description: 'LoRA rank r.', default: String(FINETUNE_DEFAULTS.lora.r) },
    { name: 'lora-alpha', value: 'alpha', description: 'LoRA alpha; updates are scaled by alpha/r.', default: String(FINETUNE_DEFAULTS.lora.lora_alpha) },
    {
      name: 'target-modules',
      value: 'list',
      description: 'Comma-separated modules to adapt in every layer.',
      default: FINETUNE_DEFAULTS.lora.target_modules.join(','),
    },
    {
      name: 'lora-method',
      value: 'name',
      description:
        'How the adapters train: lora (plain), lora-one and lora-sb (initialised from the one-step full gradient), sbora (a standard-basis factor, half the parameters), cora (B from the base weight), lora-pro (gradients adjusted to the closest full-weight one), or the chains rac-lora and xgblora.',
      default: FINETUNE_DEFAULTS.loraMethod,
      choices: Object.keys(LORA_METHODS),
    },
    {
      name: 'stage-steps',
      value: 'N',
      description: "Steps per stage of a chain method (rac-lora, xgblora), after each of which its adapter merges into the weights (0: the method's default).",
      default: String(FINETUNE_DEFAULTS.stageSteps),
    },
    {
      name: 'rank-allocation',
      value: 'name',
      description:
        "Spread what --rank everywhere would train over the modules as ranks (PEFT's rank_pattern): sr-lora by the stable rank of the base weights, gelora by the intrinsic dimension of the hidden states, sublora by the gradient; none: --rank everywhere.",
      default: FINETUNE_DEFAULTS.rankAllocation,
      choices: [...RANK_ALLOCATIONS],
    },
    ...recipeOptions(FINETUNE_DEFAULTS).map((o) =>
      o.name === 'qk-norm-cap' ? { ...o, default: `the base's almora_qk_norm_cap, else ${FINETUNE_DEFAULTS.qkNormCap}` } : o,
    ),
    ...RUN_OPTIONS.map((o) => (o.name === 'run-dir' ? { ...o, default: 'runs/default' } : o)),
  ],
  examples: [
    'almora train',
    'almora train --steps 100 --run-dir runs/longer',
    'almora train --run-dir runs/longer --steps 200 --resume',
    'almora train --method fast --compare-exact false --context-length 4096',
  ],
};

/** `almora pretrain`. */
export const PRETRAIN_COMMAND: CommandSpec = {
  command: 'pretrain',
  summary: 'Trains the base model from scratch.',
  description:
    "Trains every parameter of a 2-layer Qwen3 (one token per byte) on the informative half of the Brown corpus and writes it in Hugging Face's layout to <run-dir>/run/model, with its training curve; the defaults are the recipe of the shipped base.",
  options: [...recipeOptions(PRETRAIN_DEFAULTS), ...RUN_OPTIONS.map((o) => (o.name === 'run-dir' ? { ...o, default: 'runs/pretrain' } : o))],
  examples: ['almora pretrain', 'almora pretrain --steps 300 --run-dir runs/quick-base'],
};

/** `almora generate`. */
export const GENERATE_COMMAND: CommandSpec = {
  command: 'generate',
  summary: 'Continues a prompt.',
  description:
    'Generates text with the base model, or with PEFT adapters applied (a folder with adapter_config.json and adapter_model.safetensors, e.g. runs/default/auto/adapter). Temperature 0 is greedy.',
  options: [
    { name: 'prompt', value: 'text', description: 'The text to continue (required).' },
    { name: 'base', value: 'dir', description: 'A base model folder.', default: 'the shipped base-model/' },
    { name: 'adapter', value: 'dir', description: 'A PEFT adapter folder to apply.' },
    { name: 'tokens', value: 'N', description: 'Tokens (bytes) to generate.', default: '200' },
    { name: 'temperature', value: 'x', description: 'Sampling temperature (0: greedy).', default: '0.8' },
    { name: 'top-k', value: 'N', description: 'Sample among the N most likely tokens.', default: '40' },
    { name: 'seed', value: 'N', description: 'Seeds the sampling.', default: '1' },
    { name: 'qk-norm-cap', value: 'G', description: 'The q_norm/k_norm cap to apply.', default: "the base's almora_qk_norm_cap" },
    { name: 'help', description: 'Print this help.' },
  ],
  examples: ['almora generate --prompt "The night was"', 'almora generate --prompt "The night was" --adapter runs/default/auto/adapter --temperature 0'],
};

/** What each key of the teacher task's config does. */
const TEACHER_KEYS: Record<keyof TrainConfig, string> = {
  seed: 'Seeds the task, the initialisation and the data order.',
  length: 'Sequence length L of every training sequence.',
  dim: 'Model dimension d.',
  heads: 'Attention heads; --dim must be a multiple.',
  rank: 'LoRA rank r.',
  alpha: 'LoRA alpha; the update is (alpha/r)·B·A.',
  targets: 'Adapted projections, comma-separated: q,v (partial) or q,k,v (full).',
  causal: 'Causal masking.',
  sequences: 'Training sequences in the generated task.',
  batchSize: 'Sequences per step.',
  steps: 'Optimizer steps; with --resume, a larger value extends the run.',
  optimizer: 'The optimizer.',
  learningRate: 'Peak learning rate.',
  warmupSteps: 'Steps of linear warm-up to the peak learning rate.',
  decay: 'Learning-rate decay after warm-up (to 10% of the peak).',
  clipNorm: 'Clip the global gradient norm to this (0: off).',
  method: 'Gradient method per step; auto re-checks the regime every step.',
  epsilon: "The certified attention error 'auto' must meet to take the fast path.",
  teacherScale: "Scale of the teacher's hidden ΔW relative to W*.",
  inputScale: 'Entry scale of the inputs X (sets Γ).',
  normalizeInputs: 'Pre-normalise every row of X to this Euclidean norm (0: off).',
  gammaBound: 'Keep Γ of the adapted Q and K at or below this by rescaling B after a step (0: off).',
  checkpointEvery: 'Checkpoint every N steps (0: only at the end).',
  divergenceFactor: 'Stop with an error once the loss exceeds this many times its first value (0: only a non-finite loss stops a run).',
  compareExact: "Also run 'exact' on the same seed and compare.",
  backend: 'Where the attention work runs: cpu, wasm (every core), wasm:N (N threads) or gpu.js:<mode> (the names that run here are listed when one does not).',
};

/** `almora train --task teacher`: every key of its config is a flag (and a key of --config's JSON, camelCase there). */
export const TEACHER_COMMAND: CommandSpec = {
  command: 'train --task teacher',
  summary: "The paper's synthetic task.",
  description:
    'A teacher head with a hidden rank-r ΔW makes the targets; the student learns A and B. With no options it trains the embedded default (L = 4,096, auto and exact side by side, about a minute). --data reads w_q, w_k, w_v (dim×dim) and sequences x.0, y.0, x.1, y.1, … (L×dim) from a safetensors file instead.',
  options: [
    { name: 'config', value: 'file.json', description: 'A JSON object of config keys (camelCase); flags override it.' },
    { name: 'data', value: 'file.safetensors', description: 'A dataset instead of the generated teacher task.' },
    ...CONFIG_KEYS.map((key): OptionSpec => {
      const kind = SCHEMA[key];
      const choices = typeof kind === 'object' ? kind.oneOf : kind === 'boolean' ? ['true', 'false'] : undefined;
      const value = kind === 'boolean' ? 'bool' : kind === 'targets' ? 'list' : typeof kind === 'object' || kind === 'backend' ? 'name' : 'x';
      const fallback = DEFAULT_CONFIG[key];
      return { name: kebab(key), value, description: TEACHER_KEYS[key], default: Array.isArray(fallback) ? fallback.join(',') : String(fallback), choices };
    }),
    ...RUN_OPTIONS.map((o) => (o.name === 'run-dir' ? { ...o, default: 'runs/default' } : o)),
  ],
  examples: [
    'almora train --task teacher',
    'almora train --task teacher --steps 200 --method auto --epsilon 1e-3 --run-dir runs/long',
    'almora train --task teacher --backend wasm --length 16384',
  ],
};

/** Every command, in the order `almora --help` lists them. */
export const COMMANDS: readonly CommandSpec[] = [FINETUNE_COMMAND, TEACHER_COMMAND, PRETRAIN_COMMAND, GENERATE_COMMAND];
