import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { initQwen3Adapters, qwen3Config, QWEN3_TINY, qwen3StateDictShapes, type Qwen3Lora } from '@almora/model';
import { decodeSafetensors, encodeSafetensors } from '@almora/peft';
import { AlmoraError, InvalidArgumentError, randomNormal, Rng, transpose } from '@almora/tensor';
import { afterAll, describe, expect, it } from 'vitest';
import { freshQwen3, loadPeftAdapters, loadQwen3, savePeftAdapters, saveQwen3 } from '../src/index.js';

// QWEN3_TINY's layout, narrower; untied so lm_head.weight is in the state dict too.
const SHAPE = qwen3Config({
  ...QWEN3_TINY,
  hidden_size: 32,
  intermediate_size: 48,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 16,
  max_position_embeddings: 64,
});
const UNTIED = qwen3Config({ ...SHAPE, tie_word_embeddings: false });

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'almora-hf-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Adapters with lora_B filled in too (fresh ones have lora_B = 0, which would hide a swap of A and B). */
function trainedAdapters(
  seed: number,
  targets: Qwen3Lora['target_modules'] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
): Qwen3Lora {
  const rng = new Rng(seed);
  const lora = initQwen3Adapters(SHAPE, { r: 3, lora_alpha: 6, target_modules: targets }, rng);
  for (const adapter of Object.values(lora.adapters)) adapter.lora_B = randomNormal(adapter.lora_B.rows, adapter.lora_B.cols, rng);
  return lora;
}

const flat = (lora: Qwen3Lora) => Object.fromEntries(Object.entries(lora.adapters).map(([m, a]) => [m, [a.lora_A.toFlat(), a.lora_B.toFlat()]]));

describe('saveQwen3 / loadQwen3', () => {
  for (const config of [SHAPE, UNTIED]) {
    it(`writes Hugging Face's layout and reads it back (tie_word_embeddings ${config.tie_word_embeddings})`, async () => {
      const dir = await tempDir();
      const model = freshQwen3(config, 1);
      await saveQwen3(dir, config, model.weights);
      const json = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(json.architectures).toEqual(['Qwen3ForCausalLM']);
      expect(json.model_type).toBe('qwen3');
      expect(json.torch_dtype).toBe('float32');
      expect(qwen3Config(json)).toEqual(config);
      const file = decodeSafetensors(new Uint8Array(await readFile(path.join(dir, 'model.safetensors'))));
      const shapes = qwen3StateDictShapes(config);
      expect(Object.keys(file.tensors).sort()).toEqual(Object.keys(shapes).sort());
      for (const [key, shape] of Object.entries(shapes)) {
        expect(file.tensors[key].shape, key).toEqual(shape);
        expect(file.tensors[key].dtype).toBe('F32');
      }
      expect(file.tensors['model.layers.0.self_attn.q_norm.weight'].shape).toEqual([16]);
      expect(file.tensors['model.norm.weight'].shape).toEqual([32]);
      expect(file.tensors['model.layers.1.mlp.down_proj.weight'].shape).toEqual([32, 48]);
      expect('lm_head.weight' in file.tensors).toBe(!config.tie_word_embeddings);
      const loaded = await loadQwen3(dir);
      expect(loaded.config).toEqual(config);
      for (const [key, m] of Object.entries(model.weights)) {
        const got = loaded.weights[key];
        expect([got.rows, got.cols], key).toEqual([m.rows, m.cols]);
        // float32 on disk: each value is the float32 nearest the float64 one.
        expect(Array.from(got.toFlat())).toEqual(Array.from(m.toFlat(), (x) => Math.fround(x)));
      }
    });
  }

  it('records the q_norm/k_norm cap in config.json (almora_qk_norm_cap) and reads it back; a bad one is refused', async () => {
    const dir = await tempDir();
    const model = freshQwen3(SHAPE, 3);
    await saveQwen3(dir, SHAPE, model.weights, 'F32', 1.25);
    const json = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(json.almora_qk_norm_cap).toBe(1.25);
    expect((await loadQwen3(dir)).qkNormCap).toBe(1.25);
    await saveQwen3(dir, SHAPE, model.weights);
    expect((await loadQwen3(dir)).qkNormCap).toBeUndefined();
    await expect(saveQwen3(dir, SHAPE, model.weights, 'F32', 0)).rejects.toThrow(InvalidArgumentError);
    await writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...json, almora_qk_norm_cap: -1 }));
    await expect(loadQwen3(dir)).rejects.toThrow(/almora_qk_norm_cap must be a finite number > 0, got -1/);
  });

  it('keeps every float64 exactly with dtype F64', async () => {
    const dir = await tempDir();
    const model = freshQwen3(SHAPE, 2);
    await saveQwen3(dir, SHAPE, model.weights, 'F64');
    expect((JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as { torch_dtype: string }).torch_dtype).toBe('float64');
    const loaded = await loadQwen3(dir);
    for (const [key, m] of Object.entries(model.weights)) expect(loaded.weights[key].toFlat(), key).toEqual(m.toFlat());
    expect(Object.keys(loaded.weights).sort()).toEqual(Object.keys(model.weights).sort());
  });

  it('refuses to save weights that are missing a tensor or have one in another shape', async () => {
    const dir = await tempDir();
    const { weights } = freshQwen3(SHAPE, 3);
    const missing = { ...weights };
    delete missing['model.norm.weight'];
    await expect(saveQwen3(dir, SHAPE, missing)).rejects.toThrow(/the weights have no "model\.norm\.weight"/);
    const kv = { ...weights, 'model.layers.0.self_attn.k_proj.weight': transpose(weights['model.layers.0.self_attn.k_proj.weight']) };
    await expect(saveQwen3(dir, SHAPE, kv)).rejects.toThrow(/"model\.layers\.0\.self_attn\.k_proj\.weight" is 32×16, the config needs 16×32/);
  });

  it('refuses a missing, misshapen or unknown tensor, naming its key', async () => {
    const dir = await tempDir();
    await saveQwen3(dir, SHAPE, freshQwen3(SHAPE, 3).weights);
    const file = decodeSafetensors(new Uint8Array(await readFile(path.join(dir, 'model.safetensors'))));
    const write = (tensors: typeof file.tensors) => writeFile(path.join(dir, 'model.safetensors'), encodeSafetensors({ tensors, metadata: {} }));
    const { 'model.norm.weight': norm, ...rest } = file.tensors;
    await write(rest);
    await expect(loadQwen3(dir)).rejects.toThrow(/has no tensor "model\.norm\.weight"/);
    await write({ ...rest, 'model.norm.weight': { ...norm, shape: [1, 32] } });
    await expect(loadQwen3(dir)).rejects.toThrow(/"model\.norm\.weight" has shape \[1, 32\] but config\.json needs \[32\]/);
    await write({ ...file.tensors, 'model.layers.7.mlp.up_proj.weight': norm });
    await expect(loadQwen3(dir)).rejects.toThrow(InvalidArgumentError);
    await expect(loadQwen3(dir)).rejects.toThrow(/unknown tensor "model\.layers\.7\.mlp\.up_proj\.weight"/);
  });
});

describe('savePeftAdapters / loadPeftAdapters', () => {
  it("writes PEFT's keys, shapes and adapter_config.json", async () => {
    const dir = await tempDir();
    const lora = trainedAdapters(4);
    await savePeftAdapters(dir, lora, 'my/base-model');
    const config = JSON.parse(await readFile(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: 'my/base-model',
      r: 3,
      lora_alpha: 6,
      use_rslora: false,
      bias: 'none',
    });
    expect(config.target_modules).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    const file = decodeSafetensors(new Uint8Array(await readFile(path.join(dir, 'adapter_model.safetensors'))));
    const shapes = qwen3StateDictShapes(SHAPE);
    const expected: Record<string, number[]> = {};
    for (let layer = 0; layer < SHAPE.num_hidden_layers; layer++) {
      for (const [block, modules] of [
        ['self_attn', ['q_proj', 'k_proj', 'v_proj', 'o_proj']],
        ['mlp', ['gate_proj', 'up_proj', 'down_proj']],
      ] as const) {
        for (const module of modules) {
          const [out, inner] = shapes[`model.layers.${layer}.${block}.${module}.weight`];
          expected[`base_model.model.model.layers.${layer}.${block}.${module}.lora_A.weight`] = [3, inner];
          expected[`base_model.model.model.layers.${layer}.${block}.${module}.lora_B.weight`] = [out, 3];
        }
      }
    }
    expect(Object.fromEntries(Object.entries(file.tensors).map(([key, t]) => [key, t.shape]))).toEqual(expected);
    expect(file.tensors['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'].shape).toEqual([3, 32]);
    expect(file.tensors['base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight'].shape).toEqual([16, 3]);
  });

  it('reads them back: float32 to rounding, float64 exactly', async () => {
    const lora = trainedAdapters(5, ['q_proj', 'v_proj']);
    const f32 = await tempDir();
    await savePeftAdapters(f32, lora, 'base');
    const rounded = await loadPeftAdapters(f32, SHAPE);
    expect({ r: rounded.r, lora_alpha: rounded.lora_alpha, target_modules: rounded.target_modules }).toEqual({
      r: 3,
      lora_alpha: 6,
      target_modules: ['q_proj', 'v_proj'],
    });
    const expected = Object.fromEntries(
      Object.entries(flat(lora)).map(([m, [a, b]]) => [m, [Float64Array.from(a, Math.fround), Float64Array.from(b, Math.fround)]]),
    );
    expect(flat(rounded)).toEqual(expected);
    const f64 = await tempDir();
    await savePeftAdapters(f64, lora, 'base', 'F64');
    expect(flat(await loadPeftAdapters(f64, SHAPE))).toEqual(flat(lora));
  });

  // Refused by @almora/peft's reader (the file says something PEFT would read differently) or by
  // loadPeftAdapters (something a Qwen3Lora cannot hold); each a typed error naming the field or tensor.
  const refusals: [string, (config: Record<string, unknown>, tensors: Record<string, unknown>) => void, RegExp][] = [
    ['use_rslora', (c) => (c.use_rslora = true), /use_rslora is true; only false is supported/],
    ['use_dora', (c) => (c.use_dora = true), /use_dora is true; this reader implements plain LoRA without it/],
    ['a bias', (c) => (c.bias = 'all'), /bias is the string "all"; only "none" is read/],
    [
      'a rank_pattern the tensors do not follow',
      (c) => (c.rank_pattern = { q_proj: 4 }),
      /layers\.0\.self_attn\.q_proj has lora_A \[3, 32\] and lora_B \[32, 3\]; with r = 4/,
    ],
    ['an alpha_pattern', (c) => (c.alpha_pattern = { q_proj: 4 }), /alpha_pattern is not supported/],
    ['another peft_type', (c) => (c.peft_type = 'IA3'), /peft_type is the string "IA3"; only "LORA" is read/],
    [
      'a target module Qwen3 has not',
      (c) => (c.target_modules = ['q_proj', 'c_attn']),
      /v_proj has adapter tensors, but target_modules \["q_proj", "c_attn"\] does not select it/,
    ],
    [
      'a target module whose tensors are not there',
      (c) => (c.target_modules = ['q_proj', 'k_proj', 'v_proj']),
      /the config targets model\.layers\.0\.self_attn\.k_proj, but the adapter has no lora_A\/lora_B for it/,
    ],
    ['no target module (an adapter of nothing)', (c) => (c.target_modules = []), /target_modules must be a non-empty list/],
    ['a target module listed twice', (c) => (c.target_modules = ['q_proj', 'q_proj', 'v_proj']), /lists a module twice/],
    ['a fractional r', (c) => (c.r = 2.5), /r must be an integer ≥ 1, got 2\.5/],
    ['an r the tensors do not have', (c) => (c.r = 4), /q_proj has lora_A \[3, 32\] and lora_B \[32, 3\]; with r = 4 they must be \[4, in\]/],
    ['a missing lora_alpha', (c) => delete c.lora_alpha, /lora_alpha must be a finite number > 0, got missing/],
    [
      'a missing tensor',
      (_, t) => Reflect.deleteProperty(t, 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight'),
      /model\.layers\.1\.self_attn\.v_proj has lora_A but no lora_B/,
    ],
    [
      'an extra tensor',
      (_, t) => (t['base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight'] = t['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']),
      /k_proj has lora_A but no lora_B/,
    ],
    [
      'an extra module',
      (_, t) => {
        for (const which of ['A', 'B'])
          t[`base_model.model.model.layers.0.self_attn.k_proj.lora_${which}.weight`] =
            t[`base_model.model.model.layers.0.self_attn.q_proj.lora_${which}.weight`];
      },
      /k_proj has adapter tensors, but target_modules \["q_proj", "v_proj"\] does not select it/,
    ],
    [
      'an adapter of the wrong width for the model',
      (_, t) => {
        const key = 'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight';
        t[key] = { ...(t[key] as object), shape: [8, 3], data: new Float32Array(24) };
      },
      /v_proj: lora_A is 3×32 and lora_B 8×3; the model's 16×32 layer with r = 3 needs 3×32 and 16×3/,
    ],
    [
      'lora_A and lora_B swapped',
      (_, t) => {
        const key = 'base_model.model.model.layers.0.self_attn.v_proj.lora_';
        [t[`${key}A.weight`], t[`${key}B.weight`]] = [t[`${key}B.weight`], t[`${key}A.weight`]];
      },
      /v_proj has lora_A \[16, 3\]/,
    ],
  ];
  for (const [what, alter, message] of refusals) {
    it(`refuses ${what}`, async () => {
      const dir = await tempDir();
      await savePeftAdapters(dir, trainedAdapters(6, ['q_proj', 'v_proj']), 'base');
      const config = JSON.parse(await readFile(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      const file = decodeSafetensors(new Uint8Array(await readFile(path.join(dir, 'adapter_model.safetensors'))));
      const tensors = { ...file.tensors } as Record<string, unknown>;
      alter(config, tensors);
      await writeFile(path.join(dir, 'adapter_config.json'), JSON.stringify(config));
      await writeFile(path.join(dir, 'adapter_model.safetensors'), encodeSafetensors({ tensors: tensors as typeof file.tensors, metadata: {} }));
      const load = loadPeftAdapters(dir, SHAPE);
      await expect(load).rejects.toThrow(AlmoraError);
      await expect(load).rejects.toThrow(message);
    });
  }
});
