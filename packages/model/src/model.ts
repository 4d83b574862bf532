import type { AttentionOptions, LoraWeights } from '@almora/lora';
import { InvalidArgumentError, matmul, type Matrix, zeros } from '@almora/tensor';
import { splitRows, tokenBatch } from './batch.js';
import { type Qwen3Config, qwen3Config } from './config.js';
import { crossEntropy, crossEntropyBackward } from './cross-entropy.js';
import { decoderLayer, type LayerResult, type Qwen3LayerReport } from './layer.js';
import { checkLora, type Qwen3Lora } from './lora.js';
import { rmsNorm, rmsNormBackward } from './rms-norm.js';
import { rotaryTables } from './rotary.js';
import { attentionBlocks, checkShiftedSparse, type ShiftedSparseAttention } from './shifted-sparse.js';
import { checkWeights, type Qwen3Weights } from './weights.js';

/** A Qwen3 causal language model: its config, its parameters by state-dict key, and optional LoRA adapters. */
export interface Qwen3Model {
  /** The shape, in Hugging Face's config.json names (see {@link qwen3Config}). */
  config: Qwen3Config;
  /** Every parameter under its Hugging Face state-dict key. */
  weights: Qwen3Weights;
  /** LoRA on some of the linear maps of every layer, PEFT-style; without it the model is frozen (and `weightGradients` trains it all). */
  lora?: Qwen3Lora;
}

/** Options of {@link qwen3ForCausalLM}: the attention core's (method, epsilon, …, the same for every layer), plus the model's own. */
export interface Qwen3Options extends AttentionOptions {
  /**
   * Hugging Face's `labels`: one per input id (the same shape as the input), shifted inside so
   * that label t + 1 is the target of position t; −100 (`IGNORE_INDEX`) leaves a position out
   * of the loss (a prompt, padding). Default: the input ids, plain next-token prediction.
   */
  labels?: readonly number[] | readonly (readonly number[])[];
  /** Also return ∂loss/∂(every base parameter), by state-dict key, for pretraining or full fine-tuning; default false. */
  weightGradients?: boolean;
  /**
   * The norm control (the paper's Remark 5.2): every q_norm and k_norm gain is clamped to [−G, G]
   * in the forward pass (and gets no gradient where clamped, torch.clamp's rule), so every head's Γ
   * is at most G·head_dim^¼ whatever the weights, the bound each layer's report states as
   * `gammaBound`. Gains inside the cap are untouched, so a checkpoint within it computes exactly
   * as in transformers. Default: no cap.
   */
  qkNormCap?: number;
  /**
   * LongLoRA's shifted sparse attention (S²-Attn) with groups of `groupSize` tokens, for training
   * on long sequences: half of the query heads attend within groups, half within groups shifted by
   * half a group, without wrap-around (see {@link ShiftedSparseAttention}). Every group runs through
   * the attention core as one of its sequences, so `method` and the report apply; each layer's
   * report lists the groups as `blocks`. Default: full causal attention (use it to evaluate).
   */
  shiftedSparseAttention?: ShiftedSparseAttention;
}

/** What {@link Qwen3Result.backward} returns. */
export interface Qwen3Gradients {
  /** ∂loss/∂lora_A (r×in) and ∂loss/∂lora_B (out×r) of every adapter, by module path as in {@link Qwen3Lora.adapters}. */
  lora: Record<string, LoraWeights>;
  /** ∂loss/∂(every parameter) by state-dict key, in the parameters' shapes, when `weightGradients` was asked for. With tied embeddings the embedding's gradient includes the head's. */
  weights: Qwen3Weights | undefined;
}

/** The forward result of {@link qwen3ForCausalLM}, in the vjp style. */
export interface Qwen3Result<L> {
  /** Logits, L×vocab per sequence (an array for a batch). */
  logits: L;
  /** Mean cross-entropy of next-token prediction over every position with a target in the batch (transformers' `loss`). */
  loss: number;
  /** How many positions the loss averages over. */
  tokens: number;
  /**
   * transformers' `output_hidden_states`: num_hidden_layers + 1 matrices — the embedding output
   * (the input of layer 0), then each decoder layer's output, the last one before the final norm
   * (`norm`, then `lm_head`, gives `logits`). Each has one row per token of the batch, the
   * sequences one after another (as the model holds them, not split per sequence), and hidden_size
   * columns. They are the forward's own matrices, which `backward()` reads: do not modify them.
   */
  hiddenStates: Matrix[];
  /** For every decoder layer: the attention core's report (each head's Γ, path, reason) and the Γ bound of its q_norm/k_norm. */
  layers: Qwen3LayerReport[];
  /** The gradient of `loss`: every adapter's and, when asked for, every parameter's. Call it once. */
  backward(): Qwen3Gradients;
  /** Releases what the attention cores kept without computing gradients (inference). */
  dispose(): void;
}

function checkOptions(
  options: Qwen3Options,
  config: Qwen3Config,
): { attention: AttentionOptions; labels: Qwen3Options['labels']; cap: number | undefined; weightGradients: boolean; s2: ShiftedSparseAttention | undefined } {
  const { labels, weightGradients = false, qkNormCap: cap, shiftedSparseAttention, ...attention } = options;
  const s2 = checkShiftedSparse(shiftedSparseAttention, config.num_attention_heads);
  if (typeof weightGradients !== 'boolean') throw new InvalidArgumentError(`weightGradients must be true or false, got ${String(weightGradients)}`);
  if (cap !== undefined && !(Number.isFinite(cap) && cap > 0)) throw new InvalidArgumentError(`qkNormCap must be finite and > 0, got ${cap}`);
  for (const name of ['heads', 'causal', 'beta']) {
    if (name in attention) throw new InvalidArgumentError(`${name} is set by the model (num_attention_heads, causal, 1/√head_dim), not an option`);
  }
  return { attention, labels, cap, weightGradients, s2 };
}

/**
 * A Qwen3 causal language model (Hugging Face's `Qwen3ForCausalLM`) on token ids — one sequence,
 * or an array of sequences of any lengths (a batch without padding) — forward now, backward on
 * demand:
 *
 *     h = embed_tokens[ids];  h = layer_N(… layer_0(h));  logits = lm_head(norm(h))   (every h: `hiddenStates`)
 *     loss = mean cross-entropy of each position's logits against the next id (or `labels`)
 *
 * Every layer's attention runs through @almora/lora's attention core after q_norm/k_norm and rotary,
 * so each head of each layer takes 'exact', 'fast' or 'auto' (`options.method`) with its report.
 * `backward()` gives every LoRA adapter's gradient (PEFT's lora_A, lora_B) and, with
 * `weightGradients`, every base parameter's. The config is checked with {@link qwen3Config}, the
 * weights and adapters against it; anything wrong is a typed error naming what.
 *
 * @example
 * ```ts
 * import { initQwen3Adapters, initQwen3Weights, QWEN3_TINY, qwen3ForCausalLM } from '@almora/model';
 * import { Rng } from '@almora/tensor';
 *
 * const rng = new Rng(1);
 * const config = { ...QWEN3_TINY, max_position_embeddings: 512 };
 * const weights = initQwen3Weights(config, rng);
 * const lora = initQwen3Adapters(config, { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] }, rng);
 * const ids = Array.from({ length: 256 }, (_, t) => 97 + (t % 26)); // bytes of "abc…z" repeated
 * const { loss, layers, backward } = qwen3ForCausalLM({ config, weights, lora }, ids, { method: 'auto' });
 * const { lora: grads } = backward();
 * console.log(loss, layers[0].attention.chosen, grads['model.layers.0.self_attn.q_proj'].lora_A.shape); // ≈ ln 256 at init, …, [ 4, 64 ]
 * ```
 */
export function qwen3ForCausalLM<I extends readonly number[] | readonly (readonly number[])[]>(
  model: Qwen3Model,
  inputIds: I,
  options: Qwen3Options = {},
): Qwen3Result<I extends readonly (readonly number[])[] ? Matrix[] : Matrix> {
  type Logits = I extends readonly (readonly number[])[] ? Matrix[] : Matrix;
  if (typeof model !== 'object' || model === null) throw new InvalidArgumentError('model must be { config, weights, lora? }');
  const config = qwen3Config(model.config);
  const weights = checkWeights(config, model.weights);
  const lora = checkLora(config, model.lora, weights.dtype);
  const { attention, labels, cap, weightGradients, s2 } = checkOptions(options, config);
  const batch = tokenBatch(config, inputIds, labels);
  const rotary = rotaryTables(batch.positions, config.head_dim, config.rope_theta);
  const blocks = attentionBlocks(batch.spans, config.num_attention_heads, s2);

  // The embedding: row t of h is embed_tokens[ids[t]].
  let h = zeros(batch.ids.length, config.hidden_size, { dtype: weights.dtype });
  batch.ids.forEach((id, t) => h.data.set(weights.embed.row(id), t * h.cols));
  const hiddenStates = [h];
  const layers: LayerResult[] = [];
  try {
    for (let l = 0; l < config.num_hidden_layers; l++) {
      const layer = decoderLayer(h, {
        config,
        index: l,
        weights: weights.layers[l],
        lora,
        rotary,
        blocks,
        shiftedSparse: s2 !== undefined,
        attention,
        qkNormCap: cap,
        weightGradients,
      });
      layers.push(layer);
      h = layer.output;
      hiddenStates.push(h);
    }
  } catch (error) {
    for (const layer of layers) layer.dispose();
    throw error;
  }
  const final = rmsNorm(h, weights.norm, config.rms_norm_eps);
  const logits = matmul(final.y, weights.head, { transposeB: true });
  const { loss, count } = crossEntropy(logits, batch.targets);
  let done = false;
  const release = () => {
    done = true;
    for (const layer of layers) layer.dispose();
  };

  function backward(): Qwen3Gradients {
    if (done) throw new InvalidArgumentError('backward was already called (or the result disposed): run the forward pass again');
    done = true;
    const grads: Qwen3Gradients = { lora: {}, weights: weightGradients ? {} : undefined };
    const dz = crossEntropyBackward(logits, batch.targets, count);
    const dFinal = matmul(dz, weights.head);
    const normBack = rmsNormBackward(h, weights.norm, final.inverseRms, dFinal);
    let dh = normBack.dx;
    const layerWeights: Record<string, Matrix>[] = [];
    try {
      for (let l = layers.length - 1; l >= 0; l--) {
        const back = layers[l].backward(dh);
        dh = back.dh;
        Object.assign(grads.lora, back.lora);
        layerWeights[l] = back.weights;
      }
    } catch (error) {
      // A layer that threw (a non-finite gradient) leaves the ones below it holding their attention state.
      for (const layer of layers) layer.dispose();
      throw error;
    }
    if (grads.weights) {
      // The embedding's gradient: every row of ∂h₀ added to its token's row (and the tied head's ∂zᵀ·x).
      const dEmbed = config.tie_word_embeddings
        ? matmul(dz, final.y, { transposeA: true })
        : zeros(config.vocab_size, config.hidden_size, { dtype: weights.dtype });
      batch.ids.forEach((id, t) => {
        const row = dEmbed.row(id);
        const source = dh.row(t);
        for (let j = 0; j < row.length; j++) row[j] += source[j];
      });
      grads.weights['model.embed_tokens.weight'] = dEmbed;
      for (const own of layerWeights) Object.assign(grads.weights, own);
      grads.weights['model.norm.weight'] = normBack.dgain;
      if (!config.tie_word_embeddings) grads.weights['lm_head.weight'] = matmul(dz, final.y, { transposeA: true });
    }
    return grads;
  }

  return {
    logits: (batch.single ? logits : splitRows(logits, batch.spans)) as Logits,
    loss,
    tokens: count,
    hiddenStates,
    layers: layers.map((layer) => layer.report),
    backward,
    dispose: () => {
      if (!done) release();
    },
  };
}
