import { attention, type AttentionOptions, type AttentionReport, type LoraWeights } from '@almora/lora';
import { add, addInto, map, type Matrix, maxAbs } from '@almora/tensor';
import type { Qwen3Config } from './config.js';
import { repeatKv, sumKv } from './kv-heads.js';
import { linearBackward, linearForward, type LinearState } from './linear.js';
import type { CheckedLora } from './lora.js';
import { rmsNorm, rmsNormBackward } from './rms-norm.js';
import { rotary, type RotaryTables } from './rotary.js';
import { type AttentionBlock, type CoreBlock, joinBlocks, splitBlocks } from './shifted-sparse.js';
import { swiglu, swigluBackward } from './swiglu.js';
import { type LayerWeights, type Qwen3Module, qwen3ModulePath } from './weights.js';

/** What the attention core decided in one decoder layer, and the Γ bound its q_norm/k_norm gains give. */
export interface Qwen3LayerReport {
  /** Index of the layer. */
  layer: number;
  /** The attention core's report: every head of every sequence, its Γ, path and reason. */
  attention: AttentionReport;
  /**
   * An upper bound on every head's Γ = max(‖√β·Q_h‖∞, ‖√β·K_h‖∞) that holds by construction:
   * q_norm and k_norm leave each head's query and key with 2-norm ≤ max|gain|·√head_dim, rotary
   * keeps 2-norms, and β = 1/√head_dim, so Γ ≤ max|gain|·head_dim^¼ (the largest q_norm/k_norm gain
   * after the cap). With `qkNormCap` = G it is at most G·head_dim^¼ whatever the weights are.
   */
  gammaBound: number;
  /**
   * With `shiftedSparseAttention`: the attention core's sequences, the groups of each sequence and
   * the query heads that attend within them. `attention.heads[i].sequence` indexes this list and
   * `attention.heads[i].head` counts from its block's `firstHead`; `attention.threshold` is
   * √(log of the longest group).
   */
  blocks?: AttentionBlock[];
}

/** Everything one decoder layer needs besides its input. */
export interface LayerContext {
  /** The model's config. */
  config: Qwen3Config;
  /** Index of the layer. */
  index: number;
  /** Its parameters. */
  weights: LayerWeights;
  /** The adapters (all layers'), by module path, each with its lora_alpha/r. */
  lora: CheckedLora;
  /** The rotary angles of every row. */
  rotary: RotaryTables;
  /** The attention core's sequences: each sequence with all heads, or its groups (shifted sparse attention). */
  blocks: CoreBlock[];
  /** Whether the blocks are shifted sparse attention's (and go in the report). */
  shiftedSparse: boolean;
  /** The attention core's options, passed through. */
  attention: AttentionOptions;
  /** The cap G on |q_norm|, |k_norm| gains, if any. */
  qkNormCap: number | undefined;
  /** Whether the backward pass returns base weight gradients. */
  weightGradients: boolean;
}

/** What a decoder layer's backward pass returns. */
export interface LayerBackward {
  /** ∂loss/∂h, the layer's input. */
  dh: Matrix;
  /** ∂loss/∂lora_A, ∂loss/∂lora_B of its adapted modules, by module path. */
  lora: Record<string, LoraWeights>;
  /** ∂loss/∂(every parameter), by state-dict key, when asked for. */
  weights: Record<string, Matrix>;
}

/** A decoder layer's forward result, in the vjp style. */
export interface LayerResult {
  /** h + attention block + MLP block. */
  output: Matrix;
  /** What the attention core decided. */
  report: Qwen3LayerReport;
  /** The vector-Jacobian product for ∂loss/∂output. Call it once. */
  backward(dOutput: Matrix): LayerBackward;
  /** Releases what the attention core kept. */
  dispose(): void;
}

/** The q_norm/k_norm gain with every entry clamped to [−G, G] (the norm control), or as given. */
export function capped(gain: Matrix, cap: number | undefined): Matrix {
  return cap === undefined ? gain : map(gain, (g) => Math.min(cap, Math.max(-cap, g)));
}

/** ∂loss/∂gain through the clamp: passed where |gain| ≤ G (torch.clamp's rule), 0 where it was clamped. */
function cappedBackward(gain: Matrix, cap: number | undefined, dgain: Matrix): Matrix {
  return cap === undefined ? dgain : map(dgain, (d, i, j) => (Math.abs(gain.get(i, j)) <= cap ? d : 0));
}

/**
 * One Qwen3 decoder layer on the T rows of a batch, forward now and backward on demand:
 *
 *     a = input_layernorm(h)
 *     q = q_norm(q_proj(a)), k = k_norm(k_proj(a)), v = v_proj(a)     (q_norm, k_norm per head)
 *     o = attention(rotary(q), repeat_kv(rotary(k)), repeat_kv(v))    (causal, per sequence, the core)
 *         (with shifted sparse attention, per group and half of the heads: the core's sequences are the blocks)
 *     h₁ = h + o_proj(o)
 *     h₂ = h₁ + down_proj(silu(gate_proj(b)) ∘ up_proj(b)),  b = post_attention_layernorm(h₁)
 *
 * Every linear map is LoRA-adapted where the adapters say so.
 */
export function decoderLayer(h: Matrix, ctx: LayerContext): LayerResult {
  const { config, weights: w, lora, blocks } = ctx;
  const eps = config.rms_norm_eps;
  const [headDim, heads, groups] = [config.head_dim, config.num_attention_heads, config.num_attention_heads / config.num_key_value_heads];
  const path = (module: Qwen3Module) => qwen3ModulePath(ctx.index, module);
  const states = {} as Record<Qwen3Module, LinearState>;
  const linear = (x: Matrix, module: Qwen3Module) => {
    const { y, state } = linearForward(x, w.linear[module], lora.adapters.get(path(module)));
    states[module] = state;
    return y;
  };

  const a = rmsNorm(h, w.input_layernorm, eps);
  const [q, k, v] = [linear(a.y, 'q_proj'), linear(a.y, 'k_proj'), linear(a.y, 'v_proj')];
  const [qGain, kGain] = [capped(w.q_norm, ctx.qkNormCap), capped(w.k_norm, ctx.qkNormCap)];
  const [qn, kn] = [rmsNorm(q, qGain, eps), rmsNorm(k, kGain, eps)];
  const [qr, kr] = [rotary(qn.y, ctx.rotary), rotary(kn.y, ctx.rotary)];
  const split = (m: Matrix) => splitBlocks(m, blocks, headDim);
  const join = (parts: Matrix[]) => joinBlocks(parts, blocks, h.rows, heads * headDim, headDim);
  const core = attention(split(qr), split(repeatKv(kr, groups, headDim)), split(repeatKv(v, groups, headDim)), {
    ...ctx.attention,
    heads: blocks[0].heads,
    causal: true,
  });
  const o = join(core.output);
  const h1 = add(h, linear(o, 'o_proj'));
  const b = rmsNorm(h1, w.post_attention_layernorm, eps);
  const [gate, up] = [linear(b.y, 'gate_proj'), linear(b.y, 'up_proj')];
  const output = add(h1, linear(swiglu(gate, up), 'down_proj'));
  const report: Qwen3LayerReport = { layer: ctx.index, attention: core.report, gammaBound: Math.max(maxAbs(qGain), maxAbs(kGain)) * Math.pow(headDim, 0.25) };
  if (ctx.shiftedSparse) report.blocks = blocks.map(({ sequence, start, length, firstHead, heads: n }) => ({ sequence, start, length, firstHead, heads: n }));

  function backward(dOutput: Matrix): LayerBackward {
    const result: LayerBackward = { dh: dOutput, lora: {}, weights: {} };
    const key = (name: string) => `model.layers.${ctx.index}.${name}.weight`;
    const back = (dy: Matrix, module: Qwen3Module): Matrix => {
      const g = linearBackward(dy, states[module], w.linear[module], lora.adapters.get(path(module)), ctx.weightGradients);
      if (g.adapter) result.lora[path(module)] = g.adapter;
      if (g.weight) result.weights[`${path(module)}.weight`] = g.weight;
      return g.dx;
    };
    const norm = (name: string, x: Matrix, gain: Matrix, inverseRms: Float64Array, dy: Matrix): Matrix => {
      const g = rmsNormBackward(x, gain, inverseRms, dy);
      if (ctx.weightGradients) result.weights[key(name)] = g.dgain;
      return g.dx;
    };
    // MLP block: h₂ = h₁ + down_proj(m).
    const { dgate, dup } = swigluBackward(gate, up, back(dOutput, 'down_proj'));
    const db = back(dgate, 'gate_proj');
    addInto(db, back(dup, 'up_proj'));
    const dh1 = add(dOutput, norm('post_attention_layernorm', h1, w.post_attention_layernorm, b.inverseRms, db));
    // Attention block: h₁ = h + o_proj(o).
    const g = core.backward(split(back(dh1, 'o_proj')));
    const dq = rotary(join(g.dq), ctx.rotary, true);
    const dk = rotary(sumKv(join(g.dk), groups, headDim), ctx.rotary, true);
    const dv = sumKv(join(g.dv), groups, headDim);
    const qNorm = rmsNormBackward(q, qGain, qn.inverseRms, dq);
    const kNorm = rmsNormBackward(k, kGain, kn.inverseRms, dk);
    if (ctx.weightGradients) {
      result.weights[key('self_attn.q_norm')] = cappedBackward(w.q_norm, ctx.qkNormCap, qNorm.dgain);
      result.weights[key('self_attn.k_norm')] = cappedBackward(w.k_norm, ctx.qkNormCap, kNorm.dgain);
    }
    const da = back(qNorm.dx, 'q_proj');
    addInto(da, back(kNorm.dx, 'k_proj'));
    addInto(da, back(dv, 'v_proj'));
    result.dh = add(dh1, norm('input_layernorm', h, w.input_layernorm, a.inverseRms, da));
    return result;
  }

  return { output, report, backward, dispose: core.dispose };
}
