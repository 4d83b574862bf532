import { loraGradients, relativeGradientError, type LoraOptions } from '@almora/lora';
import { Rng } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { pythonModuleMissing } from '@almora/vitest-config/python';
import { numpyInputs, runNumpyPeer, type NumpyMethod } from '../src/peers/numpy.js';
import { benchProblem, type Adaptation } from '../src/problems.js';

const hasNumpy = pythonModuleMissing('numpy') === undefined;

/** Each numpy method beside the almora options that name the same algorithm, and how closely they must agree (rounding only). */
const TWINS: [NumpyMethod, LoraOptions, number][] = [
  ['exact', { method: 'exact' }, 1e-10],
  ['fast chained g2', { method: 'fast', degree: 2, polynomial: 'taylor', centerKeys: false, variant: 'chained' }, 1e-9],
  ['fast autodiff g2', { method: 'fast', degree: 2, polynomial: 'taylor', centerKeys: false, variant: 'autodiff' }, 1e-9],
];

describe.skipIf(!hasNumpy)('the numpy peer runs the same algorithms as almora', () => {
  for (const adaptation of ['partial', 'full'] as Adaptation[]) {
    it(`gives loraGradients' adapter gradients on the same inputs (${adaptation})`, () => {
      // 300 rows: two full exact blocks of 128 and a partial one.
      const length = 300;
      const problem = benchProblem({ length, d: 8, rank: 4, adaptation, gamma: 0.5 }, new Rng(7));
      const outcome = runNumpyPeer({
        lengths: [length],
        d: 8,
        rank: 4,
        adaptation,
        methods: TWINS.map(([m]) => m),
        repeats: 1,
        budget: 60,
        seed: 7,
        inputs: { [length]: numpyInputs(problem) },
      });
      if (!outcome.available) throw new Error(outcome.note);
      expect(outcome.blas.library).not.toBe('none found');
      const exact = loraGradients(problem, { method: 'exact' }).grads;
      for (const [method, options, tolerance] of TWINS) {
        const peer = outcome.results[length][method]!.grads!;
        expect(Object.keys(peer).sort()).toEqual(Object.keys(exact).sort());
        expect(relativeGradientError(peer, loraGradients(problem, options).grads)).toBeLessThan(tolerance);
        // The fast methods are approximations: agreeing with almora's twin is not agreeing with exact.
        if (method !== 'exact') expect(relativeGradientError(peer, exact)).toBeGreaterThan(1e-6);
      }
    });
  }
});
