import { cpuBackend } from '@almora/kernels';
import { type Backend, type Matrix } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { randomNormal, Rng } from '@almora/tensor';
import { attention, attentionAsync, loraAttention, loraAttentionAsync, loraGradients, loraGradientsAsync } from '../src/index.js';
import { randomLayer } from './layers.js';
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
      for (const options of [
        { method: 'exact' },
        { method: 'fast', degree: 3 },
        { method: 'fast', degree: 3, variant: 'autodiff' },
        { method: 'auto', epsilon: 1e-2 },
      ] as const) {
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

  it('loraAttentionAsync and attentionAsync give what their sync twins give, awaiting every read', async () => {
    const rng = new Rng(12);
    const layer = randomLayer({ dModel: 6, heads: 2, headDim: 3, r: 2, adapted: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], causal: true }, rng);
    const x = randomNormal(30, 6, rng);
    const g = randomNormal(30, 6, rng);
    for (const options of [
      { method: 'exact' },
      { method: 'exact', probabilityBudget: 0 },
      { method: 'fast', degree: 3 },
      { method: 'fast', degree: 3, variant: 'autodiff' },
    ] as const) {
      const backend = asyncOnly();
      const sync = loraAttention(layer, x, options);
      const later = await loraAttentionAsync(layer, x, { ...options, backend });
      expect(Array.from(later.output.data)).toEqual(Array.from(sync.output.data));
      const [a, b] = [await later.backward(g), sync.backward(g)];
      expect(backend.reads).toBeGreaterThan(0);
      expect(Array.from(a.dx.data)).toEqual(Array.from(b.dx.data));
      for (const module of ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const)
        expect(Array.from(a.grads[module]!.lora_A.data)).toEqual(Array.from(b.grads[module]!.lora_A.data));
      const q = randomNormal(30, 4, rng);
      const core = await attentionAsync(q, q, x, { ...options, heads: 2, backend: asyncOnly() });
      const coreSync = attention(q, q, x, { ...options, heads: 2 });
      const [c, d] = [await core.backward(g), coreSync.backward(g)];
      expect(Array.from(c.dq.data)).toEqual(Array.from(d.dq.data));
      expect(Array.from(c.dv.data)).toEqual(Array.from(d.dv.data));
    }
  });

  it('the sync layer refuses an async-only backend, naming the async entry points', () => {
    const layer = randomLayer({ dModel: 4, heads: 1, headDim: 2, r: 1, adapted: ['q_proj'] }, new Rng(13));
    expect(() => loraAttention(layer, randomNormal(8, 4, new Rng(14)), { backend: asyncOnly() })).toThrowError(
      expect.objectContaining({ code: 'BACKEND', message: expect.stringContaining('loraAttentionAsync') }),
    );
  });

  it('loraGradients refuses a backend that cannot read synchronously, naming the async entry point', () => {
    const problem = randomProblem({ length: 16, dIn: 4, dOut: 4, r: 1, targets: ['q', 'v'] }, 3);
    expect(() => loraGradients(problem, { method: 'exact', backend: asyncOnly() })).toThrowError(
      expect.objectContaining({ code: 'BACKEND', message: expect.stringContaining('loraGradientsAsync') }),
    );
  });

  it('errors inside the algorithm reach the caller of the async entry point', async () => {
    const problem = randomProblem({ length: 64, dIn: 4, dOut: 4, r: 1, targets: ['q', 'v'], xScale: 40 }, 5);
    await expect(loraGradientsAsync(problem, { method: 'fast', degree: 1, backend: asyncOnly() })).rejects.toMatchObject({ code: 'OUT_OF_REGIME' });
  });
});
