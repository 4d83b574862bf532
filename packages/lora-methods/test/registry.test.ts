import { fromArray, InvalidArgumentError, NonFiniteError, randomNormal, Rng, ShapeError, zeros } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { LORA_METHODS, loraMethod, RANK_ALLOCATORS, rankAllocator } from '../src/index.js';

describe('the registry', () => {
  it('names every method issue #14 lists, each under its own name', () => {
    expect(Object.keys(LORA_METHODS).sort()).toEqual(['cora', 'lora', 'lora-one', 'lora-pro', 'lora-sb', 'rac-lora', 'sbora', 'xgblora']);
    for (const [name, method] of Object.entries(LORA_METHODS)) {
      expect(method.name).toBe(name);
      expect(loraMethod(name)).toBe(method);
    }
    expect(Object.keys(RANK_ALLOCATORS).sort()).toEqual(['gelora', 'sr-lora', 'sublora']);
    expect(rankAllocator('sr-lora')).toBe(RANK_ALLOCATORS['sr-lora']);
  });

  it('refuses unknown names with a typed error', () => {
    expect(() => loraMethod('dora')).toThrow(InvalidArgumentError);
    expect(() => loraMethod('__proto__')).toThrow(InvalidArgumentError);
    expect(() => rankAllocator('adalora' as 'gelora')).toThrow(InvalidArgumentError);
  });

  for (const [name, method] of Object.entries(LORA_METHODS)) {
    it(`${name}: bad r, shapes and non-finite values are typed errors`, () => {
      const rng = new Rng(1);
      const weight = randomNormal(6, 5, rng);
      const weightGradient = randomNormal(6, 5, rng);
      const ok = { weight, weightGradient, r: 2, lora_alpha: 4, rng };
      expect(() => method.init({ ...ok, r: 0 })).toThrow(InvalidArgumentError);
      expect(() => method.init({ ...ok, r: 6 })).toThrow(InvalidArgumentError);
      expect(() => method.init({ ...ok, lora_alpha: Number.NaN })).toThrow(InvalidArgumentError);
      expect(() => method.init({ ...ok, weight: fromArray([[1, Number.POSITIVE_INFINITY]]) })).toThrow(NonFiniteError);
      expect(() => method.init({ ...ok, weightGradient: randomNormal(5, 6, rng) })).toThrow(ShapeError);
      if (method.needsInitialGradient) expect(() => method.init({ ...ok, weightGradient: undefined })).toThrow(InvalidArgumentError);
      const state = method.init(ok);
      const { lora_A, lora_B } = state.adapter();
      expect(lora_A.shape).toEqual([2, 5]);
      expect(lora_B.shape).toEqual([6, 2]);
      expect(state.scaling).toBe(2);
      expect(() => state.gradients({ lora_A: zeros(2, 6), lora_B: zeros(6, 2) })).toThrow(ShapeError);
      const bad = zeros(6, 2);
      bad.set(0, 0, Number.NaN);
      expect(() => state.gradients({ lora_A: zeros(2, 5), lora_B: bad })).toThrow(NonFiniteError);
      expect(state.gradients({ lora_A: zeros(2, 5), lora_B: zeros(6, 2) }).map((g) => g.shape)).toEqual(state.parameters.map((p) => p.shape));
    });
  }
});
