import { loraGradients, relativeGradientError, type LoraOptions } from '@almora/lora';
import { Rng } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { pythonModuleMissing } from '@almora/vitest-config/python';
import { NumpyPeer, numpyInputs, type NumpyMethod } from '../src/peers/numpy.js';
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
    it(`gives loraGradients' adapter gradients on the same inputs (${adaptation})`, async () => {
      // 300 rows: two full exact blocks of 128 and a partial one.
      const problem = benchProblem({ length: 300, d: 8, rank: 4, adaptation, gamma: 0.5 }, new Rng(7));
      const peer = await NumpyPeer.open();
      if (!(peer instanceof NumpyPeer)) throw new Error(peer.note);
      expect(peer.blas.library).not.toBe('none found');
      await peer.load(numpyInputs(problem));
      const runs = [];
      for (const [method] of TWINS) runs.push(await peer.run(method));
      peer.close();
      const exact = loraGradients(problem, { method: 'exact' }).grads;
      for (const [i, [method, options, tolerance]] of TWINS.entries()) {
        const { seconds, grads } = runs[i];
        expect(seconds).toBeGreaterThan(0);
        expect(Object.keys(grads).sort()).toEqual(Object.keys(exact).sort());
        expect(relativeGradientError(grads, loraGradients(problem, options).grads)).toBeLessThan(tolerance);
        // The fast methods are approximations: agreeing with almora's twin is not agreeing with exact.
        if (method !== 'exact') expect(relativeGradientError(grads, exact)).toBeGreaterThan(1e-6);
      }
    });
  }

  it('rejects a failed request and keeps the session', async () => {
    const peer = await NumpyPeer.open();
    if (!(peer instanceof NumpyPeer)) throw new Error(peer.note);
    await expect(peer.run('exact')).rejects.toThrow(/run before load/);
    await peer.load(numpyInputs(benchProblem({ length: 16, d: 4, rank: 2, adaptation: 'partial', gamma: 0.5 }, new Rng(1))));
    await expect(peer.run('no such method' as NumpyMethod)).rejects.toThrow(/KeyError/);
    expect((await peer.run('exact')).seconds).toBeGreaterThan(0);
    peer.close();
  });
});
