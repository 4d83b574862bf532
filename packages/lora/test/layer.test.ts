import { describe, expect, it } from 'vitest';
import { add, fromFlat, full, identity, InvalidArgumentError, type Matrix, randomNormal, Rng, scale, ShapeError, toDType, transpose } from '@almora/tensor';
import { attention, loraAttention, loraGradients, type AttentionLayer, type ModuleName } from '../src/index.js';
import { finiteDifference, gradientMismatch, projectedLoss, randomLayer } from './layers.js';
import { randomProblem } from './reference.js';

const ADAPTATIONS: Record<string, ModuleName[]> = {
  partial: ['q_proj', 'v_proj'],
  full: ['q_proj', 'k_proj', 'v_proj'],
  'full + o_proj': ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
};

/** Finite differences move each entry by 1e-6; a correct gradient agrees to about 1e-9 relative. */
const FD_TOLERANCE = 1e-7;

describe('attention core: dq, dk, dv against finite differences (exact path)', () => {
  for (const causal of [false, true]) {
    for (const heads of [1, 2, 3, 4]) {
      for (const [kept, probabilityBudget] of [
        ['probabilities kept', undefined],
        ['recomputed', 0],
      ] as const) {
        it(`${heads} head${heads > 1 ? 's' : ''}, ${causal ? 'causal' : 'not causal'}, ${kept}`, () => {
          const rng = new Rng(100 + heads + (causal ? 10 : 0));
          const L = 6;
          const q = scale(randomNormal(L, 2 * heads, rng), 0.8);
          const k = scale(randomNormal(L, 2 * heads, rng), 0.8);
          const v = randomNormal(L, 3 * heads, rng);
          const g = randomNormal(L, 3 * heads, rng);
          const options = { heads, causal, method: 'exact' as const, blockSize: 4, probabilityBudget };
          const loss = () => projectedLoss(attention(q, k, v, options).output, g);
          const forward = attention(q, k, v, options);
          expect(forward.report.heads.every((h) => h.keepsProbabilities === (probabilityBudget === undefined))).toBe(true);
          const grads = forward.backward(g);
          expect(gradientMismatch(grads.dq, finiteDifference(q, loss))).toBeLessThan(FD_TOLERANCE);
          expect(gradientMismatch(grads.dk, finiteDifference(k, loss))).toBeLessThan(FD_TOLERANCE);
          expect(gradientMismatch(grads.dv, finiteDifference(v, loss))).toBeLessThan(FD_TOLERANCE);
          expect(grads.bound).toBeUndefined();
        });
      }
    }
  }

  it('keeping the probabilities and recomputing them give the same numbers, and the budget is spent head by head', () => {
    const rng = new Rng(150);
    const [q, k, v, g] = [randomNormal(300, 8, rng), randomNormal(300, 8, rng), randomNormal(300, 8, rng), randomNormal(300, 8, rng)];
    const oneHead = 300 * 300 * 8;
    const partly = attention(q, k, v, { heads: 4, method: 'exact', probabilityBudget: 2.5 * oneHead });
    expect(partly.report.heads.map((h) => h.keepsProbabilities)).toEqual([true, true, false, false]);
    const recomputed = attention(q, k, v, { heads: 4, method: 'exact', probabilityBudget: 0 }).backward(g);
    const mixed = partly.backward(g);
    for (const name of ['dq', 'dk', 'dv'] as const) expect(Array.from(mixed[name].data)).toEqual(Array.from(recomputed[name].data));
  });
});

describe('loraAttention: dx and every lora_A / lora_B gradient against finite differences', () => {
  for (const [name, adapted] of Object.entries(ADAPTATIONS)) {
    for (const heads of [1, 2, 3, 4]) {
      const causal = heads % 2 === 0;
      it(`${name}, ${heads} head${heads > 1 ? 's' : ''}, ${causal ? 'causal' : 'not causal'}${heads === 3 ? ', a batch of 2, with biases' : ''}`, () => {
        const rng = new Rng(200 + heads);
        const layer = randomLayer({ dModel: 5, heads, headDim: 2, r: 2, adapted, causal, bias: heads === 3 }, rng);
        const batch = heads === 3 ? 2 : 1;
        const xs = Array.from({ length: batch }, () => randomNormal(6, 5, rng));
        const gs = xs.map(() => randomNormal(6, 5, rng));
        const options = { method: 'exact' as const };
        const loss = () => projectedLoss(loraAttention(layer, xs, options).output, gs);
        const { dx, grads, weightGrads } = loraAttention(layer, xs, options).backward(gs);
        expect(weightGrads).toBeUndefined();
        xs.forEach((x, n) => expect(gradientMismatch(dx[n], finiteDifference(x, loss))).toBeLessThan(FD_TOLERANCE));
        expect(Object.keys(grads).sort()).toEqual([...adapted].sort());
        for (const module of adapted) {
          const adapter = layer.lora!.adapters[module]!;
          expect(grads[module]!.lora_A.shape).toEqual(adapter.lora_A.shape);
          expect(grads[module]!.lora_B.shape).toEqual(adapter.lora_B.shape);
          expect(gradientMismatch(grads[module]!.lora_A, finiteDifference(adapter.lora_A, loss))).toBeLessThan(FD_TOLERANCE);
          expect(gradientMismatch(grads[module]!.lora_B, finiteDifference(adapter.lora_B, loss))).toBeLessThan(FD_TOLERANCE);
        }
      });
    }
  }

  it('weight gradients of all four modules, adapted or not, against finite differences', () => {
    const rng = new Rng(300);
    const layer = randomLayer({ dModel: 4, heads: 2, headDim: 2, r: 1, adapted: ['q_proj'], causal: true }, rng);
    const x = randomNormal(5, 4, rng);
    const g = randomNormal(5, 4, rng);
    const loss = () => projectedLoss(loraAttention(layer, x, { method: 'exact' }).output, g);
    const { weightGrads } = loraAttention(layer, x, { method: 'exact', weightGradients: true }).backward(g);
    // The frozen weight enters W_eff additively, so ∂loss/∂W_eff = ∂loss/∂W.
    for (const module of ['k_proj', 'v_proj', 'o_proj', 'q_proj'] as const) {
      expect(gradientMismatch(weightGrads![module], finiteDifference(layer.weights[module], loss))).toBeLessThan(FD_TOLERANCE);
    }
  });

  it('autodiff fast path: the exact derivative of the approximated layer, for any upstream gradient', () => {
    // Taylor at a forced degree is a fixed polynomial, so the approximated layer is a smooth function.
    const rng = new Rng(400);
    const layer = randomLayer({ dModel: 4, heads: 2, headDim: 2, r: 2, adapted: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], causal: true }, rng);
    const x = scale(randomNormal(7, 4, rng), 0.5);
    const g = randomNormal(7, 4, rng);
    const options = { method: 'fast' as const, variant: 'autodiff' as const, degree: 3, polynomial: 'taylor' as const };
    const loss = () => projectedLoss(loraAttention(layer, x, options).output, g);
    const result = loraAttention(layer, x, options);
    expect(result.report.chosen).toBe('fast');
    const { dx, grads } = result.backward(g);
    expect(gradientMismatch(dx, finiteDifference(x, loss))).toBeLessThan(FD_TOLERANCE);
    for (const module of ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const) {
      expect(gradientMismatch(grads[module]!.lora_A, finiteDifference(layer.lora!.adapters[module]!.lora_A, loss))).toBeLessThan(FD_TOLERANCE);
    }
  });
});

describe('loraAttention: the fast paths for an upstream gradient', () => {
  for (const [causal, variant, centerKeys] of [
    [false, 'chained', false],
    [true, 'chained', true],
    [false, 'autodiff', true],
    [true, 'autodiff', false],
  ] as const) {
    it(`stay within their certified bound of the exact gradients (${variant}, ${causal ? 'causal' : 'not causal'}, ${centerKeys ? 'centered' : 'uncentered'} keys)`, () => {
      const rng = new Rng(500 + (causal ? 1 : 0));
      const layer = randomLayer({ dModel: 4, heads: 2, headDim: 4, r: 2, adapted: ['q_proj', 'k_proj', 'v_proj'], causal }, rng);
      const x = add(scale(randomNormal(300, 4, rng), 0.1), full(300, 4, centerKeys ? 0.2 : 0));
      const g = randomNormal(300, 4, rng);
      const fast = loraAttention(layer, x, { method: 'fast', degree: 3, variant, centerKeys });
      const exact = loraAttention(layer, x, { method: 'exact' }).backward(g);
      expect(fast.report.chosen).toBe('fast');
      expect(fast.report.softmaxBound).toBeLessThan(1);
      const { grads, bound } = fast.backward(g);
      expect(bound).toBeDefined();
      let worstRatio = 0;
      for (const module of ['q_proj', 'k_proj', 'v_proj'] as const) {
        for (const which of ['lora_A', 'lora_B'] as const) {
          const [f, e, b] = [grads[module]![which], exact.grads[module]![which], bound![module]![which]];
          for (let t = 0; t < f.data.length; t++) {
            const error = Math.abs(f.data[t] - e.data[t]);
            expect(error).toBeLessThanOrEqual(b.data[t] + 1e-13);
            if (b.data[t] > 0) worstRatio = Math.max(worstRatio, error / b.data[t]);
          }
        }
      }
      expect(worstRatio).toBeGreaterThan(0);
    });
  }
});

describe('loraAttention and loraGradients agree', () => {
  it("with PEFT's tensors (lora_A = Bᵀ, lora_B = Aᵀ), o_proj = I and ∂O = O − Y, the gradients are the paper's transposed", () => {
    const problem = randomProblem({ length: 40, dIn: 6, dOut: 4, r: 2, heads: 2, targets: ['q', 'k', 'v'], causal: true }, 600);
    const paper = loraGradients(problem, { method: 'exact', weightGradients: true });
    const adapters: NonNullable<AttentionLayer['lora']>['adapters'] = {};
    for (const [t, module] of [
      ['q', 'q_proj'],
      ['k', 'k_proj'],
      ['v', 'v_proj'],
    ] as const) {
      adapters[module] = { lora_A: transpose(problem.adapters[t]!.b), lora_B: transpose(problem.adapters[t]!.a) };
    }
    const layer: AttentionLayer = {
      heads: 2,
      causal: true,
      weights: { q_proj: transpose(problem.weights.q), k_proj: transpose(problem.weights.k), v_proj: transpose(problem.weights.v), o_proj: identity(4) },
      lora: { r: 2, alpha: problem.alpha, adapters },
    };
    const x = problem.x as Matrix;
    const y = problem.target as Matrix;
    const forward = loraAttention(layer, x, { method: 'exact' });
    expect(maxAbsDifference(forward.output, paper.output as Matrix)).toBeLessThan(1e-13);
    const residual = fromFlat(
      y.rows,
      y.cols,
      Array.from(forward.output.data, (o, t) => o - y.data[t]),
    );
    const { grads } = forward.backward(residual);
    for (const [t, module] of [
      ['q', 'q_proj'],
      ['k', 'k_proj'],
      ['v', 'v_proj'],
    ] as const) {
      expect(maxAbsDifference(grads[module]!.lora_A, transpose(paper.grads[t]!.b))).toBeLessThan(1e-12);
      expect(maxAbsDifference(grads[module]!.lora_B, transpose(paper.grads[t]!.a))).toBeLessThan(1e-12);
    }
  });
});

describe('loraAttention: float32, reports and errors', () => {
  it('runs in float32 and agrees with float64 to float32 precision', () => {
    const rng = new Rng(700);
    const layer = randomLayer({ dModel: 8, heads: 2, headDim: 4, r: 2, adapted: ['q_proj', 'v_proj'] }, rng);
    const x = randomNormal(64, 8, rng);
    const g = randomNormal(64, 8, rng);
    const narrow = (m: Matrix) => toDType(m, 'float32');
    const layer32: AttentionLayer = {
      ...layer,
      weights: {
        q_proj: narrow(layer.weights.q_proj),
        k_proj: narrow(layer.weights.k_proj),
        v_proj: narrow(layer.weights.v_proj),
        o_proj: narrow(layer.weights.o_proj),
      },
      lora: {
        ...layer.lora!,
        adapters: Object.fromEntries(Object.entries(layer.lora!.adapters).map(([m, a]) => [m, { lora_A: narrow(a.lora_A), lora_B: narrow(a.lora_B) }])),
      },
    };
    const wide = loraAttention(layer, x, { method: 'exact' });
    const thin = loraAttention(layer32, narrow(x), { method: 'exact' });
    expect(thin.output.dtype).toBe('float32');
    expect(maxAbsDifference(thin.output, wide.output)).toBeLessThan(1e-5);
    const [a, b] = [thin.backward(narrow(g)), wide.backward(g)];
    expect(a.dx.dtype).toBe('float32');
    expect(maxAbsDifference(a.dx, b.dx)).toBeLessThan(1e-4);
    for (const module of ['q_proj', 'v_proj'] as const) {
      for (const which of ['lora_A', 'lora_B'] as const) {
        expect(a.grads[module]![which].dtype).toBe('float32');
        expect(maxAbsDifference(a.grads[module]![which], b.grads[module]![which])).toBeLessThan(
          1e-4 * Math.max(1, ...Array.from(b.grads[module]![which].data, Math.abs)),
        );
      }
    }
  });

  it("'auto' decides per head and says why for each", () => {
    const rng = new Rng(800);
    // Head 0 sees tiny queries (deep in the efficient regime), head 1 large ones (out of it).
    const L = 4096;
    const q = randomNormal(L, 4, rng);
    for (let i = 0; i < L; i++) {
      q.set(i, 0, 0.02 * q.get(i, 0));
      q.set(i, 1, 0.02 * q.get(i, 1));
      q.set(i, 2, 3 * q.get(i, 2));
      q.set(i, 3, 3 * q.get(i, 3));
    }
    const k = randomNormal(L, 4, rng);
    const v = randomNormal(L, 4, rng);
    const result = attention(q, k, v, { heads: 2 });
    result.dispose();
    expect(result.report.heads.map((h) => h.chosen)).toEqual(['fast', 'exact']);
    expect(result.report.chosen).toBe('mixed');
    expect(result.report.heads[1].reason).toMatch(/^exact: /);
    expect(result.report.steps.some((s) => s.startsWith('sequence 0, head 0: fast'))).toBe(true);
  });

  it('rejects transposed adapters, unknown modules, wrong upstream shapes and a second backward with typed errors', () => {
    // A transposed adapter is caught only where the module is not square (here 3×4): shapes are all there is to check.
    const rng = new Rng(900);
    const layer = randomLayer({ dModel: 4, heads: 1, headDim: 3, r: 2, adapted: ['q_proj'] }, rng);
    const x = randomNormal(5, 4, rng);
    const { lora_A, lora_B } = layer.lora!.adapters.q_proj!;
    const swapped = { ...layer, lora: { ...layer.lora!, adapters: { q_proj: { lora_A: transpose(lora_B), lora_B: transpose(lora_A) } } } };
    expect(() => loraAttention(swapped, x)).toThrow(ShapeError);
    const unknown = { ...layer, lora: { ...layer.lora!, adapters: { ...layer.lora!.adapters, gate_proj: { lora_A, lora_B } } } } as unknown as AttentionLayer;
    expect(() => loraAttention(unknown, x)).toThrow(/unknown module "gate_proj"/);
    expect(() => loraAttention(layer, randomNormal(5, 3, rng))).toThrow(ShapeError);
    const result = loraAttention(layer, x);
    expect(() => result.backward(randomNormal(4, 4, rng))).toThrow(ShapeError);
    result.backward(randomNormal(5, 4, rng));
    expect(() => result.backward(randomNormal(5, 4, rng))).toThrow(InvalidArgumentError);
    const nan = randomNormal(5, 4, rng);
    nan.set(1, 1, Number.NaN);
    expect(() => loraAttention(layer, x).backward(nan)).toThrow(/not finite|non-finite|NaN/i);
    expect(() => loraAttention({ ...layer, heads: undefined } as unknown as AttentionLayer, x)).toThrow(/layer.heads must be a positive integer/);
  });
});

function maxAbsDifference(a: Matrix, b: Matrix): number {
  let worst = 0;
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) worst = Math.max(worst, Math.abs(a.get(i, j) - b.get(i, j)));
  return worst;
}
