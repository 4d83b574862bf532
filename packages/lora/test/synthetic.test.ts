import { Rng } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { loraGradients, relativeGradientError, syntheticProblem } from '../src/index.js';

describe('syntheticProblem', () => {
  it('puts the problem exactly at the requested Γ, deterministically', () => {
    for (const gamma of [0.25, 1, 3]) {
      const spec = { length: 64, d: 4, rank: 2, targets: ['q', 'k', 'v'] as const, gamma };
      const problem = syntheticProblem(spec, new Rng(9));
      const result = loraGradients(problem, { method: 'exact' });
      expect(result.report.gamma).toBeCloseTo(gamma, 12);
      expect(loraGradients(syntheticProblem(spec, new Rng(9)), { method: 'exact' }).loss).toBe(result.loss);
    }
  });

  it('relativeGradientError is 0 against itself and scale-free', () => {
    const problem = syntheticProblem({ length: 32, d: 4, rank: 2, targets: ['q', 'v'], gamma: 0.5 }, new Rng(2));
    const exact = loraGradients(problem, { method: 'exact' });
    const fast = loraGradients(problem, { method: 'fast', degree: 2 });
    expect(relativeGradientError(exact.grads, exact.grads)).toBe(0);
    const error = relativeGradientError(fast.grads, exact.grads);
    expect(error).toBeGreaterThan(0);
    expect(error).toBeLessThan(1e-2);
  });
});
