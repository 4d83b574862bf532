import { describe, expect, it } from 'vitest';
import { Rng } from '@almora/tensor';
import { IGNORE_INDEX, qwen3ForCausalLM } from '../src/index.js';
import { checkAll, FD_TOLERANCE, randomIds, randomModel, tinyConfig } from './models.js';

describe('qwen3ForCausalLM: every gradient against finite differences of the loss (float64, exact attention)', () => {
  for (const tied of [false, true]) {
    it(`every parameter kind and every LoRA module, a batch of 2, grouped-query attention, ${tied ? 'tied' : 'untied'} embeddings`, () => {
      const rng = new Rng(tied ? 12 : 11);
      const model = randomModel(tinyConfig({ tie_word_embeddings: tied }), rng);
      expect(checkAll(model, randomIds(11, [6, 4], rng), { method: 'exact' }, rng)).toBeLessThan(FD_TOLERANCE);
    });
  }

  it('one query head per key/value head (no grouping), one sequence', () => {
    const rng = new Rng(13);
    const model = randomModel(tinyConfig({ num_key_value_heads: 4, num_hidden_layers: 1 }), rng, ['q_proj', 'v_proj']);
    expect(checkAll(model, randomIds(11, [7], rng), { method: 'exact' }, rng)).toBeLessThan(FD_TOLERANCE);
  });

  it('with the q_norm/k_norm gains capped (some above the cap: they get no gradient, as the loss does not move with them)', () => {
    const rng = new Rng(14);
    const model = randomModel(tinyConfig(), rng, ['k_proj', 'o_proj']);
    const cap = 1.05;
    const gains = Object.entries(model.weights).filter(([key]) => key.endsWith('q_norm.weight') || key.endsWith('k_norm.weight'));
    // No gain within a finite-difference step of the cap, some beyond it.
    for (const [, m] of gains) for (let j = 0; j < m.cols; j++) if (Math.abs(Math.abs(m.data[j]) - cap) < 1e-3) m.data[j] += 0.01;
    expect(gains.some(([, m]) => Array.from(m.data).some((g) => Math.abs(g) > cap))).toBe(true);
    const ids = randomIds(11, [6, 5], rng);
    expect(checkAll(model, ids, { method: 'exact', qkNormCap: cap }, rng)).toBeLessThan(FD_TOLERANCE);
    const { weights } = qwen3ForCausalLM(model, ids, { method: 'exact', qkNormCap: cap, weightGradients: true }).backward();
    for (const [key, m] of gains) for (let j = 0; j < m.cols; j++) if (Math.abs(m.data[j]) > cap) expect(weights![key].data[j]).toBe(0);
  });

  it('labels with -100 (a prompt left out of the loss)', () => {
    const rng = new Rng(15);
    const model = randomModel(tinyConfig({ num_hidden_layers: 1 }), rng, ['q_proj', 'up_proj']);
    const ids = randomIds(11, [6, 5], rng);
    const labels = ids.map((seq) => seq.map((id, i) => (i < 3 ? IGNORE_INDEX : id)));
    const result = qwen3ForCausalLM(model, ids, { method: 'exact', labels });
    expect(result.tokens).toBe(3 + 2);
    result.dispose();
    expect(checkAll(model, ids, { method: 'exact', labels }, rng)).toBeLessThan(FD_TOLERANCE);
  });
});
