import { describe, expect, it } from 'vitest';
import { copy, DTypeError, InvalidArgumentError, type Matrix, NonFiniteError, Rng, ShapeError, toDType, transpose, zeros } from '@almora/tensor';
import {
  initQwen3Adapters,
  initQwen3Weights,
  QWEN3_MODULES,
  QWEN3_TINY,
  qwen3Config,
  qwen3ForCausalLM,
  qwen3ModulePath,
  qwen3StateDictShapes,
  type Qwen3Model,
  type Qwen3Options,
} from '../src/index.js';
import { mismatch, randomIds, randomModel, tinyConfig } from './models.js';

/** The record without one key. */
function without<V>(record: Record<string, V>, key: string): Record<string, V> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => k !== key));
}

describe('qwen3Config', () => {
  it("fills in Hugging Face's defaults and keeps what config.json says", () => {
    const config = qwen3Config({
      hidden_size: 1024,
      num_attention_heads: 16,
      num_key_value_heads: 8,
      architectures: ['Qwen3ForCausalLM'],
      torch_dtype: 'bfloat16',
    });
    expect(config).toMatchObject({
      model_type: 'qwen3',
      vocab_size: 151936,
      hidden_size: 1024,
      intermediate_size: 22016,
      num_hidden_layers: 32,
      num_attention_heads: 16,
      num_key_value_heads: 8,
      head_dim: 128,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      tie_word_embeddings: false,
      max_position_embeddings: 32768,
    });
    // transformers' signature default is 32 key/value heads; only an explicit null means one per query head.
    expect(qwen3Config({ num_attention_heads: 64 }).num_key_value_heads).toBe(32);
    expect(qwen3Config({ num_attention_heads: 8, num_key_value_heads: null }).num_key_value_heads).toBe(8);
    expect(() => qwen3Config({ num_attention_heads: 8 })).toThrow(/num_key_value_heads \(32\) must divide num_attention_heads \(8\)/);
    expect(qwen3Config({ rope_parameters: { rope_type: 'default', rope_theta: 1e6 } }).rope_theta).toBe(1e6);
    expect(qwen3Config({ rope_scaling: null, sliding_window: null, use_sliding_window: false, max_window_layers: 28 })).toMatchObject({ rope_scaling: null });
  });

  it('the tiny preset has 115,072 parameters in state-dict keys of its 2 layers and tied embeddings', () => {
    const shapes = qwen3StateDictShapes(QWEN3_TINY);
    expect(Object.values(shapes).reduce((sum, s) => sum + s.reduce((p, n) => p * n, 1), 0)).toBe(115_072);
    expect(shapes['model.layers.1.self_attn.k_proj.weight']).toEqual([32, 64]);
    expect(shapes['model.layers.0.self_attn.q_norm.weight']).toEqual([16]);
    expect(shapes['model.layers.1.mlp.down_proj.weight']).toEqual([64, 192]);
    expect(shapes['lm_head.weight']).toBeUndefined();
    expect(Object.keys(shapes)).toHaveLength(1 + 2 * 11 + 1);
    expect(qwen3Config(QWEN3_TINY)).toEqual(QWEN3_TINY);
  });

  it('refuses what it does not compute, naming the field', () => {
    for (const [bad, field] of [
      [{ head_dim: 5 }, 'head_dim'],
      [{ num_attention_heads: 4, num_key_value_heads: 3 }, 'num_key_value_heads'],
      [{ hidden_size: 0 }, 'hidden_size'],
      [{ vocab_size: 2.5 }, 'vocab_size'],
      [{ rms_norm_eps: -1 }, 'rms_norm_eps'],
      [{ hidden_act: 'gelu' }, 'hidden_act'],
      [{ attention_bias: true }, 'attention_bias'],
      [{ rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'rope_scaling'],
      [{ rope_parameters: { rope_type: 'linear', factor: 2 } }, 'rope_type'],
      [{ use_sliding_window: true }, 'use_sliding_window'],
      [{ attention_dropout: 0.1 }, 'attention_dropout'],
      [{ model_type: 'llama' }, 'model_type'],
      [{ tie_word_embeddings: 'yes' }, 'tie_word_embeddings'],
    ] as const) {
      expect(() => qwen3Config(bad as Record<string, unknown>)).toThrow(InvalidArgumentError);
      expect(() => qwen3Config(bad as Record<string, unknown>)).toThrow(field);
    }
  });
});

describe('weights and adapters', () => {
  it('initialises as transformers and PEFT do: norms ones, linears normal(0, initializer_range), lora_B zeros', () => {
    const config = tinyConfig();
    const weights = initQwen3Weights(config, new Rng(1));
    expect(Object.keys(weights)).toEqual(Object.keys(qwen3StateDictShapes(config)));
    expect(Array.from(weights['model.norm.weight'].data).every((v) => v === 1)).toBe(true);
    expect(Array.from(initQwen3Weights(config, new Rng(1))['model.embed_tokens.weight'].data)).toEqual(Array.from(weights['model.embed_tokens.weight'].data));
    const lora = initQwen3Adapters(config, { r: 3, lora_alpha: 6, target_modules: ['q_proj', 'down_proj'] }, new Rng(2));
    expect(Object.keys(lora.adapters)).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.mlp.down_proj',
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.mlp.down_proj',
    ]);
    const down = lora.adapters[qwen3ModulePath(1, 'down_proj')];
    expect(down.lora_A.shape).toEqual([3, 12]);
    expect(down.lora_B.shape).toEqual([8, 3]);
    expect(Array.from(down.lora_A.data).every((v) => Math.abs(v) <= 1 / Math.sqrt(12))).toBe(true);
    expect(Array.from(down.lora_B.data).every((v) => v === 0)).toBe(true);
  });

  it("freshly initialised adapters leave the base model's logits unchanged, and only lora_B gets a gradient", () => {
    const rng = new Rng(3);
    const config = tinyConfig();
    const weights = initQwen3Weights(config, rng);
    const lora = initQwen3Adapters(config, { r: 2, lora_alpha: 16, target_modules: QWEN3_MODULES }, rng);
    const ids = randomIds(11, [6], rng)[0];
    const base = qwen3ForCausalLM({ config, weights }, ids, { method: 'exact' });
    const adapted = qwen3ForCausalLM({ config, weights, lora }, ids, { method: 'exact' });
    expect(Array.from(adapted.logits.data)).toEqual(Array.from(base.logits.data));
    const grads = adapted.backward().lora;
    expect(Object.keys(grads)).toHaveLength(2 * 7);
    for (const g of Object.values(grads)) {
      expect(Array.from(g.lora_A.data).every((v) => v === 0)).toBe(true);
      expect(Array.from(g.lora_B.data).some((v) => v !== 0)).toBe(true);
    }
    base.dispose();
  });

  it('refuses missing, unknown, misshapen, mixed-dtype and non-finite parameters, naming the key', () => {
    const rng = new Rng(4);
    const model = randomModel(tinyConfig(), rng);
    const ids = [1, 2, 3];
    const run = (change: (m: Qwen3Model) => void) => () => {
      const copy: Qwen3Model = { config: model.config, weights: { ...model.weights }, lora: { ...model.lora!, adapters: { ...model.lora!.adapters } } };
      change(copy);
      qwen3ForCausalLM(copy, ids);
    };
    const key = 'model.layers.1.mlp.gate_proj.weight';
    expect(run((m) => (m.weights = without(m.weights, key)))).toThrow(InvalidArgumentError);
    expect(run((m) => (m.weights = without(m.weights, key)))).toThrow(key);
    expect(run((m) => (m.weights['model.layers.2.mlp.gate_proj.weight'] = m.weights[key]))).toThrow(/unknown key "model.layers.2/);
    expect(run((m) => (m.weights[key] = transpose(m.weights[key])))).toThrow(ShapeError);
    expect(run((m) => (m.weights['model.norm.weight'] = toDType(m.weights['model.norm.weight'], 'float32')))).toThrow(DTypeError);
    expect(
      run((m) => {
        m.weights[key] = copy(m.weights[key]);
        m.weights[key].set(0, 0, NaN);
      }),
    ).toThrow(NonFiniteError);
    expect(run((m) => (m.lora!.adapters = without(m.lora!.adapters, 'model.layers.0.mlp.up_proj')))).toThrow(/model.layers.0.mlp.up_proj/);
    expect(run((m) => (m.lora!.adapters['model.layers.0.self_attn.q_proj'] = { lora_A: zeros(2, 8), lora_B: zeros(8, 2) }))).toThrow(ShapeError);
    expect(run((m) => (m.lora = { ...m.lora!, target_modules: ['q_proj', 'qkv_proj' as 'q_proj'] }))).toThrow(/qkv_proj/);
  });

  it('with tied embeddings, lm_head.weight may be given only as the embedding itself', () => {
    const rng = new Rng(5);
    const model = randomModel(tinyConfig({ tie_word_embeddings: true }), rng);
    const ids = [[1, 2, 3]];
    const loss = qwen3ForCausalLM(model, ids, { method: 'exact' }).loss;
    const withHead = { ...model, weights: { ...model.weights, 'lm_head.weight': model.weights['model.embed_tokens.weight'] } };
    expect(qwen3ForCausalLM(withHead, ids, { method: 'exact' }).loss).toBe(loss);
    withHead.weights['lm_head.weight'] = zeros(11, 8);
    expect(() => qwen3ForCausalLM(withHead, ids)).toThrow(/tie_word_embeddings/);
  });
});

describe('inputs and options', () => {
  const model = randomModel(tinyConfig({ max_position_embeddings: 8 }), new Rng(6));

  it('refuses bad ids, labels and options with typed errors', () => {
    expect(() => qwen3ForCausalLM(model, [1, 11, 2])).toThrow(/token 1 is 11/);
    expect(() =>
      qwen3ForCausalLM(model, [
        [1, 2],
        [3, 0.5],
      ]),
    ).toThrow(InvalidArgumentError);
    expect(() => qwen3ForCausalLM(model, [1, 2, 3, 4, 5, 6, 7, 8, 9])).toThrow(/max_position_embeddings = 8/);
    expect(() => qwen3ForCausalLM(model, [[1, 2], []])).toThrow(ShapeError);
    expect(() => qwen3ForCausalLM(model, [4])).toThrow(/no position has a next-token target/);
    expect(() => qwen3ForCausalLM(model, [1, 2, 3], { labels: [-100, -100, -100] })).toThrow(/no position/);
    expect(() => qwen3ForCausalLM(model, [1, 2, 3], { labels: [1, 2] })).toThrow(ShapeError);
    expect(() => qwen3ForCausalLM(model, [1, 2, 3], { qkNormCap: 0 })).toThrow(/qkNormCap/);
    expect(() => qwen3ForCausalLM(model, [1, 2, 3], { method: 'fastest' as 'fast' })).toThrow(/method/);
    expect(() => qwen3ForCausalLM(model, [1, 2, 3], { heads: 2 } as unknown as Qwen3Options)).toThrow(/heads is set by the model/);
  });

  it('backward once; dispose before backward makes backward a typed error', () => {
    const result = qwen3ForCausalLM(model, [1, 2, 3]);
    result.backward();
    expect(() => result.backward()).toThrow(/already/);
    const disposed = qwen3ForCausalLM(model, [1, 2, 3]);
    disposed.dispose();
    expect(() => disposed.backward()).toThrow(InvalidArgumentError);
  });
});

describe('properties', () => {
  it('a batch is the token-weighted mean of its sequences: loss and gradients', () => {
    const rng = new Rng(7);
    const model = randomModel(tinyConfig(), rng, ['v_proj', 'gate_proj']);
    const [a, b] = randomIds(11, [7, 4], rng);
    const batch = qwen3ForCausalLM(model, [a, b], { method: 'exact' });
    const [one, two] = [qwen3ForCausalLM(model, a, { method: 'exact' }), qwen3ForCausalLM(model, b, { method: 'exact' })];
    expect(batch.tokens).toBe(6 + 3);
    expect(Math.abs(batch.loss - (6 * one.loss + 3 * two.loss) / 9)).toBeLessThan(1e-14);
    expect(mismatch(batch.logits[1], two.logits)).toBeLessThan(1e-14);
    const [gb, g1, g2] = [batch.backward().lora, one.backward().lora, two.backward().lora];
    for (const [path, g] of Object.entries(gb)) {
      for (const which of ['lora_A', 'lora_B'] as const) {
        const weighted = zeros(g[which].rows, g[which].cols);
        for (let t = 0; t < weighted.data.length; t++) weighted.data[t] = (6 * g1[path][which].data[t] + 3 * g2[path][which].data[t]) / 9;
        expect(mismatch(g[which], weighted), path).toBeLessThan(1e-13);
      }
    }
  });

  it('grouped-query attention is attention with each key/value head repeated (repeat_kv), gradients summed back', () => {
    const rng = new Rng(8);
    const grouped = randomModel(tinyConfig({ num_hidden_layers: 1 }), rng, ['q_proj']);
    const config = tinyConfig({ num_hidden_layers: 1, num_key_value_heads: 4 });
    // Key/value head h of the grouped model serves query heads 2h and 2h + 1: repeat its rows.
    const repeatRows = (w: Matrix) => {
      const out = zeros(2 * w.rows, w.cols);
      for (let i = 0; i < w.rows; i++) for (let g = 0; g < 2; g++) out.data.set(w.row(i), ((Math.floor(i / 4) * 2 + g) * 4 + (i % 4)) * w.cols);
      return out;
    };
    const weights = { ...grouped.weights };
    for (const m of ['k_proj', 'v_proj']) weights[`model.layers.0.self_attn.${m}.weight`] = repeatRows(grouped.weights[`model.layers.0.self_attn.${m}.weight`]);
    const ids = randomIds(11, [9], rng);
    const g = qwen3ForCausalLM(grouped, ids, { method: 'exact', weightGradients: true });
    const full = qwen3ForCausalLM({ config, weights, lora: grouped.lora }, ids, { method: 'exact', weightGradients: true });
    expect(Math.abs(g.loss - full.loss)).toBeLessThan(1e-14);
    const [gg, gf] = [g.backward(), full.backward()];
    expect(mismatch(gg.lora['model.layers.0.self_attn.q_proj'].lora_B, gf.lora['model.layers.0.self_attn.q_proj'].lora_B)).toBeLessThan(1e-13);
    const dk = gf.weights!['model.layers.0.self_attn.k_proj.weight'];
    const summed = zeros(8, 8);
    for (let i = 0; i < 16; i++) for (let j = 0; j < 8; j++) summed.data[(Math.floor(i / 8) * 4 + (i % 4)) * 8 + j] += dk.get(i, j);
    expect(mismatch(gg.weights!['model.layers.0.self_attn.k_proj.weight'], summed)).toBeLessThan(1e-13);
  });

  it('a cap above every gain changes nothing; a cap below bounds Γ by cap·head_dim^¼', () => {
    const rng = new Rng(9);
    const model = randomModel(tinyConfig(), rng);
    const ids = randomIds(11, [10, 6], rng);
    const plain = qwen3ForCausalLM(model, ids, { method: 'exact' });
    const loose = qwen3ForCausalLM(model, ids, { method: 'exact', qkNormCap: 100 });
    expect(loose.loss).toBe(plain.loss);
    expect(loose.layers.map((l) => l.gammaBound)).toEqual(plain.layers.map((l) => l.gammaBound));
    for (const key of Object.keys(model.weights)) if (key.endsWith('q_norm.weight')) model.weights[key].data.fill(30);
    const tight = qwen3ForCausalLM(model, ids, { method: 'exact', qkNormCap: 0.3 });
    for (const layer of tight.layers) {
      expect(layer.gammaBound).toBeCloseTo(0.3 * 4 ** 0.25, 14);
      for (const head of layer.attention.heads) expect(head.gamma).toBeLessThanOrEqual(layer.gammaBound);
    }
    [plain, loose, tight].forEach((r) => r.dispose());
  });

  it('float32 weights run in float32 and agree with float64 to float32 accuracy', () => {
    const model64 = randomModel(tinyConfig(), new Rng(10));
    const model32 = randomModel(tinyConfig(), new Rng(10), QWEN3_MODULES, 'float32');
    const ids = randomIds(11, [12], new Rng(11));
    const [a, b] = [qwen3ForCausalLM(model64, ids, { method: 'exact' }), qwen3ForCausalLM(model32, ids, { method: 'exact' })];
    expect(b.logits[0].dtype).toBe('float32');
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-4);
    const [ga, gb] = [a.backward().lora, b.backward().lora];
    for (const path of Object.keys(ga)) expect(mismatch(gb[path].lora_B, ga[path].lora_B)).toBeLessThan(1e-3);
  });
});
