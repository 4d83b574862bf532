import { describe, expect, it } from 'vitest';
import { matmul, Rng, sliceRows } from '@almora/tensor';
import { qwen3ForCausalLM } from '../src/index.js';
import { rmsNorm } from '../src/rms-norm.js';
import { mismatch, randomIds, randomModel, tinyConfig } from './models.js';

describe("hiddenStates (transformers' output_hidden_states)", () => {
  for (const tied of [false, true]) {
    it(`the embedding output, then every layer's output; norm and lm_head of the last give the logits (1e-12, float64, a batch of 2, ${tied ? 'tied' : 'untied'} embeddings)`, () => {
      const rng = new Rng(tied ? 42 : 41);
      const model = randomModel(tinyConfig({ num_hidden_layers: 3, tie_word_embeddings: tied }), rng);
      const { config, weights } = model;
      const ids = randomIds(11, [6, 4], rng);
      const result = qwen3ForCausalLM(model, ids, { method: 'exact' });
      const { hiddenStates, logits } = result;
      expect(hiddenStates).toHaveLength(config.num_hidden_layers + 1);
      for (const h of hiddenStates) expect(h.shape).toEqual([10, config.hidden_size]);
      // The first: the embedding rows of the ids, sequences one after another.
      ids.flat().forEach((id, t) => expect(Array.from(hiddenStates[0].row(t))).toEqual(Array.from(weights['model.embed_tokens.weight'].row(id))));
      // The last, through the final RMSNorm and the LM head.
      const head = weights[tied ? 'model.embed_tokens.weight' : 'lm_head.weight'];
      const z = matmul(rmsNorm(hiddenStates[config.num_hidden_layers], weights['model.norm.weight'], config.rms_norm_eps).y, head, { transposeB: true });
      expect(mismatch(sliceRows(z, 0, 6), logits[0])).toBeLessThan(1e-12);
      expect(mismatch(sliceRows(z, 6, 10), logits[1])).toBeLessThan(1e-12);
      // Layer l's output is layer l + 1's input: each state differs from the one before.
      for (let l = 1; l <= config.num_hidden_layers; l++) expect(mismatch(hiddenStates[l], hiddenStates[l - 1])).toBeGreaterThan(1e-6);
      // The backward reads them and leaves them as they were.
      const before = hiddenStates.map((h) => Array.from(h.toFlat()));
      result.backward();
      hiddenStates.forEach((h, l) => expect(Array.from(h.toFlat())).toEqual(before[l]));
    });
  }

  it('one sequence: one row per token; with S²-Attn too', () => {
    const rng = new Rng(43);
    const model = randomModel(tinyConfig(), rng, ['q_proj']);
    const ids = randomIds(11, [8], rng)[0];
    for (const options of [{}, { shiftedSparseAttention: { groupSize: 4 } }]) {
      const result = qwen3ForCausalLM(model, ids, { method: 'exact', ...options });
      result.dispose();
      expect(result.hiddenStates.map((h) => h.shape)).toEqual([
        [8, 8],
        [8, 8],
        [8, 8],
      ]);
      const z = matmul(rmsNorm(result.hiddenStates[2], model.weights['model.norm.weight'], model.config.rms_norm_eps).y, model.weights['lm_head.weight'], {
        transposeB: true,
      });
      expect(mismatch(z, result.logits)).toBeLessThan(1e-12);
    }
  });
});
