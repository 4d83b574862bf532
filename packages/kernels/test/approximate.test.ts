import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  add,
  fromArray,
  full,
  InvalidArgumentError,
  matmul,
  maxAbs,
  NonFiniteError,
  ones,
  randomNormal,
  Rng,
  scale,
  ShapeError,
  sub,
  zeros,
  type Matrix,
} from '@almora/tensor';
import {
  applySoftmax,
  applySoftmaxTransposed,
  approximateSoftmaxKernel,
  centeredKeys,
  certifiedRange,
  denseSoftmax,
  exactKernel,
  exactSoftmax,
  planSoftmaxApproximation,
  positiveRandomFeatures,
} from '../src/index.js';

function maxRelative(approx: Matrix, exact: Matrix): number {
  let worst = 0;
  for (let t = 0; t < exact.data.length; t++) worst = Math.max(worst, Math.abs(approx.data[t] - exact.data[t]) / exact.data[t]);
  return worst;
}

/** Queries and keys scaled so that √β times their largest entry is exactly Γ. */
function scaledPair(rows: number, keys: number, d: number, gamma: number, beta: number, rng: Rng, keyOffset = 0): [Matrix, Matrix] {
  const q = randomNormal(rows, d, rng);
  const k = add(randomNormal(keys, d, rng), full(keys, d, keyOffset));
  const s = gamma / (Math.sqrt(beta) * Math.max(maxAbs(q), maxAbs(k)));
  return [scale(q, s), scale(k, s)];
}

describe('certified softmax approximation', () => {
  it('never has a measured error above its certified bound (property, thousands of cases)', () => {
    let cases = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 256 }),
        fc.integer({ min: 1, max: 4 }),
        fc.double({ min: 0.05, max: 2.5, noNaN: true }),
        fc.integer({ min: 0, max: 6 }),
        fc.constantFrom('taylor', 'chebyshev'),
        fc.boolean(),
        fc.integer(),
        (length, d, gamma, degree, method, center, seed) => {
          const rng = new Rng(seed);
          const beta = 1 / Math.sqrt(d);
          const [q, k] = scaledPair(length, Math.max(1, length - 3), d, gamma, beta, rng, center ? 1 : 0);
          const result = approximateSoftmaxKernel(q, k, { beta, degree, method, centerKeys: center });
          if (result.status !== 'approximated') {
            expect(result.reason).toBe('non-positive-row-sums');
            expect(result.plan.bound!.expRelative).toBeGreaterThanOrEqual(1);
            return;
          }
          cases++;
          const a = result.approximation;
          const bound = a.bound!;
          // Against the matrix the factors stand for: exp(β·QK̃ᵀ), K̃ the (possibly centered) keys.
          const kernel = exactKernel(q, centeredKeys(k, a.range), beta);
          const lowRank = matmul(a.u, a.v, { transposeB: true });
          expect(maxAbs(sub(lowRank, kernel))).toBeLessThanOrEqual(bound.kernelAbsolute + 1e-12);
          expect(maxRelative(lowRank, kernel)).toBeLessThanOrEqual(bound.expRelative + 1e-12);
          // And the softmax against the original, uncentered exact softmax.
          expect(maxRelative(denseSoftmax(a), exactSoftmax(q, k, beta))).toBeLessThanOrEqual(bound.softmaxRelative + 1e-12);
        },
      ),
      { numRuns: 2500 },
    );
    expect(cases).toBeGreaterThan(2000);
  });

  it('meets ε when it picks the degree itself, and reports R, Γ and √log L', () => {
    const rng = new Rng(3);
    const beta = 0.25;
    const [q, k] = scaledPair(600, 600, 4, 0.5, beta, rng);
    const result = approximateSoftmaxKernel(q, k, { beta, epsilon: 1e-3 });
    expect(result.status).toBe('approximated');
    if (result.status !== 'approximated') return;
    const { plan, approximation } = result;
    expect(plan.range.gamma).toBeCloseTo(0.5, 12);
    expect(plan.range.threshold).toBeCloseTo(Math.sqrt(Math.log(600)), 12);
    expect(plan.bound!.softmaxRelative).toBeLessThanOrEqual(1e-3);
    expect(maxRelative(denseSoftmax(approximation), exactSoftmax(q, k, beta))).toBeLessThanOrEqual(1e-3);
    expect(plan.rank).toBe(approximation.u.cols);
  });

  it('applies f̂ and f̂ᵀ without forming the L×L matrix, matching the dense product', () => {
    const rng = new Rng(4);
    const [q, k] = scaledPair(40, 30, 3, 0.6, 0.5, rng);
    const result = approximateSoftmaxKernel(q, k, { beta: 0.5, degree: 3 });
    if (result.status !== 'approximated') throw new Error(result.message);
    const m = randomNormal(30, 5, rng);
    const n = randomNormal(40, 2, rng);
    const dense = denseSoftmax(result.approximation);
    expect(maxAbs(sub(applySoftmax(result.approximation, m), matmul(dense, m)))).toBeLessThan(1e-12);
    expect(maxAbs(sub(applySoftmaxTransposed(result.approximation, n), matmul(dense, n, { transposeA: true })))).toBeLessThan(1e-12);
  });
});

describe('the efficient regime', () => {
  it('says "no-speedup" when rank·d reaches L, and "precision" past the phase transition', () => {
    const rng = new Rng(5);
    const [q, k] = scaledPair(100, 100, 8, 0.3, 1 / Math.sqrt(8), rng);
    const small = approximateSoftmaxKernel(q, k, { beta: 1 / Math.sqrt(8), epsilon: 1e-3 });
    expect(small.status).toBe('out-of-regime');
    if (small.status === 'out-of-regime') expect(small.reason).toBe('no-speedup');
    const [q2, k2] = scaledPair(5000, 5000, 2, 4, 1, rng);
    const far = planSoftmaxApproximation(q2, k2, { beta: 1, epsilon: 1e-3 });
    expect(far.outOfRegime?.reason).toBe('precision');
    expect(far.degree).toBeUndefined();
    expect(far.outOfRegime?.message).toMatch(/Γ = 4\.00 vs √log L = 2\.92/);
  });

  it('says "memory" when U and V would not fit the budget', () => {
    const rng = new Rng(6);
    const [q, k] = scaledPair(4000, 4000, 2, 0.2, 1, rng);
    const plan = planSoftmaxApproximation(q, k, { beta: 1, epsilon: 1e-3, memoryBudget: 1000 });
    expect(plan.outOfRegime?.reason).toBe('memory');
    expect(approximateSoftmaxKernel(q, k, { beta: 1, degree: 2, memoryBudget: 1000 }).status).toBe('out-of-regime');
  });

  it('refuses a forced degree whose U and V would not fit before building them, even when it misses ε too (was a RangeError)', () => {
    const rng = new Rng(16);
    const [q, k] = scaledPair(16, 16, 8, 0.5, 1, rng);
    const result = approximateSoftmaxKernel(q, k, { beta: 1, degree: 60 });
    expect(result.status).toBe('out-of-regime');
    expect(result.status === 'out-of-regime' && result.reason).toBe('memory');
  });

  it('builds a forced degree outside ε, saying the bound is not met', () => {
    const rng = new Rng(7);
    const [q, k] = scaledPair(300, 300, 2, 1.5, 1, rng);
    const result = approximateSoftmaxKernel(q, k, { beta: 1, degree: 2, epsilon: 1e-6 });
    expect(result.status).toBe('approximated');
    expect(result.plan.meetsEpsilon).toBe(false);
    expect(result.plan.outOfRegime?.reason).toBe('precision');
  });

  it('refuses an odd Taylor degree whose row sums go non-positive', () => {
    // q·k = −3 for every pair: T₁(−3) = −2 < 0.
    const q = fromArray([[Math.sqrt(3)], [Math.sqrt(3)]]);
    const k = fromArray([[-Math.sqrt(3)], [-Math.sqrt(3)]]);
    const result = approximateSoftmaxKernel(q, k, { beta: 1, degree: 1 });
    expect(result.status).toBe('out-of-regime');
    if (result.status === 'out-of-regime') {
      expect(result.reason).toBe('non-positive-row-sums');
      expect(result.message).toMatch(/sums to -\d/);
    }
  });
});

describe('key centering', () => {
  it('leaves the exact softmax unchanged to 1e-14 and never increases R (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 5 }),
        fc.double({ min: -3, max: 3, noNaN: true }),
        fc.integer(),
        (length, d, offset, seed) => {
          const rng = new Rng(seed);
          const q = scale(randomNormal(length, d, rng), 0.5);
          const k = add(scale(randomNormal(length, d, rng), 0.5), full(length, d, offset));
          const range = certifiedRange(q, k, 0.7, true);
          expect(range.range).toBeLessThanOrEqual(range.rawRange);
          const centered = sub(k, matmul(ones(length, 1), scale(matmul(ones(1, length), k), 1 / length)));
          expect(maxAbs(sub(exactSoftmax(q, centered, 0.7), exactSoftmax(q, k, 0.7)))).toBeLessThan(1e-14);
          if (range.centered) expect(maxAbs(sub(centeredKeys(k, range), centered))).toBeLessThan(1e-14);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('shrinks R a lot when keys share a common component', () => {
    const rng = new Rng(8);
    const q = scale(randomNormal(500, 8, rng), 0.3);
    const k = add(scale(randomNormal(500, 8, rng), 0.3), full(500, 8, 2));
    const range = certifiedRange(q, k, 1 / Math.sqrt(8), true);
    expect(range.centered).toBe(true);
    expect(range.centeredRange).toBeLessThan(range.rawRange / 3);
  });
});

describe('positive random features (FAVOR+)', () => {
  it('are unbiased, positive and uncertified', () => {
    const rng = new Rng(9);
    const q = scale(randomNormal(20, 3, rng), 0.4);
    const k = scale(randomNormal(20, 3, rng), 0.4);
    const a = positiveRandomFeatures(q, k, { beta: 1, rank: 20000, rng });
    expect(a.certified).toBe(false);
    expect(a.bound).toBeUndefined();
    expect(a.method).toBe('favor+');
    expect(a.u.data.every((x) => x > 0) && a.v.data.every((x) => x > 0)).toBe(true);
    const exact = exactKernel(q, k, 1);
    const meanRelative = (approximation: typeof a) => {
      const estimate = matmul(approximation.u, approximation.v, { transposeB: true });
      let total = 0;
      for (let t = 0; t < exact.data.length; t++) total += Math.abs(estimate.data[t] - exact.data[t]) / exact.data[t];
      return total / exact.data.length;
    };
    const fine = meanRelative(a);
    const coarse = meanRelative(positiveRandomFeatures(q, k, { beta: 1, rank: 500, rng }));
    expect(fine).toBeLessThan(0.02);
    // Monte Carlo error shrinks like 1/√m: 40× the rank, about 6× less error.
    expect(coarse / fine).toBeGreaterThan(3);
    expect(() => positiveRandomFeatures(q, k, { beta: 1, rank: 0, rng })).toThrow(InvalidArgumentError);
  });
});

describe('bad input', () => {
  const q = zeros(4, 3);
  it('gets typed errors', () => {
    expect(() => planSoftmaxApproximation(q, zeros(4, 2), { beta: 1 })).toThrow(ShapeError);
    expect(() => planSoftmaxApproximation(q, zeros(4, 2), { beta: 1 })).toThrow(/Q is 4×3 and K is 4×2/);
    expect(() => planSoftmaxApproximation(q, zeros(0, 3), { beta: 1 })).toThrow(ShapeError);
    expect(() => planSoftmaxApproximation(q, q, { beta: 1, epsilon: 0 })).toThrow(InvalidArgumentError);
    expect(() => planSoftmaxApproximation(q, q, { beta: 1, epsilon: -1 })).toThrow(InvalidArgumentError);
    expect(() => planSoftmaxApproximation(q, q, { beta: 0 })).toThrow(InvalidArgumentError);
    expect(() => planSoftmaxApproximation(q, q, { beta: 1, degree: -1 })).toThrow(InvalidArgumentError);
    const bad = zeros(4, 3);
    bad.set(2, 1, Number.NaN);
    expect(() => approximateSoftmaxKernel(q, bad, { beta: 1 })).toThrow(NonFiniteError);
  });
});
