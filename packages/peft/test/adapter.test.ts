import { fromArray, NonFiniteError, randomNormal, Rng } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import {
  adapterConfigJson,
  checkAdapterForModel,
  decodePeftAdapter,
  decodeSafetensors,
  encodePeftAdapter,
  encodeSafetensors,
  loraConfig,
  parseAdapterConfig,
  type PeftAdapter,
  PeftError,
  PeftShapeError,
  type SafetensorsDType,
  type SafetensorsFile,
} from '../src/index.js';
import { adapterKey } from '../src/adapter.js';
import { BF16, decodeBits, encodeBits, F16 } from '../src/half.js';

/** Adapters on three modules of a Llama-style model, r = 3 except where rank_pattern says 2. */
function sample(seed = 1): PeftAdapter {
  const rng = new Rng(seed);
  const config = loraConfig({
    r: 3,
    lora_alpha: 6,
    target_modules: ['q_proj', 'down_proj'],
    rank_pattern: { down_proj: 2 },
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: 'org/base',
  });
  const pair = (r: number, out: number, inner: number) => ({ lora_A: randomNormal(r, inner, rng), lora_B: randomNormal(out, r, rng) });
  return {
    config,
    modules: {
      'model.layers.0.self_attn.q_proj': pair(3, 8, 6),
      'model.layers.1.self_attn.q_proj': pair(3, 8, 6),
      'model.layers.0.mlp.down_proj': pair(2, 6, 10),
    },
  };
}

/** The value a dtype stores for x. */
const stored = (x: number, dtype: SafetensorsDType) =>
  dtype === 'F64' ? x : dtype === 'F32' ? Math.fround(x) : decodeBits(encodeBits(x, dtype === 'F16' ? F16 : BF16), dtype === 'F16' ? F16 : BF16);

describe('PEFT adapters: write, then read', () => {
  it("writes PEFT's keys, orientation (lora_A [r, in], lora_B [out, r]) and adapter_config.json", () => {
    const adapter = sample();
    const files = encodePeftAdapter(adapter);
    const config = JSON.parse(files.config) as Record<string, unknown>;
    expect(config).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: 'org/base',
      r: 3,
      lora_alpha: 6,
      target_modules: ['q_proj', 'down_proj'],
      rank_pattern: { down_proj: 2 },
      bias: 'none',
      use_dora: false,
      lora_dropout: 0,
      fan_in_fan_out: false,
    });
    const file = decodeSafetensors(files.weights);
    expect({ ...file.metadata }).toEqual({ format: 'pt' });
    expect(Object.fromEntries(Object.entries(file.tensors).map(([k, t]) => [k, t.shape]))).toEqual({
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': [3, 6],
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': [8, 3],
      'base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight': [3, 6],
      'base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight': [8, 3],
      'base_model.model.model.layers.0.mlp.down_proj.lora_A.weight': [2, 10],
      'base_model.model.model.layers.0.mlp.down_proj.lora_B.weight': [6, 2],
    });
    // Row-major, nothing transposed: the file's lora_A is the matrix's rows one after another.
    const a = adapter.modules['model.layers.0.mlp.down_proj'].lora_A;
    expect(Array.from(file.tensors[adapterKey('model.layers.0.mlp.down_proj', 'lora_A')].data)).toEqual(Array.from(a.toFlat(), Math.fround));
  });

  it.each(['F64', 'F32', 'F16', 'BF16'] as const)('reads back what it wrote in %s: each value as the dtype stores it, the dtype recorded', (dtype) => {
    const adapter = sample(2);
    const back = decodePeftAdapter(encodePeftAdapter(adapter, { dtype }));
    expect(back.dtype).toBe(dtype);
    expect(back.config).toEqual(adapter.config);
    expect(Object.keys(back.modules)).toEqual(Object.keys(adapter.modules).sort());
    for (const [module, { lora_A, lora_B }] of Object.entries(adapter.modules)) {
      expect(Array.from(back.modules[module].lora_A.toFlat())).toEqual(Array.from(lora_A.toFlat(), (x) => stored(x, dtype)));
      expect(Array.from(back.modules[module].lora_B.toFlat())).toEqual(Array.from(lora_B.toFlat(), (x) => stored(x, dtype)));
    }
    // Written again in the dtype it was read from, the file is the same bytes.
    expect(encodePeftAdapter(back, { dtype: back.dtype }).weights).toEqual(encodePeftAdapter(adapter, { dtype }).weights);
  });

  it('reads into float32 matrices when asked', () => {
    const back = decodePeftAdapter(encodePeftAdapter(sample(3)), { dtype: 'float32' });
    expect(Object.values(back.modules).every((m) => m.lora_A.dtype === 'float32' && m.lora_B.dtype === 'float32')).toBe(true);
  });

  it('accepts any module paths, targeted by a regex or all-linear', () => {
    const rng = new Rng(4);
    const modules = {
      'transformer.h.0.attn.c_attn': { lora_A: randomNormal(2, 4, rng), lora_B: randomNormal(12, 2, rng) },
      'encoder.layer.3.attention.self.query': { lora_A: randomNormal(2, 4, rng), lora_B: randomNormal(4, 2, rng) },
    };
    for (const target_modules of ['.*\\.(c_attn|query)', 'all-linear', ['c_attn', 'self.query']]) {
      const adapter = { config: loraConfig({ r: 2, lora_alpha: 2, target_modules }), modules };
      expect(Object.keys(decodePeftAdapter(encodePeftAdapter(adapter, { dtype: 'F64' })).modules)).toEqual(Object.keys(modules).sort());
    }
  });
});

describe('malformed adapters are typed errors, never a silent wrong answer', () => {
  /** The sample's files with the tensors (and optionally the config) changed. */
  function altered(edit: (tensors: SafetensorsFile['tensors']) => void, config?: Record<string, unknown>): { config: string; weights: Uint8Array } {
    const files = encodePeftAdapter(sample(5));
    const file = decodeSafetensors(files.weights);
    edit(file.tensors);
    return {
      config: config ? JSON.stringify({ ...JSON.parse(files.config), ...config }) : files.config,
      weights: encodeSafetensors(file, { allowNonFinite: true }),
    };
  }
  const Q = 'base_model.model.model.layers.0.self_attn.q_proj';
  const empty = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: new Float32Array(0) });

  it.each([
    ['a lora_A without its lora_B', () => altered((t) => Reflect.deleteProperty(t, `${Q}.lora_B.weight`)), PeftError, /q_proj has lora_A but no lora_B/],
    [
      'lora_A and lora_B swapped',
      () => altered((t) => ([t[`${Q}.lora_A.weight`], t[`${Q}.lora_B.weight`]] = [t[`${Q}.lora_B.weight`], t[`${Q}.lora_A.weight`]])),
      PeftShapeError,
      /lora_A \[8, 3\] and lora_B \[3, 6\]; with r = 3/,
    ],
    ['an r the tensors do not have', () => altered(() => undefined, { r: 4 }), PeftShapeError, /with r = 4 they must be \[4, in\]/],
    [
      'a rank_pattern the tensors do not follow',
      () => altered(() => undefined, { rank_pattern: {} }),
      PeftShapeError,
      /down_proj has lora_A \[2, 10\] .* with r = 3/,
    ],
    [
      'a module target_modules does not select',
      () => altered(() => undefined, { target_modules: ['q_proj'] }),
      PeftError,
      /down_proj has adapter tensors, but target_modules \["q_proj"\] does not select it/,
    ],
    [
      'a key with the adapter name left in',
      () =>
        altered((t) => {
          t[`${Q}.lora_A.default.weight`] = t[`${Q}.lora_A.weight`];
          Reflect.deleteProperty(t, `${Q}.lora_A.weight`);
        }),
      PeftError,
      /lora_A\.default\.weight" is not a LoRA weight/,
    ],
    ['DoRA magnitudes', () => altered((t) => (t[`${Q}.lora_magnitude_vector`] = empty([0]))), PeftError, /lora_magnitude_vector" is not a LoRA weight/],
    ['a key outside base_model.model', () => altered((t) => (t['model.layers.0.self_attn.q_proj.weight'] = empty([0, 0]))), PeftError, /is not a LoRA weight/],
    ['a 1-D lora_A', () => altered((t) => (t[`${Q}.lora_A.weight`] = { ...t[`${Q}.lora_A.weight`], shape: [18] })), PeftShapeError, /both must be 2-D/],
    [
      'a zero-width adapter of huge r (no bytes behind any claim)',
      () =>
        altered(
          (t) => {
            for (const k of Object.keys(t)) Reflect.deleteProperty(t, k);
            t[`${Q}.lora_A.weight`] = empty([2 ** 45, 0]);
            t[`${Q}.lora_B.weight`] = empty([0, 2 ** 45]);
          },
          { r: 2 ** 45, rank_pattern: {} },
        ),
      PeftShapeError,
      /in and out ≥ 1/,
    ],
    [
      'no tensors at all',
      () =>
        altered((t) => {
          for (const k of Object.keys(t)) Reflect.deleteProperty(t, k);
        }),
      PeftError,
      /no adapted module/,
    ],
    ['a NaN in lora_B', () => altered((t) => (t[`${Q}.lora_B.weight`].data[5] = NaN)), NonFiniteError, /q_proj\.lora_B\.weight": value 5 is NaN/],
  ])('refuses %s', (_what, files, type, message) => {
    const f = files();
    expect(() => decodePeftAdapter(f)).toThrow(type);
    expect(() => decodePeftAdapter(f)).toThrow(message);
  });

  it('loads a NaN when allowNonFinite says so', () => {
    const back = decodePeftAdapter(
      altered((t) => (t[`${Q}.lora_B.weight`].data[5] = NaN)),
      { allowNonFinite: true },
    );
    expect(back.modules['model.layers.0.self_attn.q_proj'].lora_B.data[5]).toBeNaN();
  });

  it('refuses to write what it would refuse to read', () => {
    const adapter = sample(6);
    expect(() => encodePeftAdapter({ ...adapter, config: { ...adapter.config, target_modules: ['k_proj'] } })).toThrow(/does not select it/);
    expect(() => encodePeftAdapter({ ...adapter, config: { ...adapter.config, r: 5 } })).toThrow(PeftShapeError);
    expect(() => encodePeftAdapter({ ...adapter, modules: {} })).toThrow(/no adapted module/);
    const bad = {
      ...adapter,
      modules: {
        ...adapter.modules,
        'model.layers.0.self_attn.q_proj': {
          lora_A: fromArray([
            [1, 2, 3, 4, 5, 6],
            [1, 2, 3, 4, 5, 6],
            [1, 2, 3, 4, 5, 1e6],
          ]),
          lora_B: adapter.modules['model.layers.0.self_attn.q_proj'].lora_B,
        },
      },
    };
    expect(() => encodePeftAdapter(bad, { dtype: 'F16' })).toThrow(/is Infinity as F16/);
  });
});

describe('an adapter against the model it is for', () => {
  // torch weight shapes [out, in] of the model's linear layers.
  const LINEAR: Record<string, number[]> = {
    'model.layers.0.self_attn.q_proj': [8, 6],
    'model.layers.1.self_attn.q_proj': [8, 6],
    'model.layers.0.mlp.down_proj': [6, 10],
    'model.layers.1.mlp.down_proj': [6, 10],
    lm_head: [32, 6],
  };

  it('finds a targeted layer with no tensors (PEFT would keep its fresh initialisation)', () => {
    expect(() => checkAdapterForModel(sample(), LINEAR)).toThrow(/targets model\.layers\.1\.mlp\.down_proj, but the adapter has no lora_A\/lora_B/);
  });

  it('passes when the adapted layers are exactly the targeted ones, with their shapes', () => {
    const linear = Object.fromEntries(Object.entries(LINEAR).filter(([m]) => m !== 'model.layers.1.mlp.down_proj'));
    expect(() => checkAdapterForModel(sample(), linear)).not.toThrow();
  });

  it('refuses a layer the model lacks, a misshapen layer, and resolves all-linear without lm_head', () => {
    const adapter = sample();
    expect(() => checkAdapterForModel(adapter, { 'model.layers.0.self_attn.q_proj': [8, 6], 'model.layers.1.self_attn.q_proj': [8, 6] })).toThrow(
      /adapts model\.layers\.0\.mlp\.down_proj, which is not a linear layer of the model/,
    );
    const linear = { 'model.layers.0.self_attn.q_proj': [8, 6], 'model.layers.1.self_attn.q_proj': [8, 7], 'model.layers.0.mlp.down_proj': [6, 10] };
    expect(() => checkAdapterForModel(adapter, linear)).toThrow(PeftShapeError);
    expect(() => checkAdapterForModel(adapter, linear)).toThrow(/the model's 8×7 layer with r = 3 needs 3×7 and 8×3/);
    const allLinear = { ...adapter, config: { ...adapter.config, target_modules: 'all-linear' } };
    expect(() => checkAdapterForModel(allLinear, { ...linear, 'model.layers.1.self_attn.q_proj': [8, 6], lm_head: [32, 6] })).not.toThrow();
    expect(() =>
      checkAdapterForModel(allLinear, { ...linear, 'model.layers.1.self_attn.q_proj': [8, 6], lm_head: [32, 6] }, { outputLayer: 'embed_out' }),
    ).toThrow(/targets lm_head/);
  });

  it('reads a fan_in_fan_out layer (GPT-2 Conv1D, weight [in, out]) with lora_A r×in and lora_B out×r all the same', () => {
    const rng = new Rng(7);
    const adapter = {
      config: loraConfig({ r: 2, lora_alpha: 2, target_modules: ['c_attn'], fan_in_fan_out: true }),
      modules: { 'h.0.attn.c_attn': { lora_A: randomNormal(2, 4, rng), lora_B: randomNormal(12, 2, rng) } },
    };
    expect(() => checkAdapterForModel(adapter, { 'h.0.attn.c_attn': [4, 12] })).not.toThrow();
    expect(() => checkAdapterForModel(adapter, { 'h.0.attn.c_attn': [12, 4] })).toThrow(PeftShapeError);
  });
});

describe('adapter_config.json', () => {
  it("writes the fields in PEFT's order with PEFT's fixed ones last, and reads back the config it wrote", () => {
    const config = loraConfig({ r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], task_type: 'CAUSAL_LM', base_model_name_or_path: '../base' });
    const text = adapterConfigJson(config);
    expect(Object.keys(JSON.parse(text) as object)).toEqual([
      'peft_type',
      'task_type',
      'base_model_name_or_path',
      'r',
      'lora_alpha',
      'lora_dropout',
      'bias',
      'fan_in_fan_out',
      'use_rslora',
      'target_modules',
      'exclude_modules',
      'rank_pattern',
      'alpha_pattern',
      'inference_mode',
      'use_dora',
      'modules_to_save',
      'layers_to_transform',
    ]);
    expect(text.endsWith('}\n')).toBe(true);
    expect(parseAdapterConfig(text)).toEqual(config);
  });
});
