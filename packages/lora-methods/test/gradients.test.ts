import { randomNormal, Rng } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { cora, lora, type LoraMethod, loraSb, racLora, sbora, xgbLora } from '../src/index.js';
import { finiteDifferenceGradients, methodGradients, quadratic, relativeError } from './helpers.js';

// Methods whose `gradients` are the exact ∂loss/∂parameter of their parameterisation: checked
// against central differences of ½‖X·W_effᵀ − Y‖² after a random nudge of every parameter (so
// that no factor is zero and every chain-rule term matters).
const exact: [string, LoraMethod][] = [
  ['lora', lora],
  ['lora-sb', loraSb()],
  ['sbora FA', sbora({ variant: 'FA' })],
  ['sbora FB', sbora({ variant: 'FB' })],
  ['cora (B fixed)', cora()],
  ['cora (B trained)', cora({ trainB: true })],
  ['rac-lora (B trained)', racLora()],
  ['rac-lora (A trained)', racLora({ trained: 'A' })],
  ['xgblora', xgbLora()],
];

describe('exact gradients against finite differences', () => {
  for (const [label, method] of exact) {
    it(label, () => {
      const rng = new Rng(label.length * 7);
      const [out, inn, r] = [5, 4, 2];
      const weight = randomNormal(out, inn, rng);
      const problem = quadratic(6, out, inn, rng);
      const state = method.init({ weight, weightGradient: randomNormal(out, inn, rng), r, lora_alpha: 3, rng });
      for (const p of state.parameters) for (let k = 0; k < p.data.length; k++) p.data[k] += 0.3 * rng.normal();
      const grads = methodGradients(state, weight, problem);
      const fd = finiteDifferenceGradients(state, weight, problem);
      expect(grads.length).toBe(state.parameters.length);
      grads.forEach((g, i) => {
        expect(g.shape).toEqual(state.parameters[i].shape);
        expect(relativeError(g.toFlat(), fd[i])).toBeLessThan(1e-7);
      });
    });
  }

  it('the check can fail: a wrong gradient (∂lora_B where ∂R is due) is caught', () => {
    const rng = new Rng(1);
    const weight = randomNormal(5, 4, rng);
    const problem = quadratic(6, 5, 4, rng);
    const state = loraSb().init({ weight, weightGradient: randomNormal(5, 4, rng), r: 2, lora_alpha: 2, rng });
    const fd = finiteDifferenceGradients(state, weight, problem);
    const wrong = methodGradients(state, weight, problem)[0]
      .toFlat()
      .map((v) => v * 1.01);
    expect(relativeError(wrong, fd[0])).toBeGreaterThan(1e-4);
  });
});
