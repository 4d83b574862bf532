import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, maxAbs, NonFiniteError, Rng, ShapeError, sub, zeros, type Matrix } from '@almora/tensor';
import { loraGradients, type LoraProblem } from '../src/index.js';
import { randomProblem } from './reference.js';

describe("'auto'", () => {
  it('never returns a fast result whose measured attention error exceeds ε or whose gradient error exceeds its certified bound (straddling the regime boundary)', () => {
    let fast = 0;
    let exact = 0;
    let autodiff = 0;
    for (let seed = 0; seed < 80; seed++) {
      const rng = new Rng(1000 + seed);
      const targets = rng.next() < 0.5 ? (['q', 'v'] as const) : (['q', 'k', 'v'] as const);
      const epsilon = [1e-1, 1e-2, 1e-3][rng.int(3)];
      // Short head dims and long sequences put the low-rank path within reach; the X scale sweeps Γ
      // across the boundary where no cheap degree certifies ε.
      const problem = randomProblem(
        {
          length: 300 + rng.int(500),
          dIn: 2 + rng.int(2),
          dOut: 2,
          r: 1 + rng.int(2),
          targets: [...targets],
          causal: rng.next() < 0.3,
          xScale: 0.05 + 1.2 * rng.next(),
        },
        seed,
      );
      // Every query row checked against exact attention: the measured attention error.
      // Some runs hold 'auto' to the autodiff variant, which the cost model rarely prefers at these widths.
      const variant = rng.next() < 0.3 ? 'autodiff' : undefined;
      const result = loraGradients(problem, { method: 'auto', epsilon, centerKeys: rng.next() < 0.5, sampledRows: 1 << 20, variant });
      if (result.report.chosen === 'exact') {
        exact++;
        continue;
      }
      fast++;
      if (result.report.variant === 'autodiff') autodiff++;
      expect(result.report.softmaxBound!).toBeLessThanOrEqual(epsilon);
      expect(result.report.sampledSoftmaxError!).toBeLessThanOrEqual(epsilon);
      const reference = loraGradients(problem, { method: 'exact' });
      for (const t of targets)
        for (const which of ['a', 'b'] as const) {
          expect(maxAbs(sub(result.grads[t]![which], reference.grads[t]![which]))).toBeLessThanOrEqual(result.report.gradientBound![t]![which].absolute);
        }
    }
    // The sweep must actually straddle the boundary, and reach both variants.
    expect(fast).toBeGreaterThanOrEqual(8);
    expect(exact).toBeGreaterThanOrEqual(8);
    expect(autodiff).toBeGreaterThanOrEqual(1);
    expect(fast - autodiff).toBeGreaterThanOrEqual(1);
  });

  it('reports its decision in numbers', () => {
    const problem = randomProblem({ length: 3000, dIn: 2, dOut: 2, r: 1, targets: ['q', 'v'], xScale: 0.1 }, 5);
    const result = loraGradients(problem, { epsilon: 1e-2 });
    const { report } = result;
    expect(report.chosen).toBe('fast');
    expect(report.variant).toBe('chained');
    expect(report.reason).toMatch(
      /^fast \(chained, (taylor|chebyshev) degree \d+, rank \d+\): certified attention error .* ≤ ε = 0\.01 on R = .*, predicted .*× cheaper than exact$/,
    );
    expect(report.threshold).toBeCloseTo(Math.sqrt(Math.log(3000)), 12);
    expect(report.degree).toBeGreaterThanOrEqual(1);
    expect(report.rank).toBe(((report.degree! + 1) * (report.degree! + 2)) / 2);
    expect(report.predictedCost.fast!).toBeLessThan(report.predictedCost.exact);
    expect(report.norms.map((n) => `${n.target}:${n.part}`)).toEqual(['q:frozen', 'q:adapter', 'k:frozen']);
    expect(report.gamma).toBeGreaterThan(0);
    expect(report.gradientBound!.q!.b.absolute).toBeGreaterThan(0);
    expect(report.meetsEpsilon).toBe(true);
  });

  it('chooses exact past the phase transition, saying why', () => {
    const problem = randomProblem({ length: 400, dIn: 4, dOut: 4, r: 2, targets: ['q', 'k', 'v'], xScale: 3 }, 6);
    const { report } = loraGradients(problem, { epsilon: 1e-3 });
    expect(report.chosen).toBe('exact');
    expect(report.reason).toMatch(/^exact: /);
    expect(report.norms).toHaveLength(4);
    expect(report.gamma).toBeGreaterThan(report.threshold);
  });

  it("gives 'fast' outside the regime with a report that says the bound is not met", () => {
    const problem = randomProblem({ length: 300, dIn: 2, dOut: 2, r: 1, targets: ['q', 'v'], xScale: 1.2 }, 7);
    const result = loraGradients(problem, { method: 'fast', epsilon: 1e-6, degree: 2 });
    expect(result.report.chosen).toBe('fast');
    expect(result.report.meetsEpsilon).toBe(false);
    expect(result.report.reason).toMatch(/> ε = 0\.000001/);
  });
});

describe('bad input', () => {
  const good = () => randomProblem({ length: 6, dIn: 3, dOut: 4, r: 2, targets: ['q', 'v'] }, 8);
  const expectError = (mutate: (p: LoraProblem) => LoraProblem, type: new (...args: never[]) => Error, message: RegExp) => {
    const attempt = () => loraGradients(mutate(good()), { method: 'exact' });
    expect(attempt).toThrow(type);
    expect(attempt).toThrow(message);
  };

  it('names the offending matrix and both shapes', () => {
    expectError((p) => ({ ...p, x: zeros(6, 5) }), ShapeError, /X_Q is 6×5 but the weights are 3×4/);
    expectError((p) => ({ ...p, target: zeros(6, 3) }), ShapeError, /target Y is 6×3 but must be 6×4/);
    expectError((p) => ({ ...p, weights: { ...p.weights, k: zeros(3, 5) } }), ShapeError, /W\*_K is 3×5 but W\*_Q is 3×4/);
    expectError((p) => ({ ...p, adapters: { ...p.adapters, q: { a: p.adapters.q!.a, b: zeros(4, 2) } } }), ShapeError, /B_Q is 4×2/);
    expectError((p) => ({ ...p, adapters: { ...p.adapters, v: { a: zeros(2, 3), b: p.adapters.v!.b } } }), ShapeError, /A_V is 2×3/);
    expectError((p) => ({ ...p, x: [p.x as Matrix, zeros(6, 2)], target: [p.target as Matrix, zeros(6, 4)] }), ShapeError, /X_Q of sequence 1 is 6×2/);
    expectError((p) => ({ ...p, x: { q: p.x as Matrix, k: zeros(5, 3), v: zeros(4, 3) } }), ShapeError, /X_K has 5 rows and X_V has 4/);
    expectError((p) => ({ ...p, heads: 3 }), ShapeError, /not a multiple of heads = 3/);
  });

  it('catches r inconsistent between A and B, and across adapters', () => {
    expectError((p) => ({ ...p, adapters: { ...p.adapters, q: { a: zeros(3, 4), b: zeros(3, 2) } } }), ShapeError, /rank r must agree/);
    expectError((p) => ({ ...p, adapters: { ...p.adapters, v: { a: zeros(3, 4), b: zeros(3, 3) } } }), ShapeError, /one r per problem/);
  });

  it('rejects non-finite inputs, unknown targets and bad options', () => {
    expectError(
      (p) => {
        const x = zeros(6, 3);
        x.set(2, 1, Number.NaN);
        return { ...p, x };
      },
      NonFiniteError,
      /X_Q has a non-finite value NaN at \(2, 1\)/,
    );
    expectError((p) => ({ ...p, adapters: { ...p.adapters, o: p.adapters.q } as LoraProblem['adapters'] }), InvalidArgumentError, /unknown target "o"/);
    expectError((p) => ({ ...p, adapters: {} }), InvalidArgumentError, /no adapter/);
    expectError((p) => ({ ...p, alpha: 0 }), InvalidArgumentError, /alpha/);
    expect(() => loraGradients(good(), { method: 'quick' as 'fast' })).toThrow(InvalidArgumentError);
    expect(() => loraGradients(good(), { epsilon: 0 })).toThrow(/epsilon/);
    expect(() => loraGradients(good(), { variant: 'other' as 'chained' })).toThrow(/variant/);
    expect(() => loraGradients(good(), { degree: -2 })).toThrow(/degree/);
    expect(() => loraGradients({ ...good(), causal: true, x: { q: zeros(6, 3), k: zeros(5, 3), v: zeros(5, 3) } })).toThrow(
      /causal attention needs as many queries as keys/,
    );
  });
});

describe("'auto' per head, with the tight certificate", () => {
  it('takes the cheapest certified candidate, reports both ranges, and checks sampled rows on request', () => {
    const problem = randomProblem({ length: 2000, dIn: 8, dOut: 8, r: 2, heads: 2, targets: ['q', 'k', 'v'], xScale: 0.15 }, 31);
    const result = loraGradients(problem, { epsilon: 1e-3, sampledRows: 64 });
    for (const head of result.report.heads) {
      expect(head.range).toBeLessThanOrEqual(head.cauchySchwarzRange);
      if (head.chosen !== 'fast') continue;
      expect(head.softmaxBound!).toBeLessThanOrEqual(1e-3);
      expect(head.sampledSoftmaxError!).toBeLessThanOrEqual(head.softmaxBound!);
      if (head.variant === 'autodiff') expect(head.autodiffBound!).toBeLessThanOrEqual(1e-3);
      // Neither variant alone could have been predicted cheaper.
      for (const variant of ['chained', 'autodiff'] as const) {
        const alone = loraGradients(problem, { epsilon: 1e-3, variant }).report.heads[head.head];
        if (alone.chosen === 'fast') expect(alone.predictedCost.fast!).toBeGreaterThanOrEqual(head.predictedCost.fast!);
      }
    }
    expect(result.report.heads.some((h) => h.chosen === 'fast')).toBe(true);
    expect(result.report.sampledSoftmaxError).toBeDefined();
    expect(() => loraGradients(problem, { sampledRows: -1 })).toThrow(InvalidArgumentError);
    expect(() => loraGradients(problem, { polynomial: 'legendre' as 'taylor' })).toThrow(InvalidArgumentError);
  });
});
