import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, type Matrix, Rng } from '@almora/tensor';
import { generate, type GenerateOptions, qwen3ForCausalLM, type Qwen3Model } from '../src/index.js';
import { generateWithLogits } from '../src/generate.js';
import { randomModel, tinyConfig } from './models.js';

/** The full forward's logits of the whole sequence (prompt + new ids), 'exact' attention. */
function fullLogits(model: Qwen3Model, ids: number[], qkNormCap?: number): Matrix {
  const result = qwen3ForCausalLM(model, ids, { method: 'exact', qkNormCap });
  result.dispose();
  return result.logits;
}

/** max over the row of |a − b_row|. */
function rowDifference(a: Matrix, b: Matrix, row: number): number {
  let worst = 0;
  for (let j = 0; j < a.cols; j++) worst = Math.max(worst, Math.abs(a.get(0, j) - b.get(row, j)));
  return worst;
}

function argmaxRow(m: Matrix, row: number): number {
  let best = 0;
  for (let j = 1; j < m.cols; j++) if (m.get(row, j) > m.get(row, best)) best = j;
  return best;
}

/** A tiny GQA model with adapters on every module and q_norm/k_norm gains some of which exceed the cap. */
function cappedModel(seed: number): { model: Qwen3Model; cap: number; prompt: number[] } {
  const rng = new Rng(seed);
  const model = randomModel(tinyConfig({ max_position_embeddings: 40 }), rng);
  const prompt = Array.from({ length: 5 }, () => rng.int(11));
  return { model, cap: 1.1, prompt };
}

describe('generate: the KV cache against the full forward', () => {
  it('the logits of every generated step equal the full forward of the whole sequence at that position (1e-10, float64, GQA, LoRA on all 7 modules, qkNormCap)', () => {
    const { model, cap, prompt } = cappedModel(21);
    const gains = Object.entries(model.weights).filter(([key]) => key.endsWith('_norm.weight') && key.includes('self_attn'));
    expect(gains.some(([, m]) => Array.from(m.data).some((g) => Math.abs(g) > cap))).toBe(true);
    for (const options of [
      { maxNewTokens: 12, qkNormCap: cap },
      { maxNewTokens: 12, qkNormCap: cap, temperature: 1.5, rng: new Rng(3) },
    ] as GenerateOptions[]) {
      const { ids, logits, stopped } = generateWithLogits(model, prompt, options);
      expect(stopped).toBe('length');
      expect(ids).toHaveLength(12);
      expect(logits).toHaveLength(12);
      const full = fullLogits(model, [...prompt, ...ids], cap);
      for (let i = 0; i < ids.length; i++) expect(rowDifference(logits[i], full, prompt.length - 1 + i)).toBeLessThan(1e-10);
    }
  });

  it('without the cap the cached path is the uncapped forward (and differs from the capped one)', () => {
    const { model, cap, prompt } = cappedModel(22);
    const { ids, logits } = generateWithLogits(model, prompt, { maxNewTokens: 4 });
    const full = fullLogits(model, [...prompt, ...ids]);
    for (let i = 0; i < ids.length; i++) expect(rowDifference(logits[i], full, prompt.length - 1 + i)).toBeLessThan(1e-10);
    expect(rowDifference(logits[0], fullLogits(model, prompt, cap), prompt.length - 1)).toBeGreaterThan(1e-6);
  });

  it('a one-token prompt, and a model without adapters', () => {
    const rng = new Rng(23);
    const { config, weights } = randomModel(tinyConfig({ num_key_value_heads: 4 }), rng);
    const model = { config, weights };
    const { ids, logits } = generateWithLogits(model, [3], { maxNewTokens: 6 });
    const full = fullLogits(model, [3, ...ids]);
    for (let i = 0; i < ids.length; i++) expect(rowDifference(logits[i], full, i)).toBeLessThan(1e-10);
  });
});

describe('generate: greedy and sampling', () => {
  it('greedy is deterministic and is the full forward’s argmax step by step', () => {
    const { model, cap, prompt } = cappedModel(24);
    const first = generate(model, prompt, { maxNewTokens: 10, qkNormCap: cap });
    expect(generate(model, prompt, { maxNewTokens: 10, qkNormCap: cap })).toEqual(first);
    const sequence = [...prompt];
    for (let i = 0; i < 10; i++) sequence.push(argmaxRow(fullLogits(model, sequence, cap), sequence.length - 1));
    expect(first.ids).toEqual(sequence.slice(prompt.length));
  });

  it('sampling with one seed gives the same ids; another seed other ids; topK = 1 is greedy', () => {
    const { model, prompt } = cappedModel(25);
    const sampled = (seed: number, topK?: number) => generate(model, prompt, { maxNewTokens: 15, temperature: 2, topK, rng: new Rng(seed) }).ids;
    expect(sampled(7)).toEqual(sampled(7));
    expect(sampled(8)).not.toEqual(sampled(7));
    expect(sampled(7, 3)).toEqual(sampled(7, 3));
    const greedy = generate(model, prompt, { maxNewTokens: 15 }).ids;
    expect(sampled(7, 1)).toEqual(greedy);
    expect(sampled(9, 1)).toEqual(greedy);
    // topK = 3 draws only among the 3 largest logits of each step.
    const { ids, logits } = generateWithLogits(model, prompt, { maxNewTokens: 15, temperature: 2, topK: 3, rng: new Rng(10) });
    ids.forEach((id, i) => expect(Array.from(logits[i].data).filter((z) => z > logits[i].data[id]).length).toBeLessThan(3));
  });

  it('stops at the first stop id, keeping it; maxNewTokens 0 generates nothing', () => {
    const { model, prompt } = cappedModel(26);
    const greedy = generate(model, prompt, { maxNewTokens: 10 }).ids;
    const stopAt = greedy[3];
    const at = greedy.indexOf(stopAt);
    expect(generate(model, prompt, { maxNewTokens: 10, stopIds: [stopAt] })).toEqual({ ids: greedy.slice(0, at + 1), stopped: 'stop' });
    expect(generate(model, prompt, { maxNewTokens: 0 })).toEqual({ ids: [], stopped: 'length' });
  });
});

describe('generate: refusals', () => {
  it('refuses an invalid prompt or option with InvalidArgumentError', () => {
    const { model, prompt } = cappedModel(27);
    const bad: [readonly number[], GenerateOptions][] = [
      [[], { maxNewTokens: 1 }],
      [[1, 11], { maxNewTokens: 1 }],
      [[1, -1], { maxNewTokens: 1 }],
      [[1, 2.5], { maxNewTokens: 1 }],
      [prompt, { maxNewTokens: -1 }],
      [prompt, { maxNewTokens: 1.5 }],
      [prompt, { maxNewTokens: 40 - prompt.length + 1 }],
      [prompt, { maxNewTokens: 1, temperature: -0.1 }],
      [prompt, { maxNewTokens: 1, temperature: Infinity }],
      [prompt, { maxNewTokens: 1, temperature: NaN }],
      [prompt, { maxNewTokens: 1, temperature: 1 }],
      [prompt, { maxNewTokens: 1, temperature: 1, rng: new Rng(1), topK: 0 }],
      [prompt, { maxNewTokens: 1, temperature: 1, rng: new Rng(1), topK: 2.5 }],
      [prompt, { maxNewTokens: 1, qkNormCap: 0 }],
      [prompt, { maxNewTokens: 1, stopIds: [11] }],
    ];
    for (const [ids, options] of bad) expect(() => generate(model, ids, options), JSON.stringify({ ids, options })).toThrow(InvalidArgumentError);
    expect(generate(model, prompt, { maxNewTokens: 40 - prompt.length }).ids).toHaveLength(40 - prompt.length);
  });
});
