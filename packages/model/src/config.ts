import { InvalidArgumentError } from '@almora/tensor';

/**
 * A Qwen3 model's shape, in the field names of Hugging Face's `Qwen3Config` (a model's
 * `config.json`): a `config.json` read with `JSON.parse` and passed to {@link qwen3Config} gives
 * one, HF's defaults filled in where a field is missing.
 *
 * Only what this package computes is supported: SiLU (`hidden_act: 'silu'`), no attention biases,
 * the default rotary embedding (no `rope_scaling`), no sliding window, no dropout. A config asking
 * for anything else is refused by {@link qwen3Config}, never silently run as something else.
 */
export interface Qwen3Config {
  /** Always 'qwen3'. */
  model_type: 'qwen3';
  /** Rows of `model.embed_tokens.weight` (and of `lm_head.weight`). */
  vocab_size: number;
  /** Width of the residual stream, D. */
  hidden_size: number;
  /** Width of the SwiGLU MLP (rows of `gate_proj` and `up_proj`). */
  intermediate_size: number;
  /** Number of decoder layers. */
  num_hidden_layers: number;
  /** Query heads H; `q_proj` has H·head_dim rows. */
  num_attention_heads: number;
  /** Key/value heads; `k_proj` and `v_proj` have this many·head_dim rows. Divides num_attention_heads (grouped-query attention). */
  num_key_value_heads: number;
  /** Width of one head, d_h (even: rotary pairs column j with j + d_h/2). */
  head_dim: number;
  /** Activation of the MLP's gate; only 'silu'. */
  hidden_act: 'silu';
  /** Longest sequence a forward pass accepts (positions 0 … max_position_embeddings − 1). */
  max_position_embeddings: number;
  /** Standard deviation of the normal initialisation of every linear and embedding weight. */
  initializer_range: number;
  /** ε of every RMSNorm: x / √(mean(x²) + ε) · weight. */
  rms_norm_eps: number;
  /** When true, `lm_head` is `model.embed_tokens.weight` and the state dict has no `lm_head.weight`. */
  tie_word_embeddings: boolean;
  /** Base θ of the rotary frequencies θ^(−2i/head_dim). */
  rope_theta: number;
  /** Only null: scaled rotary embeddings (YaRN, linear, dynamic) are not supported. */
  rope_scaling: null;
  /** Only false: q, k, v and o projections without biases. */
  attention_bias: false;
  /** Only false: full causal attention in every layer. */
  use_sliding_window: false;
  /** Only 0: no dropout on the attention probabilities. */
  attention_dropout: 0;
}

/**
 * Hugging Face's defaults for every field `Qwen3Config.__init__` sets (transformers 4.51+), used
 * where a config.json leaves one out: `head_dim` 128, `num_key_value_heads` 32 (the signature's
 * default; only an explicit null means `num_attention_heads`).
 */
const HF_DEFAULTS: Qwen3Config = {
  model_type: 'qwen3',
  vocab_size: 151936,
  hidden_size: 4096,
  intermediate_size: 22016,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  head_dim: 128,
  hidden_act: 'silu',
  max_position_embeddings: 32768,
  initializer_range: 0.02,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  rope_theta: 10000,
  rope_scaling: null,
  attention_bias: false,
  use_sliding_window: false,
  attention_dropout: 0,
};

/**
 * A tiny Qwen3 for tests, examples and byte-level experiments: 256 tokens (one per byte), 2 layers
 * of width 64, 4 query heads sharing 2 key/value heads (grouped-query attention, as every
 * released Qwen3) of width 16, an MLP of 192, tied embeddings (as Qwen3-0.6B), positions up to
 * 4,096 — 115,072 parameters. Every field is Hugging Face's, so
 * `Qwen3ForCausalLM(Qwen3Config(**QWEN3_TINY))` in transformers is the same model.
 */
export const QWEN3_TINY: Readonly<Qwen3Config> = Object.freeze({
  ...HF_DEFAULTS,
  vocab_size: 256,
  hidden_size: 64,
  intermediate_size: 192,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  max_position_embeddings: 4096,
  tie_word_embeddings: true,
});

function positiveInteger(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
    throw new InvalidArgumentError(`config.${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

function positiveNumber(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw new InvalidArgumentError(`config.${name} must be a finite number > 0, got ${JSON.stringify(value)}`);
  return value;
}

function boolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new InvalidArgumentError(`config.${name} must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

function only<V>(value: unknown, allowed: V, name: string, why: string): V {
  if (value !== allowed) throw new InvalidArgumentError(`config.${name} is ${JSON.stringify(value)}; only ${JSON.stringify(allowed)} is supported (${why})`);
  return allowed;
}

/**
 * The rotary base from `rope_theta`, or from transformers 5's `rope_parameters` ({ rope_type:
 * 'default', rope_theta }) where a config.json has that instead.
 */
function ropeTheta(json: Record<string, unknown>): number {
  const parameters = json.rope_parameters;
  if (parameters === undefined || parameters === null) return positiveNumber(json.rope_theta ?? HF_DEFAULTS.rope_theta, 'rope_theta');
  if (typeof parameters !== 'object') throw new InvalidArgumentError(`config.rope_parameters must be an object, got ${JSON.stringify(parameters)}`);
  const { rope_type: type, rope_theta: theta, ...rest } = parameters as Record<string, unknown>;
  if (type !== undefined && type !== 'default')
    throw new InvalidArgumentError(`config.rope_parameters.rope_type is ${JSON.stringify(type)}; only 'default' rotary embeddings are supported`);
  if (Object.keys(rest).length > 0)
    throw new InvalidArgumentError(`config.rope_parameters has ${Object.keys(rest).join(', ')}; only rope_type 'default' and rope_theta are supported`);
  if (json.rope_theta !== undefined && theta !== undefined && json.rope_theta !== theta)
    throw new InvalidArgumentError(`config.rope_theta (${String(json.rope_theta)}) and config.rope_parameters.rope_theta (${String(theta)}) disagree`);
  return positiveNumber(theta ?? json.rope_theta ?? HF_DEFAULTS.rope_theta, 'rope_parameters.rope_theta');
}

/**
 * A checked {@link Qwen3Config} from a parsed `config.json` (or any object with its field names):
 * Hugging Face's default for every missing field, every size a positive integer, head_dim even,
 * num_key_value_heads dividing num_attention_heads, ε and θ positive. Fields that would change the
 * computation to something this package does not implement (another activation, attention
 * biases, scaled rotary embeddings, a sliding window, dropout, another model_type) are refused with
 * an `InvalidArgumentError` naming the field; fields that do not change it (architectures,
 * torch_dtype, bos_token_id, use_cache, …) are ignored.
 */
export function qwen3Config(json: Readonly<Partial<Qwen3Config>> | Readonly<Record<string, unknown>>): Qwen3Config {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new InvalidArgumentError('a Qwen3 config must be an object (a parsed config.json)');
  const c = json as Record<string, unknown>;
  const field = <K extends keyof typeof HF_DEFAULTS>(name: K): unknown => c[name] ?? HF_DEFAULTS[name];
  const heads = positiveInteger(field('num_attention_heads'), 'num_attention_heads');
  const config: Qwen3Config = {
    model_type: only(field('model_type'), 'qwen3', 'model_type', 'this package implements Qwen3'),
    vocab_size: positiveInteger(field('vocab_size'), 'vocab_size'),
    hidden_size: positiveInteger(field('hidden_size'), 'hidden_size'),
    intermediate_size: positiveInteger(field('intermediate_size'), 'intermediate_size'),
    num_hidden_layers: positiveInteger(field('num_hidden_layers'), 'num_hidden_layers'),
    num_attention_heads: heads,
    // transformers: a missing field takes the signature's default (32); an explicit null means as many as the query heads.
    num_key_value_heads: positiveInteger(c.num_key_value_heads === null ? heads : field('num_key_value_heads'), 'num_key_value_heads'),
    head_dim: positiveInteger(field('head_dim'), 'head_dim'),
    hidden_act: only(field('hidden_act'), 'silu', 'hidden_act', "Qwen3's MLP is SwiGLU"),
    max_position_embeddings: positiveInteger(field('max_position_embeddings'), 'max_position_embeddings'),
    initializer_range: positiveNumber(field('initializer_range'), 'initializer_range'),
    rms_norm_eps: positiveNumber(field('rms_norm_eps'), 'rms_norm_eps'),
    tie_word_embeddings: boolean(field('tie_word_embeddings'), 'tie_word_embeddings'),
    rope_theta: ropeTheta(c),
    rope_scaling: only(field('rope_scaling'), null, 'rope_scaling', 'scaled rotary embeddings are not implemented'),
    attention_bias: only(field('attention_bias'), false, 'attention_bias', 'projections without biases'),
    use_sliding_window: only(field('use_sliding_window'), false, 'use_sliding_window', 'every layer attends to every earlier position'),
    attention_dropout: only(field('attention_dropout'), 0, 'attention_dropout', 'dropout is not implemented'),
  };
  if (config.head_dim % 2 !== 0)
    throw new InvalidArgumentError(`config.head_dim must be even (rotary pairs column j with j + head_dim/2), got ${config.head_dim}`);
  if (config.num_attention_heads % config.num_key_value_heads !== 0) {
    throw new InvalidArgumentError(
      `config.num_key_value_heads (${config.num_key_value_heads}) must divide num_attention_heads (${config.num_attention_heads}): each key/value head serves a group of query heads`,
    );
  }
  return config;
}
