import { describe, expect, it } from 'vitest';
import { add, matmul, scale, toDType, type Matrix } from '@almora/tensor';
import { attentionForward, loraGradients, type LoraProblem, type Target } from '../src/index.js';
import { denseProblem, maxDifference, nudged, randomProblem, relativeError, type ProblemShape } from './reference.js';

const cases: [string, ProblemShape][] = [
  ['partial (q, v), one head', { length: 9, dIn: 4, dOut: 4, r: 2, targets: ['q', 'v'] }],
  ['full (q, k, v), one head', { length: 9, dIn: 4, dOut: 4, r: 2, targets: ['q', 'k', 'v'] }],
  ['full, two heads, causal', { length: 8, dIn: 5, dOut: 6, r: 3, heads: 2, targets: ['q', 'k', 'v'], causal: true }],
  ['partial, causal, batch of 2', { length: 7, dIn: 4, dOut: 4, r: 1, targets: ['q', 'v'], causal: true, batch: 2 }],
  ['full, cross-attention, three heads', { length: 6, dIn: 3, dOut: 6, r: 2, heads: 3, targets: ['q', 'k', 'v'], cross: true }],
];

function withAdapter(problem: LoraProblem, target: Target, which: 'a' | 'b', m: Matrix): LoraProblem {
  const adapters = { ...problem.adapters, [target]: { ...problem.adapters[target]!, [which]: m } };
  return { ...problem, adapters };
}

describe('exact LoRA gradients', () => {
  it.each(cases)('match central finite differences: %s', (_name, shape) => {
    const problem = randomProblem(shape, 11);
    const result = loraGradients(problem, { method: 'exact' });
    expect(result.report.chosen).toBe('exact');
    const h = 1e-6;
    for (const t of shape.targets) {
      for (const which of ['a', 'b'] as const) {
        const m = problem.adapters[t]![which];
        const grad = result.grads[t]![which];
        for (let e = 0; e < m.data.length; e++) {
          const plus = loraGradients(withAdapter(problem, t, which, nudged(m, e, h)), { method: 'exact' }).loss;
          const minus = loraGradients(withAdapter(problem, t, which, nudged(m, e, -h)), { method: 'exact' }).loss;
          const numeric = (plus - minus) / (2 * h);
          expect(Math.abs(grad.data[e] - numeric)).toBeLessThan(1e-7 * Math.max(1, Math.abs(numeric)));
        }
      }
    }
  });

  it.each(cases)('match the plain unblocked reference to 1e-12 with blocks that do not divide L: %s', (_name, shape) => {
    const problem = randomProblem({ ...shape, length: 37 }, 12);
    const reference = denseProblem(problem);
    for (const blockSize of [1, 5, 16, 128]) {
      const result = loraGradients(problem, { method: 'exact', blockSize, weightGradients: true });
      expect(Math.abs(result.loss - reference.loss)).toBeLessThan(1e-12 * Math.max(1, reference.loss));
      for (const t of shape.targets) {
        for (const which of ['a', 'b', 'w'] as const) {
          expect(relativeError(result.grads[t]![which]!, reference.grads[t]![which])).toBeLessThan(1e-12);
        }
      }
    }
  });

  it('survives scores that would overflow exp without the row maximum', () => {
    const problem = randomProblem({ length: 12, dIn: 4, dOut: 4, r: 2, targets: ['q', 'v'], xScale: 40 }, 13);
    const result = loraGradients(problem, { method: 'exact' });
    expect(Number.isFinite(result.loss)).toBe(true);
    for (const t of ['q', 'v'] as const) expect(result.grads[t]!.a.data.every(Number.isFinite)).toBe(true);
  });

  it('computes in float32 when the inputs are float32, close to float64', () => {
    const p64 = randomProblem({ length: 40, dIn: 4, dOut: 4, r: 2, targets: ['q', 'k', 'v'] }, 14);
    const f32 = (m: Matrix) => toDType(m, 'float32');
    const p32: LoraProblem = {
      ...p64,
      x: f32(p64.x as Matrix),
      target: f32(p64.target as Matrix),
      weights: { q: f32(p64.weights.q), k: f32(p64.weights.k), v: f32(p64.weights.v) },
      adapters: Object.fromEntries(Object.entries(p64.adapters).map(([t, ad]) => [t, { a: f32(ad!.a), b: f32(ad!.b) }])),
    };
    const r32 = loraGradients(p32, { method: 'exact' });
    const r64 = loraGradients(p64, { method: 'exact' });
    expect(r32.grads.q!.a.dtype).toBe('float32');
    for (const t of ['q', 'k', 'v'] as const) expect(relativeError(r32.grads[t]!.b, r64.grads[t]!.b)).toBeLessThan(1e-4);
    expect(maxDifference(r32.output as Matrix, r64.output as Matrix)).toBeLessThan(1e-4);
  });
});

describe('attentionForward', () => {
  it('equals the output of the exact gradient pass, multi-head and causal', () => {
    const problem = randomProblem({ length: 30, dIn: 4, dOut: 6, r: 2, heads: 3, targets: ['q', 'v'], causal: true }, 15);
    const withAdapters = loraGradients(problem, { method: 'exact' });
    const s = problem.alpha / 2;
    const w = (t: 'q' | 'k' | 'v') => {
      const ad = problem.adapters[t];
      return ad ? add(problem.weights[t], scale(matmul(ad.b, ad.a), s)) : problem.weights[t];
    };
    const out = attentionForward(problem.x as Matrix, { q: w('q'), k: w('k'), v: w('v') }, { heads: 3, causal: true });
    expect(maxDifference(out, withAdapters.output as Matrix)).toBeLessThan(1e-14);
  });
});
