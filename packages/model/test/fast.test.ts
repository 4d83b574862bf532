import { describe, expect, it } from 'vitest';
import { Rng } from '@almora/tensor';
import { qwen3ForCausalLM } from '../src/index.js';
import { mismatch, randomIds, randomModel, tinyConfig } from './models.js';

const EPSILON = 1e-6;
/**
 * The core certifies each attention matrix to ε entrywise (relative); through two layers, the MLP
 * and the loss that is no certificate on the model's gradients, so the stated tolerance is 100·ε
 * relative to max(1, |exact|) (measured here: 1.4e-7 chained, 1.1e-9 autodiff).
 */
const TOLERANCE = 100 * EPSILON;
const CAP = 0.5;

describe("the model through the attention core's fast path agrees with its exact path on small Γ", () => {
  for (const variant of ['chained', 'autodiff'] as const) {
    it(`method 'fast' (${variant}), ε = ${EPSILON}, q_norm/k_norm gains capped at ${CAP}: loss and every gradient within 100·ε`, () => {
      const rng = new Rng(variant === 'chained' ? 21 : 22);
      const model = randomModel(tinyConfig(), rng);
      const ids = randomIds(11, [48, 33], rng);
      const exact = qwen3ForCausalLM(model, ids, { method: 'exact', qkNormCap: CAP, weightGradients: true });
      const fast = qwen3ForCausalLM(model, ids, { method: 'fast', variant, epsilon: EPSILON, qkNormCap: CAP, weightGradients: true });
      for (const layer of fast.layers) {
        expect(layer.attention.chosen).toBe('fast');
        expect(layer.attention.heads).toHaveLength(2 * 4);
        expect(layer.gammaBound).toBeLessThanOrEqual(CAP * 4 ** 0.25);
        for (const head of layer.attention.heads) {
          expect(head.meetsEpsilon).toBe(true);
          expect(head.attentionBound).toBeLessThanOrEqual(EPSILON);
          expect(head.gamma).toBeLessThanOrEqual(layer.gammaBound);
        }
      }
      expect(Math.abs(fast.loss - exact.loss) / Math.max(1, exact.loss)).toBeLessThan(TOLERANCE);
      const [g, reference] = [fast.backward(), exact.backward()];
      for (const [key, m] of Object.entries(reference.weights!)) expect(mismatch(g.weights![key], m), key).toBeLessThan(TOLERANCE);
      for (const [path, adapter] of Object.entries(reference.lora)) {
        expect(mismatch(g.lora[path].lora_A, adapter.lora_A), path).toBeLessThan(TOLERANCE);
        expect(mismatch(g.lora[path].lora_B, adapter.lora_B), path).toBeLessThan(TOLERANCE);
      }
    });
  }

  it("'auto' reports every head of every layer and sequence, and Γ stays under each layer's bound without a cap", () => {
    const rng = new Rng(23);
    const model = randomModel(tinyConfig(), rng);
    const result = qwen3ForCausalLM(model, randomIds(11, [20, 12, 5], rng), { method: 'auto', epsilon: 1e-3 });
    expect(result.layers.map((l) => l.layer)).toEqual([0, 1]);
    for (const layer of result.layers) {
      expect(layer.attention.requested).toBe('auto');
      expect(layer.attention.heads).toHaveLength(3 * 4);
      for (const head of layer.attention.heads) {
        expect(head.reason.length).toBeGreaterThan(0);
        expect(head.gamma).toBeLessThanOrEqual(layer.gammaBound);
      }
    }
    result.dispose();
  });
});
