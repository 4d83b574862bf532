import { describe, expect, it } from 'vitest';
import { type Backend, BackendError, cpuBackend, type Matrix, randomNormal, Rng } from '@almora/tensor';
import { loraAttention, loraGradients } from '../src/index.js';
import { randomLayer } from './layers.js';
import { randomProblem } from './reference.js';

const PRODUCERS = ['upload', 'zeros', 'sliceRows', 'matmul', 'add', 'sub', 'hadamard', 'affine', 'abs', 'scaleRows', 'rowSums', 'colSums', 'faceSplit', 'faceSplitReduce', 'productFeatures', 'productFeaturesBackward', 'attentionProbabilities', 'attentionScoresGradient', 'triangle'] as const;

/** The CPU backend, counting every handle it hands out and every one given back; reads can be made to fail. */
function tracking(failOnRead?: number): Backend<Matrix> & { live(): number } {
  const live = new Map<Matrix, number>();
  let reads = 0;
  const backend = { ...cpuBackend, name: 'tracking cpu' } as Backend<Matrix> & { live(): number };
  for (const name of PRODUCERS) {
    const primitive = cpuBackend[name] as (...args: unknown[]) => Matrix;
    (backend as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      const handle = primitive.apply(cpuBackend, args);
      live.set(handle, (live.get(handle) ?? 0) + 1);
      return handle;
    };
  }
  backend.dispose = (m) => {
    const count = live.get(m);
    if (count === 1) live.delete(m);
    else if (count !== undefined) live.set(m, count - 1);
    cpuBackend.dispose(m);
  };
  backend.readSync = (m) => {
    if (++reads === failOnRead) throw new BackendError('the device was lost');
    return cpuBackend.readSync!(m);
  };
  backend.live = () => live.size;
  return backend;
}

describe('device handles: everything made is given back', () => {
  const rng = new Rng(1000);
  const layer = randomLayer({ dModel: 6, heads: 2, headDim: 3, r: 2, adapted: ['q_proj', 'k_proj', 'v_proj'], causal: true }, rng);
  const x = randomNormal(40, 6, rng);
  const g = randomNormal(40, 6, rng);
  const paths = [{ method: 'exact' }, { method: 'exact', memoryBudget: 0 }, { method: 'fast', degree: 2 }, { method: 'fast', degree: 2, variant: 'autodiff' }] as const;

  for (const options of paths) {
    const label = JSON.stringify(options);
    it(`after backward, after dispose without backward, and after a failed read mid-way (${label})`, () => {
      const backend = tracking();
      loraAttention(layer, x, { ...options, backend }).backward(g);
      expect(backend.live()).toBe(0);
      loraAttention(layer, x, { ...options, backend }).dispose();
      expect(backend.live()).toBe(0);
      for (const failOnRead of [1, 2, 3, 5]) {
        const failing = tracking(failOnRead);
        expect(() => loraAttention(layer, x, { ...options, backend: failing }).backward(g)).toThrow(BackendError);
        expect(failing.live()).toBe(0);
      }
    });
  }

  it('loraGradients gives back everything, also when a read fails', () => {
    const problem = randomProblem({ length: 30, dIn: 4, dOut: 4, r: 1, targets: ['q', 'v'], heads: 2 }, 7);
    for (const options of [{ method: 'exact' }, { method: 'fast', degree: 2 }] as const) {
      const backend = tracking();
      loraGradients(problem, { ...options, backend });
      expect(backend.live()).toBe(0);
      const failing = tracking(2);
      expect(() => loraGradients(problem, { ...options, backend: failing })).toThrow(BackendError);
      expect(failing.live()).toBe(0);
    }
  });
});
