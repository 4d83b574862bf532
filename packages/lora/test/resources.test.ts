import { describe, expect, it } from 'vitest';
import { cpuBackend, FUSED_KERNEL_NAMES } from '@almora/kernels';
import { type Backend, BackendError, cpuCore, type Matrix, randomNormal, ResourceLimitError, Rng } from '@almora/tensor';
import { attention, loraAttention, loraGradients } from '../src/index.js';
import { randomLayer } from './layers.js';
import { randomProblem } from './reference.js';

const PRODUCERS = [
  'upload',
  'zeros',
  'sliceRows',
  'matmul',
  'add',
  'sub',
  'hadamard',
  'affine',
  'abs',
  'exp',
  'reciprocal',
  'scaleRows',
  'rowSums',
  'colSums',
  'rowMax',
  'triangle',
  ...FUSED_KERNEL_NAMES,
] as const;

/**
 * A CPU backend — with its fused overrides, or the core alone, whose fused kernels are then the
 * default compositions — counting every handle it hands out and every one given back; reads can
 * be made to fail.
 */
function tracking(failOnRead?: number, base: Backend<Matrix> = cpuBackend): Backend<Matrix> & { live(): number } {
  const live = new Map<Matrix, number>();
  let reads = 0;
  const backend = { ...base, name: 'tracking cpu' } as Backend<Matrix> & { live(): number };
  for (const name of PRODUCERS) {
    const primitive = (base as unknown as Record<string, ((...args: unknown[]) => Matrix) | undefined>)[name];
    if (!primitive) continue;
    (backend as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      const handle = primitive.apply(base, args);
      live.set(handle, (live.get(handle) ?? 0) + 1);
      return handle;
    };
  }
  backend.dispose = (m) => {
    const count = live.get(m);
    if (count === 1) live.delete(m);
    else if (count !== undefined) live.set(m, count - 1);
    base.dispose(m);
  };
  backend.readSync = (m) => {
    if (++reads === failOnRead) throw new BackendError('the device was lost');
    return base.readSync!(m);
  };
  backend.live = () => live.size;
  return backend;
}

describe('device handles: everything made is given back', () => {
  const rng = new Rng(1000);
  const layer = randomLayer({ dModel: 6, heads: 2, headDim: 3, r: 2, adapted: ['q_proj', 'k_proj', 'v_proj'], causal: true }, rng);
  const x = randomNormal(40, 6, rng);
  const g = randomNormal(40, 6, rng);
  const paths = [
    { method: 'exact' },
    { method: 'exact', probabilityBudget: 0 },
    { method: 'fast', degree: 2 },
    { method: 'fast', degree: 2, variant: 'autodiff' },
  ] as const;

  for (const base of [cpuBackend, cpuCore])
    for (const options of paths) {
      const label = `${base.name}, ${JSON.stringify(options)}`;
      it(`after backward, after dispose without backward, and after a failed read mid-way (${label})`, () => {
        const backend = tracking(undefined, base);
        loraAttention(layer, x, { ...options, backend }).backward(g);
        expect(backend.live()).toBe(0);
        loraAttention(layer, x, { ...options, backend }).dispose();
        expect(backend.live()).toBe(0);
        for (const failOnRead of [1, 2, 3, 5]) {
          const failing = tracking(failOnRead, base);
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

describe('resource guard: memory is estimated from the shapes before anything is allocated', () => {
  const rng = new Rng(2024);
  const problem = randomProblem({ length: 16, dIn: 8, dOut: 8, r: 2, targets: ['q', 'v'] }, 11);

  function refusal(run: () => unknown): ResourceLimitError {
    try {
      run();
    } catch (error) {
      if (error instanceof ResourceLimitError) return error;
      throw error;
    }
    throw new Error('expected a ResourceLimitError');
  }

  it('refuses a forced fast degree whose features would not fit, naming the estimate and the limit (was a 31 GB allocation)', () => {
    expect(() => loraGradients(problem, { method: 'fast', degree: 400 })).toThrow(/degree must be an integer from 0 to 100, got 400/);
    expect(() => loraGradients(problem, { maxDegree: 2000 })).toThrow(/maxDegree must be an integer from 1 to 100/);
    for (const degree of [60, 100]) {
      const error = refusal(() => loraGradients(problem, { method: 'fast', degree }));
      expect(error.code).toBe('RESOURCE_LIMIT');
      expect(error.limitBytes).toBe(2 ** 33);
      expect(error.estimatedBytes).toBeGreaterThan(error.limitBytes);
      expect(error.message).toMatch(/would hold about .* over memoryBudget = 8 GiB/);
    }
  });

  it("'auto' skips a fast path over the budget and says so; a call whose exact path is over it too is refused", () => {
    // Degree 3 on d = 8 is rank 165: cheaper than exact at L = 4096, but its features outweigh exact's 128-row blocks.
    const q = randomNormal(4096, 8, rng, { std: 0.05 });
    const k = randomNormal(4096, 8, rng, { std: 0.05 });
    const v = randomNormal(4096, 8, rng);
    const options = { method: 'auto', epsilon: 1e-2, degree: 3, variant: 'chained' } as const;
    const free = attention(q, k, v, options).report;
    expect(free.chosen).toBe('fast');
    const exactBytes = attention(q, k, v, { method: 'exact', probabilityBudget: 0 }).report.predictedBytes;
    expect(exactBytes).toBeLessThan(free.predictedBytes);
    const tight = attention(q, k, v, { ...options, memoryBudget: exactBytes }).report;
    expect(tight.chosen).toBe('exact');
    expect(tight.reason).toMatch(/over memoryBudget/);
    expect(tight.predictedBytes).toBeLessThanOrEqual(exactBytes);
    expect(refusal(() => attention(q, k, v, { method: 'auto', memoryBudget: exactBytes / 2 })).message).toMatch(/this call would hold about/);
  });

  it('keeps exact probabilities only within both budgets, and reports the prediction it checked', () => {
    const q = randomNormal(256, 4, rng);
    const k = randomNormal(256, 4, rng);
    const v = randomNormal(256, 4, rng);
    const recompute = attention(q, k, v, { method: 'exact', probabilityBudget: 0 }).report;
    const probabilities = 256 * 256 * 8;
    expect(attention(q, k, v, { method: 'exact' }).report.heads[0].keepsProbabilities).toBe(true);
    expect(attention(q, k, v, { method: 'exact', memoryBudget: recompute.predictedBytes + probabilities - 1 }).report.heads[0].keepsProbabilities).toBe(false);
    const kept = attention(q, k, v, { method: 'exact', memoryBudget: recompute.predictedBytes + probabilities }).report;
    expect(kept.heads[0].keepsProbabilities).toBe(true);
    expect(kept.predictedBytes).toBe(recompute.predictedBytes + probabilities);
    expect(kept.memoryBudget).toBe(recompute.predictedBytes + probabilities);
  });

  it('rejects a memoryBudget that is not a positive number', () => {
    for (const memoryBudget of [0, -1, Number.NaN]) expect(() => loraGradients(problem, { memoryBudget })).toThrow(/memoryBudget must be a number > 0/);
  });
});
