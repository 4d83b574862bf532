import { fromArray } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { applyUpdate, createOptimizer, learningRate } from '../src/index.js';

describe('optimizer and schedule', () => {
  it('warms up linearly, then decays to 10% of the peak', () => {
    const config = { learningRate: 1, warmupSteps: 4, decay: 'cosine' as const, steps: 14 };
    expect([0, 1, 2, 3].map((s) => learningRate(config, s))).toEqual([0.25, 0.5, 0.75, 1]);
    expect(learningRate(config, 4)).toBeCloseTo(1, 12);
    expect(learningRate(config, 13)).toBeCloseTo(0.1, 12);
    expect(learningRate({ ...config, decay: 'linear' }, 8.5)).toBeCloseTo(0.55, 12);
    expect(learningRate({ ...config, decay: 'none' }, 13)).toBe(1);
  });

  it("takes Adam's first step as lr·sign(g) and SGD's as lr·g", () => {
    const p = fromArray([[1, 1]]);
    const adam = createOptimizer('adam', [2]);
    applyUpdate(adam, [p], [fromArray([[0.5, -3]])], 0.1, 1);
    expect(p.get(0, 0)).toBeCloseTo(0.9, 6);
    expect(p.get(0, 1)).toBeCloseTo(1.1, 6);
    const q = fromArray([[1, 1]]);
    applyUpdate(createOptimizer('sgd', [2]), [q], [fromArray([[0.5, -3]])], 0.1, 0.5);
    expect(q.toArray()).toEqual([[1 - 0.025, 1 + 0.15]]);
  });
});
