import { type Backend, cpuBackend, type Matrix } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { loraGradients, loraGradientsAsync } from '../src/index.js';
import { randomProblem } from './reference.js';

/** The CPU backend as an asynchronous device would present it: reads only through a Promise. */
function asyncOnly(): Backend<Matrix> & { reads: number } {
  const backend = { ...cpuBackend, name: 'async cpu', reads: 0 } as Backend<Matrix> & { reads: number };
  delete (backend as { readSync?: unknown }).readSync;
  backend.read = (m) => {
    backend.reads++;
    return new Promise((resolve) => setTimeout(() => resolve(cpuBackend.readSync!(m)), 0));
  };
  return backend;
}

describe('asynchronous devices', () => {
  for (const causal of [false, true]) {
    it(`loraGradientsAsync runs the same algorithm, awaiting every read (${causal ? 'causal' : 'unmasked'})`, async () => {
      const problem = randomProblem({ length: 40, dIn: 6, dOut: 6, r: 2, targets: ['q', 'k', 'v'], heads: 2, causal }, 11);
      for (const options of [{ method: 'exact' }, { method: 'fast', degree: 3 }, { method: 'fast', degree: 3, variant: 'autodiff' }, { method: 'auto', epsilon: 1e-2 }] as const) {
        const backend = asyncOnly();
        const sync = loraGradients(problem, options);
        const later = await loraGradientsAsync(problem, { ...options, backend });
        expect(backend.reads).toBeGreaterThan(0);
        expect(later.loss).toBe(sync.loss);
        expect(later.report.chosen).toBe(sync.report.chosen);
        expect(later.report.gradientBound).toEqual(sync.report.gradientBound);
        for (const t of ['q', 'k', 'v'] as const) {
          expect(Array.from(later.grads[t]!.a.data)).toEqual(Array.from(sync.grads[t]!.a.data));
          expect(Array.from(later.grads[t]!.b.data)).toEqual(Array.from(sync.grads[t]!.b.data));
        }
      }
    });
  }

  it('loraGradients refuses a backend that cannot read synchronously, naming the async entry point', () => {
    const problem = randomProblem({ length: 16, dIn: 4, dOut: 4, r: 1, targets: ['q', 'v'] }, 3);
    expect(() => loraGradients(problem, { method: 'exact', backend: asyncOnly() })).toThrowError(expect.objectContaining({ code: 'BACKEND', message: expect.stringContaining('loraGradientsAsync') }));
  });

  it('errors inside the algorithm reach the caller of the async entry point', async () => {
    const problem = randomProblem({ length: 64, dIn: 4, dOut: 4, r: 1, targets: ['q', 'v'], xScale: 40 }, 5);
    await expect(loraGradientsAsync(problem, { method: 'fast', degree: 1, backend: asyncOnly() })).rejects.toMatchObject({ code: 'OUT_OF_REGIME' });
  });
});
