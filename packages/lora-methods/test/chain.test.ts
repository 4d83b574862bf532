import { add, InvalidArgumentError, type Matrix, matmul, maxAbs, randomNormal, Rng, scale, sub } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { type LoraMethod, mergeIntoWeight, nextStage, racLora, xgbLora } from '../src/index.js';
import { effective, loss, methodGradients, numericalRank, quadratic } from './helpers.js';

/** Runs `stages` stages of `steps` gradient-descent steps each, checking every boundary. */
function runChain(method: LoraMethod, stages: number, r: number) {
  const rng = new Rng(31);
  const [out, inn] = [7, 6];
  const w0 = randomNormal(out, inn, rng);
  const problem = quadratic(12, out, inn, rng);
  const x = randomNormal(3, inn, rng);
  let module = { weight: w0, state: method.init({ weight: w0, r, lora_alpha: 2 * r, rng }) };
  let boundaryChange = 0;
  for (let stage = 0; stage < stages; stage++) {
    for (let step = 0; step < 20; step++) {
      const grads = methodGradients(module.state, module.weight, problem);
      module.state.parameters.forEach((p: Matrix, i) => {
        for (let k = 0; k < p.data.length; k++) p.data[k] -= 0.002 * grads[i].data[k];
      });
    }
    const before = matmul(x, effective(module.weight, module.state.adapter(), module.state.scaling), { transposeB: true });
    module = nextStage(method, module, { r, lora_alpha: 2 * r, rng });
    const after = matmul(x, effective(module.weight, module.state.adapter(), module.state.scaling), { transposeB: true });
    boundaryChange = Math.max(boundaryChange, maxAbs(sub(after, before)));
  }
  return { w0, weight: module.weight, boundaryChange, start: loss(problem, w0), end: loss(problem, module.weight) };
}

describe('chains', () => {
  for (const [label, method, r] of [
    ['RAC-LoRA', racLora(), 1],
    ['RAC-LoRA (A trained)', racLora({ trained: 'A' }), 2],
    ['XGBLoRA', xgbLora(), 1],
  ] as const) {
    it(`${label}: merging at a stage boundary changes no output, and the total update has rank ≤ stages·r`, () => {
      const stages = 3;
      const { w0, weight, boundaryChange, start, end } = runChain(method, stages, r);
      expect(boundaryChange).toBeLessThan(1e-12);
      const rank = numericalRank(sub(weight, w0));
      expect(rank).toBeLessThanOrEqual(stages * r);
      expect(rank).toBeGreaterThan(0);
      expect(end).toBeLessThan(start);
    });
  }

  it('mergeIntoWeight is W + s·B·A (through @almora/peft)', () => {
    const rng = new Rng(2);
    const adapter = { lora_A: randomNormal(2, 5, rng), lora_B: randomNormal(4, 2, rng) };
    const w = randomNormal(4, 5, rng);
    expect(maxAbs(sub(mergeIntoWeight(w, adapter, 0.75), add(w, scale(matmul(adapter.lora_B, adapter.lora_A), 0.75))))).toBeLessThan(1e-14);
  });

  it('carries its schedule, and refuses a bad one', () => {
    expect(racLora({ stepsPerStage: 7 }).chain).toEqual({ stepsPerStage: 7 });
    expect(xgbLora().chain?.stepsPerStage).toBe(100);
    expect(() => xgbLora({ stepsPerStage: 0 })).toThrow(InvalidArgumentError);
    expect(() => racLora({ std: -1 })).toThrow(InvalidArgumentError);
  });
});
