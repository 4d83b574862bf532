import { add, InvalidArgumentError, matmul, type Matrix, type Rng, zeros } from '@almora/tensor';
import { type Qwen3Config, qwen3Config } from './config.js';
import { capped } from './layer.js';
import { linearForward } from './linear.js';
import { type CheckedLora, checkLora } from './lora.js';
import type { Qwen3Model } from './model.js';
import { rmsNorm } from './rms-norm.js';
import { rotary, rotaryTables } from './rotary.js';
import { swiglu } from './swiglu.js';
import { checkWeights, type LayerWeights, type ModelWeights, type Qwen3Module, qwen3ModulePath } from './weights.js';

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** How many tokens to generate at most (a non-negative integer); prompt + maxNewTokens must fit max_position_embeddings. */
  maxNewTokens: number;
  /** Softmax temperature of the sampling; 0 (the default) is greedy: the argmax, the first of equal logits. */
  temperature?: number;
  /** Sample only among the `topK` largest logits (transformers' `top_k`; ties broken by the lower id); a positive integer, above the vocabulary it keeps all. Ignored when greedy. */
  topK?: number;
  /** The random stream of the sampling; required when temperature > 0 (one `rng.next()` per token). */
  rng?: Rng;
  /** The q_norm/k_norm gain cap, as `Qwen3Options.qkNormCap`: give the one the model was trained with. */
  qkNormCap?: number;
  /** Ids that end the generation: the first one generated is kept as the last id and `stopped` is 'stop'. */
  stopIds?: readonly number[];
}

/** What {@link generate} returns. */
export interface GenerateResult {
  /** The new tokens only (the prompt not repeated), a stop id included. */
  ids: number[];
  /** 'stop' when a stop id was generated, 'length' when maxNewTokens were. */
  stopped: 'length' | 'stop';
}

/** Everything the decoder needs, checked once. */
interface Decoder {
  config: Qwen3Config;
  weights: ModelWeights;
  lora: CheckedLora;
  /** Each layer's q_norm and k_norm gains after the cap. */
  gains: { q: Matrix; k: Matrix }[];
}

/**
 * The KV cache: for every layer, the rotated keys (after k_norm and rotary) and the values of
 * every position so far, one row per position and key/value head side by side (KV·head_dim
 * columns), capacity rows allocated once; `length` positions are filled.
 */
interface KvCache {
  length: number;
  layers: { keys: Matrix; values: Matrix }[];
}

function checkId(id: unknown, vocab: number, what: string): void {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocab)
    throw new InvalidArgumentError(`${what} is ${String(id)}, not an id in [0, ${vocab})`);
}

function checkGenerate(model: Qwen3Model, promptIds: readonly number[], options: GenerateOptions): { decoder: Decoder; stop: Set<number> } {
  if (typeof model !== 'object' || model === null) throw new InvalidArgumentError('model must be { config, weights, lora? }');
  const config = qwen3Config(model.config);
  const weights = checkWeights(config, model.weights);
  const lora = checkLora(config, model.lora, weights.dtype);
  if (typeof options !== 'object' || options === null)
    throw new InvalidArgumentError('options must be { maxNewTokens, temperature?, topK?, rng?, qkNormCap?, stopIds? }');
  const { maxNewTokens, temperature = 0, topK, rng, qkNormCap: cap, stopIds = [] } = options;
  if (!Array.isArray(promptIds) || promptIds.length === 0) throw new InvalidArgumentError('the prompt must be a non-empty array of token ids');
  promptIds.forEach((id, i) => checkId(id, config.vocab_size, `prompt token ${i}`));
  if (typeof maxNewTokens !== 'number' || !Number.isInteger(maxNewTokens) || maxNewTokens < 0)
    throw new InvalidArgumentError(`maxNewTokens must be a non-negative integer, got ${String(maxNewTokens)}`);
  if (promptIds.length + maxNewTokens > config.max_position_embeddings) {
    throw new InvalidArgumentError(
      `the prompt (${promptIds.length}) + maxNewTokens (${maxNewTokens}) exceeds max_position_embeddings = ${config.max_position_embeddings}`,
    );
  }
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0)
    throw new InvalidArgumentError(`temperature must be finite and ≥ 0, got ${String(temperature)}`);
  if (temperature > 0 && (typeof rng !== 'object' || rng === null || typeof rng.next !== 'function'))
    throw new InvalidArgumentError('temperature > 0 samples: give an rng (new Rng(seed) from @almora/tensor)');
  if (topK !== undefined && (typeof topK !== 'number' || !Number.isInteger(topK) || topK < 1))
    throw new InvalidArgumentError(`topK must be a positive integer, got ${String(topK)}`);
  if (cap !== undefined && !(typeof cap === 'number' && Number.isFinite(cap) && cap > 0))
    throw new InvalidArgumentError(`qkNormCap must be finite and > 0, got ${String(cap)}`);
  if (!Array.isArray(stopIds)) throw new InvalidArgumentError('stopIds must be an array of token ids');
  stopIds.forEach((id, i) => checkId(id, config.vocab_size, `stopIds[${i}]`));
  const gains = weights.layers.map((w) => ({ q: capped(w.q_norm, cap), k: capped(w.k_norm, cap) }));
  return { decoder: { config, weights, lora, gains }, stop: new Set(stopIds) };
}

/**
 * Exact causal attention of T new query rows (positions first … first + T − 1, already in the
 * cache) to every cached position up to their own: for query head h, key/value head ⌊h/groups⌋
 * (grouped-query attention without repeating the cache), o = softmax(β·q·Kᵀ)·V with
 * β = 1/√head_dim, the maximum subtracted. O(positions·head_dim) per row and head.
 */
function cachedAttention(q: Matrix, layer: KvCache['layers'][number], first: number, config: Qwen3Config): Matrix {
  const { head_dim: d, num_attention_heads: heads } = config;
  const groups = heads / config.num_key_value_heads;
  const beta = 1 / Math.sqrt(d);
  const { keys, values } = layer;
  const out = zeros(q.rows, q.cols, { dtype: q.dtype });
  const scores = new Float64Array(first + q.rows);
  const sum = new Float64Array(d);
  for (let t = 0; t < q.rows; t++) {
    const n = first + t + 1;
    for (let h = 0; h < heads; h++) {
      const qBase = q.offset + t * q.stride + h * d;
      const kvCol = Math.floor(h / groups) * d;
      let max = -Infinity;
      for (let j = 0; j < n; j++) {
        const kBase = keys.offset + j * keys.stride + kvCol;
        let s = 0;
        for (let i = 0; i < d; i++) s += q.data[qBase + i] * keys.data[kBase + i];
        scores[j] = beta * s;
        if (scores[j] > max) max = scores[j];
      }
      let total = 0;
      sum.fill(0);
      for (let j = 0; j < n; j++) {
        const p = Math.exp(scores[j] - max);
        total += p;
        const vBase = values.offset + j * values.stride + kvCol;
        for (let i = 0; i < d; i++) sum[i] += p * values.data[vBase + i];
      }
      const oBase = t * out.cols + h * d;
      for (let i = 0; i < d; i++) out.data[oBase + i] = sum[i] / total;
    }
  }
  return out;
}

/** Rows [at, at + x.rows) of the cache matrix set to x. */
function store(cache: Matrix, at: number, x: Matrix): void {
  for (let t = 0; t < x.rows; t++)
    cache.data.set(x.data.subarray(x.offset + t * x.stride, x.offset + t * x.stride + x.cols), cache.offset + (at + t) * cache.stride);
}

/**
 * One decoder layer on T new rows with the cache: the forward's layer (see `decoderLayer`) with
 * its attention over the cached keys and values, the new ones appended first.
 */
function cachedLayer(h: Matrix, decoder: Decoder, l: number, cache: KvCache): Matrix {
  const { config, lora } = decoder;
  const w: LayerWeights = decoder.weights.layers[l];
  const eps = config.rms_norm_eps;
  const linear = (x: Matrix, module: Qwen3Module) => linearForward(x, w.linear[module], lora.adapters.get(qwen3ModulePath(l, module))).y;
  const tables = rotaryTables(
    Array.from({ length: h.rows }, (_, t) => cache.length + t),
    config.head_dim,
    config.rope_theta,
  );
  const a = rmsNorm(h, w.input_layernorm, eps).y;
  const [q, k, v] = [linear(a, 'q_proj'), linear(a, 'k_proj'), linear(a, 'v_proj')];
  const qr = rotary(rmsNorm(q, decoder.gains[l].q, eps).y, tables);
  const kr = rotary(rmsNorm(k, decoder.gains[l].k, eps).y, tables);
  store(cache.layers[l].keys, cache.length, kr);
  store(cache.layers[l].values, cache.length, v);
  const h1 = add(h, linear(cachedAttention(qr, cache.layers[l], cache.length, config), 'o_proj'));
  const b = rmsNorm(h1, w.post_attention_layernorm, eps).y;
  return add(h1, linear(swiglu(linear(b, 'gate_proj'), linear(b, 'up_proj')), 'down_proj'));
}

/** Runs the ids (the next positions) through every layer, appending to the cache; the logits of the last one, 1×vocab. */
function decode(decoder: Decoder, cache: KvCache, ids: readonly number[]): Matrix {
  const { config, weights } = decoder;
  let h = zeros(ids.length, config.hidden_size, { dtype: weights.dtype });
  ids.forEach((id, t) => h.data.set(weights.embed.row(id), t * h.cols));
  for (let l = 0; l < config.num_hidden_layers; l++) h = cachedLayer(h, decoder, l, cache);
  cache.length += ids.length;
  const last = zeros(1, h.cols, { dtype: h.dtype });
  last.data.set(h.row(h.rows - 1));
  return matmul(rmsNorm(last, weights.norm, config.rms_norm_eps).y, weights.head, { transposeB: true });
}

/** The argmax of a row, the first of equal maxima. */
function argmax(logits: Matrix): number {
  let best = 0;
  for (let j = 1; j < logits.cols; j++) if (logits.data[logits.offset + j] > logits.data[logits.offset + best]) best = j;
  return best;
}

/** One draw from softmax(logits/temperature) over the topK largest logits (all without topK). */
function sample(logits: Matrix, temperature: number, topK: number | undefined, rng: Rng): number {
  const ids = Array.from({ length: logits.cols }, (_, j) => j);
  const value = (j: number) => logits.data[logits.offset + j] / temperature;
  ids.sort((x, y) => value(y) - value(x) || x - y);
  const kept = ids.slice(0, Math.min(topK ?? ids.length, ids.length));
  const max = value(kept[0]);
  const weights = kept.map((j) => Math.exp(value(j) - max));
  let u = rng.next() * weights.reduce((s, p) => s + p, 0);
  for (let n = 0; n < kept.length; n++) {
    u -= weights[n];
    if (u < 0) return kept[n];
  }
  return kept[kept.length - 1];
}

/**
 * {@link generate}, also returning the logits each new token was chosen from (1×vocab each), for
 * the tests that hold the cache against the full forward.
 */
export function generateWithLogits(model: Qwen3Model, promptIds: readonly number[], options: GenerateOptions): GenerateResult & { logits: Matrix[] } {
  const { decoder, stop } = checkGenerate(model, promptIds, options);
  const { maxNewTokens, temperature = 0, topK, rng } = options;
  const result: GenerateResult & { logits: Matrix[] } = { ids: [], stopped: 'length', logits: [] };
  if (maxNewTokens === 0) return result;
  const { config, weights } = decoder;
  const capacity = promptIds.length + maxNewTokens;
  const width = config.num_key_value_heads * config.head_dim;
  const cache: KvCache = {
    length: 0,
    layers: weights.layers.map(() => ({ keys: zeros(capacity, width, { dtype: weights.dtype }), values: zeros(capacity, width, { dtype: weights.dtype }) })),
  };
  let logits = decode(decoder, cache, promptIds);
  for (;;) {
    result.logits.push(logits);
    const id = temperature === 0 ? argmax(logits) : sample(logits, temperature, topK, rng!);
    result.ids.push(id);
    if (stop.has(id)) {
      result.stopped = 'stop';
      return result;
    }
    if (result.ids.length === maxNewTokens) return result;
    logits = decode(decoder, cache, [id]);
  }
}

/**
 * Text generation with a KV cache (transformers' `model.generate` with `use_cache`, greedy or
 * sampled): the prompt runs once through every layer, each layer keeping the rotated keys and the
 * values of every position (per key/value head, grouped-query attention not repeated); then each
 * new token is one row through every layer, its query attending exactly (softmax, causal) to every
 * cached position — O(position·hidden) per token and layer, no full forward. Adapters in
 * `model.lora` are applied as in `qwen3ForCausalLM`, q_norm/k_norm (capped by `qkNormCap`)
 * and rotary at each token's position likewise, so the logits each token is chosen from are the
 * full forward's at that position (to rounding).
 *
 * Greedy (temperature 0, the default) takes the argmax; otherwise one draw of `rng` per token
 * from softmax(logits/temperature), among the `topK` largest if given. Stops after maxNewTokens or
 * at the first of `stopIds`. Anything invalid (an empty prompt, an id outside the vocabulary,
 * prompt + maxNewTokens beyond max_position_embeddings, a negative temperature, sampling without
 * rng, a bad topK) is an `InvalidArgumentError`.
 *
 * @example
 * ```ts
 * import { generate, initQwen3Weights, QWEN3_TINY } from '@almora/model';
 * import { Rng } from '@almora/tensor';
 *
 * const config = { ...QWEN3_TINY, max_position_embeddings: 128 };
 * const weights = initQwen3Weights(config, new Rng(1)); // untrained: the text is noise, the mechanics are not
 * const { ids, stopped } = generate({ config, weights }, [104, 105], { maxNewTokens: 20, temperature: 0.8, topK: 40, rng: new Rng(2) });
 * console.log(ids.length, stopped); // 20 'length': the generated ids, without the prompt
 * ```
 */
export function generate(model: Qwen3Model, promptIds: readonly number[], options: GenerateOptions): GenerateResult {
  const { ids, stopped } = generateWithLogits(model, promptIds, options);
  return { ids, stopped };
}
