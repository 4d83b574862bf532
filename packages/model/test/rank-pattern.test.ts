import { describe, expect, it } from 'vitest';
import { add, InvalidArgumentError, matmul, type Matrix, randomNormal, randomUniform, Rng, scale, ShapeError } from '@almora/tensor';
import { initQwen3Adapters, qwen3ForCausalLM, qwen3ModulePath, type Qwen3LoraConfig, type Qwen3Model, type Qwen3Module } from '../src/index.js';
import { generateWithLogits } from '../src/generate.js';
import { adaptedModules } from '../src/lora.js';
import { checkAll, FD_TOLERANCE, mismatch, randomIds, randomModel, tinyConfig } from './models.js';

const TARGETS: readonly Qwen3Module[] = ['q_proj', 'v_proj', 'o_proj', 'down_proj'];

/** Ranks 1, 3, 4 on different modules of both layers; the other modules keep r = 2. */
const PATTERN: Readonly<Record<string, number>> = {
  [qwen3ModulePath(0, 'q_proj')]: 4,
  [qwen3ModulePath(0, 'down_proj')]: 1,
  [qwen3ModulePath(1, 'v_proj')]: 3,
  [qwen3ModulePath(1, 'o_proj')]: 1,
};

/** A random tiny model whose adapters follow `lora` (lora_B random too, so every adapter acts). */
function patternModel(seed: number, lora: Qwen3LoraConfig): Qwen3Model {
  const rng = new Rng(seed);
  const config = tinyConfig();
  const { weights } = randomModel(config, rng, lora.target_modules);
  const adapters = initQwen3Adapters(config, lora, rng);
  for (const adapter of Object.values(adapters.adapters)) adapter.lora_B = scale(randomNormal(adapter.lora_B.rows, adapter.lora_B.cols, rng), 0.3);
  return { config, weights, lora: adapters };
}

/** The logits of every sequence, one after another. */
function logitsOf(model: Qwen3Model, ids: number[][]): Matrix[] {
  const result = qwen3ForCausalLM(model, ids, { method: 'exact' });
  result.dispose();
  return result.logits;
}

describe("rank_pattern (PEFT's): a rank per module, scaling lora_alpha / that rank", () => {
  const lora: Qwen3LoraConfig = { r: 2, lora_alpha: 4, target_modules: TARGETS, rank_pattern: PATTERN };

  it("initQwen3Adapters gives each module its own rank, and the config's rank_pattern is kept", () => {
    const config = tinyConfig();
    const adapters = initQwen3Adapters(config, lora, new Rng(1));
    expect(adapters.rank_pattern).toEqual(PATTERN);
    for (const { path, out, in: inner } of adaptedModules(config, TARGETS)) {
      const rank = PATTERN[path] ?? 2;
      expect(adapters.adapters[path].lora_A.shape, path).toEqual([rank, inner]);
      expect(adapters.adapters[path].lora_B.shape, path).toEqual([out, rank]);
    }
  });

  it('computes the logits of the base model with every adapter merged by hand, W + (lora_alpha/r_m)·lora_B·lora_A (1e-12, float64, a batch of 2)', () => {
    const model = patternModel(31, lora);
    const merged = { ...model.weights };
    for (const [path, { lora_A, lora_B }] of Object.entries(model.lora!.adapters)) {
      const rank = PATTERN[path] ?? 2;
      expect(lora_A.rows).toBe(rank);
      merged[`${path}.weight`] = add(merged[`${path}.weight`], scale(matmul(lora_B, lora_A), 4 / rank));
    }
    const ids = randomIds(11, [7, 5], new Rng(32));
    const adapted = logitsOf(model, ids);
    const base = logitsOf({ config: model.config, weights: merged }, ids);
    for (let s = 0; s < ids.length; s++) expect(mismatch(adapted[s], base[s])).toBeLessThan(1e-12);
    // With one scaling lora_alpha/r for every module instead, the logits would differ: the per-module scaling is what matches.
    const wrong = { ...model.weights };
    for (const [path, { lora_A, lora_B }] of Object.entries(model.lora!.adapters))
      wrong[`${path}.weight`] = add(wrong[`${path}.weight`], scale(matmul(lora_B, lora_A), 2));
    expect(mismatch(logitsOf({ config: model.config, weights: wrong }, ids)[0], adapted[0])).toBeGreaterThan(1e-6);
  });

  it('every gradient, adapters of ranks 1 to 4 included, against finite differences', () => {
    const model = patternModel(33, lora);
    const rng = new Rng(34);
    expect(checkAll(model, randomIds(11, [6, 4], rng), { method: 'exact' }, rng)).toBeLessThan(FD_TOLERANCE);
  });

  it('generate applies each adapter with its own scaling: its first logits are the full forward’s last row (1e-10)', () => {
    const model = patternModel(35, lora);
    const prompt = [3, 1, 4, 1, 5, 9];
    const { logits } = generateWithLogits(model, prompt, { maxNewTokens: 1 });
    const full = logitsOf(model, [prompt])[0];
    for (let j = 0; j < full.cols; j++) expect(Math.abs(logits[0].get(0, j) - full.get(full.rows - 1, j))).toBeLessThan(1e-10);
  });

  it("refuses a key that is not an adapted module's path, and a rank that is not a positive safe integer, naming it", () => {
    const config = tinyConfig();
    const bad: [string, unknown][] = [
      ['q_proj', 4], // PEFT's short form is not a module path here
      [qwen3ModulePath(2, 'q_proj'), 4], // layer 2 of a 2-layer model
      [qwen3ModulePath(0, 'k_proj'), 4], // not a target module
      [`base_model.model.${qwen3ModulePath(0, 'q_proj')}`, 4],
      [qwen3ModulePath(0, 'q_proj'), 0],
      [qwen3ModulePath(0, 'q_proj'), -1],
      [qwen3ModulePath(0, 'q_proj'), 1.5],
      [qwen3ModulePath(0, 'q_proj'), NaN],
      [qwen3ModulePath(0, 'q_proj'), Infinity],
      [qwen3ModulePath(0, 'q_proj'), 2 ** 53],
      [qwen3ModulePath(0, 'q_proj'), '4'],
    ];
    for (const [key, rank] of bad) {
      const config2 = { ...lora, rank_pattern: { [key]: rank } as Record<string, number> };
      expect(() => initQwen3Adapters(config, config2, new Rng(1)), key).toThrow(InvalidArgumentError);
      expect(() => initQwen3Adapters(config, config2, new Rng(1)), key).toThrow(key);
      const model = patternModel(36, lora);
      expect(() => qwen3ForCausalLM({ ...model, lora: { ...model.lora!, rank_pattern: config2.rank_pattern } }, [1, 2, 3]), key).toThrow(InvalidArgumentError);
    }
    for (const pattern of [null, [4], 'q_proj=4', 4]) {
      expect(() => initQwen3Adapters(config, { ...lora, rank_pattern: pattern as unknown as Record<string, number> }, new Rng(1))).toThrow(
        InvalidArgumentError,
      );
    }
  });

  it('checks each adapter against its own rank: r-shaped adapters where the pattern says otherwise are a ShapeError naming the module', () => {
    const model = patternModel(37, lora);
    const plain = initQwen3Adapters(model.config, { r: 2, lora_alpha: 4, target_modules: TARGETS }, new Rng(2));
    const path = qwen3ModulePath(0, 'q_proj');
    expect(() => qwen3ForCausalLM({ ...model, lora: { ...plain, rank_pattern: { [path]: 4 } } }, [1, 2, 3])).toThrow(ShapeError);
    expect(() => qwen3ForCausalLM({ ...model, lora: { ...plain, rank_pattern: { [path]: 4 } } }, [1, 2, 3])).toThrow(path);
    // …and the pattern's adapters without the pattern likewise.
    expect(() => qwen3ForCausalLM({ ...model, lora: { ...model.lora!, rank_pattern: undefined } }, [1, 2, 3])).toThrow(ShapeError);
    expect(() => generateWithLogits({ ...model, lora: { ...model.lora!, rank_pattern: undefined } }, [1, 2], { maxNewTokens: 1 })).toThrow(ShapeError);
  });

  it('without rank_pattern (or with an empty one, or one that repeats r) the adapters are the ones drawn before rank_pattern existed, bit for bit', () => {
    const config = tinyConfig();
    const plain: Qwen3LoraConfig = { r: 3, lora_alpha: 6, target_modules: ['k_proj', 'up_proj', 'down_proj'] };
    // The draw as it always was: per layer, per target module, lora_A r×in uniform on ±1/√in, lora_B zeros.
    const rng = new Rng(7);
    const expected = adaptedModules(config, plain.target_modules).map(({ in: inner }) =>
      randomUniform(3, inner, rng, { low: -1 / Math.sqrt(inner), high: 1 / Math.sqrt(inner) }),
    );
    const repeat = Object.fromEntries(adaptedModules(config, plain.target_modules).map(({ path }) => [path, 3]));
    for (const variant of [plain, { ...plain, rank_pattern: {} }, { ...plain, rank_pattern: repeat }]) {
      const adapters = initQwen3Adapters(config, variant, new Rng(7)).adapters;
      const paths = adaptedModules(config, plain.target_modules).map((m) => m.path);
      expect(Object.keys(adapters)).toEqual(paths);
      paths.forEach((path, i) => {
        expect(Array.from(adapters[path].lora_A.toFlat())).toEqual(Array.from(expected[i].toFlat()));
        expect(Array.from(adapters[path].lora_B.toFlat()).every((b) => b === 0)).toBe(true);
      });
    }
    expect('rank_pattern' in initQwen3Adapters(config, plain, new Rng(7))).toBe(false);
  });
});
