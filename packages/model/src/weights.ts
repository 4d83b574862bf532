import { assertFinite, type DType, DTypeError, full, InvalidArgumentError, Matrix, randomNormal, type Rng, ShapeError } from '@almora/tensor';
import type { Qwen3Config } from './config.js';

/**
 * A Qwen3 model's parameters under their Hugging Face state-dict keys
 * (`model.embed_tokens.weight`, `model.layers.N.self_attn.q_proj.weight`, `…q_norm.weight`,
 * `model.norm.weight`, `lm_head.weight`, …), one matrix per key: linear weights in torch.nn.Linear
 * orientation (out×in), the embedding vocab×hidden, and every 1-D tensor (the RMSNorm weights) as
 * a 1×n row. With `tie_word_embeddings` there is no `lm_head.weight`: the embedding is the head,
 * as in the model.safetensors transformers saves.
 */
export type Qwen3Weights = Record<string, Matrix>;

/** PEFT's `target_modules` names of Qwen3's linear maps. */
export const QWEN3_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

/** One of {@link QWEN3_MODULES}. */
export type Qwen3Module = (typeof QWEN3_MODULES)[number];

const ATTENTION_MODULES: readonly Qwen3Module[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];

/** The module's path in the model, `model.layers.N.self_attn.q_proj` or `model.layers.N.mlp.gate_proj`: its weight is the path + `.weight`, and PEFT's adapter keys are built on it. */
export function qwen3ModulePath(layer: number, module: Qwen3Module): string {
  return `model.layers.${layer}.${ATTENTION_MODULES.includes(module) ? 'self_attn' : 'mlp'}.${module}`;
}

/** The parameters of one decoder layer, checked, under short names. */
export interface LayerWeights {
  /** Linear weights (out×in) by module. */
  linear: Record<Qwen3Module, Matrix>;
  /** `q_norm.weight`, 1×head_dim. */
  q_norm: Matrix;
  /** `k_norm.weight`, 1×head_dim. */
  k_norm: Matrix;
  /** `input_layernorm.weight`, 1×hidden. */
  input_layernorm: Matrix;
  /** `post_attention_layernorm.weight`, 1×hidden. */
  post_attention_layernorm: Matrix;
}

/** Every parameter checked and arranged for the forward pass. */
export interface ModelWeights {
  /** Their dtype. */
  dtype: DType;
  /** `model.embed_tokens.weight`, vocab×hidden. */
  embed: Matrix;
  /** The decoder layers in order. */
  layers: LayerWeights[];
  /** `model.norm.weight`, 1×hidden. */
  norm: Matrix;
  /** `lm_head.weight`, or the embedding when tied. */
  head: Matrix;
}

/**
 * Every state-dict key of the model and its torch shape ([out, in] for a linear weight or the
 * embedding, [n] for an RMSNorm weight, stored here as 1×n), in the order transformers lists them.
 */
export function qwen3StateDictShapes(config: Qwen3Config): Record<string, number[]> {
  const { hidden_size: hidden, intermediate_size: inner, vocab_size: vocab, head_dim: dh } = config;
  const q = config.num_attention_heads * dh;
  const kv = config.num_key_value_heads * dh;
  const linear: Record<Qwen3Module, number[]> = {
    q_proj: [q, hidden],
    k_proj: [kv, hidden],
    v_proj: [kv, hidden],
    o_proj: [hidden, q],
    gate_proj: [inner, hidden],
    up_proj: [inner, hidden],
    down_proj: [hidden, inner],
  };
  const shapes: Record<string, number[]> = { 'model.embed_tokens.weight': [vocab, hidden] };
  for (let l = 0; l < config.num_hidden_layers; l++) {
    for (const module of ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const) shapes[`${qwen3ModulePath(l, module)}.weight`] = linear[module];
    shapes[`model.layers.${l}.self_attn.q_norm.weight`] = [dh];
    shapes[`model.layers.${l}.self_attn.k_norm.weight`] = [dh];
    for (const module of ['gate_proj', 'up_proj', 'down_proj'] as const) shapes[`${qwen3ModulePath(l, module)}.weight`] = linear[module];
    shapes[`model.layers.${l}.input_layernorm.weight`] = [hidden];
    shapes[`model.layers.${l}.post_attention_layernorm.weight`] = [hidden];
  }
  shapes['model.norm.weight'] = [hidden];
  if (!config.tie_word_embeddings) shapes['lm_head.weight'] = [vocab, hidden];
  return shapes;
}

/** A torch shape as the matrix that holds it: [out, in] as out×in, [n] as 1×n. */
function matrixShape(shape: readonly number[]): [number, number] {
  return shape.length === 1 ? [1, shape[0]] : [shape[0], shape[1]];
}

/** Options of {@link initQwen3Weights}. */
export interface InitOptions {
  /** Element type of every parameter; default float64. */
  dtype?: DType;
}

/**
 * Fresh parameters as transformers initialises a `Qwen3ForCausalLM`: every linear weight and the
 * embedding normal(0, initializer_range), every RMSNorm weight ones, drawn from `rng` in state-dict
 * order (so one seed always gives one model).
 */
export function initQwen3Weights(config: Qwen3Config, rng: Rng, options: InitOptions = {}): Qwen3Weights {
  const dtype = options.dtype ?? 'float64';
  const weights: Qwen3Weights = {};
  for (const [key, shape] of Object.entries(qwen3StateDictShapes(config))) {
    const [rows, cols] = matrixShape(shape);
    weights[key] = shape.length === 1 ? full(rows, cols, 1, { dtype }) : randomNormal(rows, cols, rng, { dtype, std: config.initializer_range });
  }
  return weights;
}

/** Whether a value looks like a {@link Matrix} (a class instance, or one from another copy of @almora/tensor). */
export function isMatrix(m: unknown): m is Matrix {
  return m instanceof Matrix || (typeof m === 'object' && m !== null && typeof (m as Matrix).rows === 'number' && (m as Matrix).data !== undefined);
}

/** Whether two matrices hold the same values (the tied head given as its own key). */
function sameValues(a: Matrix, b: Matrix): boolean {
  if (a === b) return true;
  if (a.rows !== b.rows || a.cols !== b.cols) return false;
  for (let i = 0; i < a.rows; i++)
    for (let j = 0; j < a.cols; j++) if (a.data[a.offset + i * a.stride + j] !== b.data[b.offset + i * b.stride + j]) return false;
  return true;
}

/**
 * Checks every key, shape, dtype and value against the config and arranges the parameters for the
 * forward pass. A missing or unknown key, a wrong shape (an in×out weight included, unless square),
 * mixed dtypes or a non-finite value is a typed error naming the key. With tied embeddings an
 * `lm_head.weight` is accepted only when it equals the embedding (a `state_dict()` lists both).
 */
export function checkWeights(config: Qwen3Config, weights: Qwen3Weights): ModelWeights {
  if (typeof weights !== 'object' || weights === null) throw new InvalidArgumentError('weights must be an object of state-dict keys');
  const shapes = qwen3StateDictShapes(config);
  const embed = weights['model.embed_tokens.weight'];
  const dtype = isMatrix(embed) ? embed.dtype : 'float64';
  for (const [key, shape] of Object.entries(shapes)) {
    const m = weights[key];
    if (!isMatrix(m)) throw new InvalidArgumentError(`weights["${key}"] is missing or not a matrix`);
    const [rows, cols] = matrixShape(shape);
    if (m.rows !== rows || m.cols !== cols)
      throw new ShapeError(
        `weights["${key}"] is ${m.rows}×${m.cols} but the config needs ${rows}×${cols} (torch shape [${shape.join(', ')}]${shape.length === 2 ? ', out×in' : ', a 1×n row'})`,
      );
    if (m.dtype !== dtype) throw new DTypeError(`weights["${key}"] is ${m.dtype} but model.embed_tokens.weight is ${dtype}`);
    assertFinite(m, `weights["${key}"]`);
  }
  for (const key of Object.keys(weights)) {
    if (key in shapes) continue;
    if (key === 'lm_head.weight' && config.tie_word_embeddings) {
      if (!isMatrix(weights[key]) || !sameValues(weights[key], embed))
        throw new InvalidArgumentError(
          'weights["lm_head.weight"] differs from model.embed_tokens.weight but config.tie_word_embeddings is true: untie them in the config, or leave lm_head.weight out',
        );
      continue;
    }
    throw new InvalidArgumentError(
      `weights has the unknown key "${key}" (a ${config.num_hidden_layers}-layer Qwen3 has ${Object.keys(shapes).length} keys: model.embed_tokens.weight, model.layers.N.…, model.norm.weight${config.tie_word_embeddings ? '' : ', lm_head.weight'})`,
    );
  }
  const layers = Array.from({ length: config.num_hidden_layers }, (_, l): LayerWeights => {
    const linear = {} as Record<Qwen3Module, Matrix>;
    for (const module of QWEN3_MODULES) linear[module] = weights[`${qwen3ModulePath(l, module)}.weight`];
    const at = (name: string) => weights[`model.layers.${l}.${name}.weight`];
    return {
      linear,
      q_norm: at('self_attn.q_norm'),
      k_norm: at('self_attn.k_norm'),
      input_layernorm: at('input_layernorm'),
      post_attention_layernorm: at('post_attention_layernorm'),
    };
  });
  return { dtype, embed, layers, norm: weights['model.norm.weight'], head: config.tie_word_embeddings ? embed : weights['lm_head.weight'] };
}
