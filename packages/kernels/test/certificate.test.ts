import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { add, full, matmul, type Matrix, randomNormal, Rng, scale, toDType, zeros } from '@almora/tensor';
import {
  centeredKeys,
  certifiedRange,
  certifyPolynomial,
  chebyshevExp,
  chooseDegree,
  exactSoftmax,
  planSoftmaxApproximation,
  relativeErrorEnclosure,
  sampledSoftmaxError,
  taylorExp,
} from '../src/index.js';
import { derivativePolynomial, evaluatePolynomial, expPolynomial } from '../src/polynomial.js';

/** max |β·q_i·k_j| by brute force: what a certified range may never be below. */
function trueRange(q: Matrix, k: Matrix, beta: number): number {
  const s = matmul(q, k, { transposeB: true });
  let largest = 0;
  for (const x of s.data) largest = Math.max(largest, Math.abs(x));
  return beta * largest;
}

/** Queries and keys as projections of shared tokens through unrelated random maps (anisotropic, as in attention), optionally of low rank and offset. */
function projectedPair(length: number, d: number, rank: number, offset: number, scaleBy: number, rng: Rng): [Matrix, Matrix] {
  const x = add(scale(matmul(randomNormal(length, rank, rng), randomNormal(rank, d, rng)), 1 / Math.sqrt(rank)), full(length, d, offset));
  const w = () => scale(randomNormal(d, d, rng), scaleBy / Math.sqrt(d));
  return [matmul(x, w()), matmul(x, w())];
}

describe('the enclosure of p(t)e^{−t} − 1', () => {
  it('contains every sampled value, for p and for p′ (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 12 }), fc.double({ min: 0.01, max: 5, noNaN: true }), fc.boolean(), (g, range, cheb) => {
        const p = cheb ? chebyshevExp(g, range) : taylorExp(g);
        for (const poly of [p, derivativePolynomial(p)]) {
          const { lower, upper } = relativeErrorEnclosure(poly.coefficients, range);
          for (let i = 0; i <= 4000; i++) {
            const t = -range + (2 * range * i) / 4000;
            const h = evaluatePolynomial(poly.coefficients, t) * Math.exp(-t) - 1;
            expect(h).toBeGreaterThanOrEqual(lower);
            expect(h).toBeLessThanOrEqual(upper);
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  it('knows odd Taylor degrees never exceed exp, so their softmax bound is about δ, not 2δ', () => {
    const odd = certifyPolynomial(taylorExp(3), 0.5);
    // h ≤ 0 in truth; the enclosure's upper end is only its 2% grid slack above 0.
    expect(odd.expUpper).toBeLessThanOrEqual(0.02 * odd.expRelative);
    expect(odd.softmaxRelative).toBeLessThan(1.05 * odd.expRelative);
    const even = certifyPolynomial(taylorExp(2), 0.5);
    expect(even.expLower).toBeLessThan(0);
    expect(even.expUpper).toBeGreaterThan(0);
  });

  it('certifies the derivative one Taylor degree lower: T_g′ = T_{g−1}', () => {
    expect(derivativePolynomial(taylorExp(4)).coefficients).toEqual(taylorExp(3).coefficients);
    expect(derivativePolynomial(taylorExp(0)).coefficients).toEqual([0]);
    for (const g of [2, 3, 5]) {
      const bound = certifyPolynomial(taylorExp(g), 0.4);
      expect(bound.autodiffRelative).toBeGreaterThan(bound.softmaxRelative);
      expect(bound.autodiffRelative).toBeGreaterThanOrEqual(certifyPolynomial(taylorExp(g - 1), 0.4).expRelative * 0.99);
    }
    // Certifying the derivative too takes one more degree at least.
    const values = chooseDegree(0.4, 1e-4, 'taylor')!;
    const both = chooseDegree(0.4, 1e-4, 'taylor', 24, 'softmax-and-derivative')!;
    expect(both.degree).toBeGreaterThan(values.degree);
    expect(both.bound.autodiffRelative).toBeLessThanOrEqual(1e-4);
  });
});

describe('the certified range', () => {
  it('is never below the true max |β·q·k| and never above Cauchy–Schwarz (property, anisotropic and degenerate data)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 12 }),
        fc.double({ min: -3, max: 3, noNaN: true }),
        fc.double({ min: 1e-3, max: 10, noNaN: true }),
        fc.boolean(),
        fc.integer(),
        (lq, lk, d, rankRaw, offset, size, center, seed) => {
          const rng = new Rng(seed);
          const [q0] = projectedPair(lq, d, Math.min(rankRaw, d), offset, size, rng);
          const [, k] = projectedPair(lk, d, Math.min(rankRaw, d), offset, size, rng);
          const beta = 1 / Math.sqrt(d);
          const range = certifiedRange(q0, k, beta, center);
          const truth = trueRange(q0, centeredKeys(k, range), beta);
          expect(range.range).toBeGreaterThanOrEqual(truth);
          expect(range.rawRange).toBeGreaterThanOrEqual(trueRange(q0, k, beta));
          expect(range.rawRange).toBeLessThanOrEqual(range.cauchySchwarzRange * (1 + 1e-12));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('covers the keys the float32 features see, centered in float32, and inputs near overflow or underflow', () => {
    const rng = new Rng(15);
    for (let trial = 0; trial < 60; trial++) {
      const [q, k] = projectedPair(40 + trial, 3 + (trial % 5), 2 + (trial % 3), 0.7, 0.5, rng);
      const [q32, k32] = [toDType(q, 'float32'), toDType(k, 'float32')];
      const range = certifiedRange(q32, k32, 0.5, true);
      // centeredKeys subtracts the float32-rounded mean in float32: exactly the keys the features use.
      expect(range.range).toBeGreaterThanOrEqual(trueRange(toDType(q32, 'float64'), toDType(centeredKeys(k32, range), 'float64'), 0.5));
    }
    for (const size of [1e80, 1e-150]) {
      const [q, k] = projectedPair(30, 4, 4, 0, 1, rng);
      const [qs, ks] = [scale(q, size), scale(k, size)];
      const range = certifiedRange(qs, ks, 1);
      expect(Number.isFinite(range.range) || size > 1e150).toBe(true);
      expect(range.range).toBeGreaterThanOrEqual(trueRange(qs, ks, 1));
      expect(range.range).toBeLessThanOrEqual(range.cauchySchwarzRange * (1 + 1e-12));
    }
  });

  it('says Infinity, promptly, for keys near the largest float64 whose mean or centering overflows (was NaN, and a hang with centering and L < 64)', () => {
    const rng = new Rng(16);
    const [q, k] = [scale(randomNormal(32, 4, rng), 3e307), scale(randomNormal(32, 4, rng), 3e307)];
    for (const centered of [false, true]) {
      const range = certifiedRange(q, k, 0.5, centered);
      expect(range.range).toBe(Number.POSITIVE_INFINITY);
      expect(Number.isNaN(range.rawRange)).toBe(false);
    }
  });

  it('is attained on projected data where Cauchy–Schwarz is ~2× loose, and handles zero and rank-one inputs', () => {
    const rng = new Rng(11);
    const [q, k] = projectedPair(4096, 16, 16, 0, 0.05, rng);
    const beta = 0.25;
    const range = certifiedRange(q, k, beta);
    const truth = trueRange(q, k, beta);
    expect(range.range).toBeLessThanOrEqual(truth * (1 + 1e-9));
    expect(range.cauchySchwarzRange).toBeGreaterThan(1.3 * truth);
    expect(range.exactRows).toBeLessThanOrEqual(64);
    expect(certifiedRange(zeros(5, 3), zeros(7, 3), 1).range).toBe(0);
    const [q1, k1] = projectedPair(50, 6, 1, 0, 1, rng);
    expect(certifiedRange(q1, k1, 1).range).toBeGreaterThanOrEqual(trueRange(q1, k1, 1));
  });
});

describe("the polynomial family 'auto' and the sampled check", () => {
  it('takes whichever family certifies the lower degree', () => {
    const rng = new Rng(12);
    const [q, k] = projectedPair(800, 4, 4, 0, 0.6, rng);
    const beta = 0.5;
    const plans = (['taylor', 'chebyshev', 'auto'] as const).map((method) => planSoftmaxApproximation(q, k, { beta, method, epsilon: 1e-4 }));
    expect(plans[2].degree).toBe(Math.min(plans[0].degree!, plans[1].degree!));
    expect(plans[2].meetsEpsilon).toBe(true);
  });

  it('measures on the sampled rows exactly what the dense comparison measures there, and stays under the certificate', () => {
    const rng = new Rng(13);
    const [q, k] = projectedPair(120, 3, 3, 0.5, 0.4, rng);
    const beta = 0.6;
    const plan = planSoftmaxApproximation(q, k, { beta, degree: 2, method: 'taylor', centerKeys: true });
    const keys = centeredKeys(k, plan.range);
    const rows = [0, 7, 64, 119];
    const sampled = sampledSoftmaxError(q, keys, plan.polynomial!.coefficients, beta, rows);
    const exact = exactSoftmax(q, k, beta);
    let dense = 0;
    for (const i of rows) {
      let sum = 0;
      const weights: number[] = [];
      for (let j = 0; j < k.rows; j++) {
        let s = 0;
        for (let c = 0; c < 3; c++) s += q.get(i, c) * keys.get(j, c);
        weights.push(evaluatePolynomial(plan.polynomial!.coefficients, beta * s));
        sum += weights[j];
      }
      for (let j = 0; j < k.rows; j++) dense = Math.max(dense, Math.abs(weights[j] / sum / exact.get(i, j) - 1));
    }
    expect(sampled).toBeCloseTo(dense, 12);
    expect(sampled).toBeLessThanOrEqual(plan.bound!.softmaxRelative);
    expect(() => sampledSoftmaxError(q, keys, [1], beta, [120])).toThrow(RangeError);
  });

  it('certifies p′/D̂ against f: the autodiff factor bound holds on data', () => {
    const rng = new Rng(14);
    for (const g of [1, 2, 3, 4]) {
      const [q, k] = projectedPair(200, 4, 4, 0, 0.15, rng);
      const beta = 0.5;
      const plan = planSoftmaxApproximation(q, k, { beta, degree: g, method: 'taylor' });
      const p = plan.polynomial!;
      const dp = derivativePolynomial(p);
      const exact = exactSoftmax(q, k, beta);
      const s = matmul(q, k, { transposeB: true });
      let worst = 0;
      for (let i = 0; i < q.rows; i++) {
        let sum = 0;
        for (let j = 0; j < k.rows; j++) sum += evaluatePolynomial(p.coefficients, beta * s.get(i, j));
        for (let j = 0; j < k.rows; j++) worst = Math.max(worst, Math.abs(evaluatePolynomial(dp.coefficients, beta * s.get(i, j)) / sum / exact.get(i, j) - 1));
      }
      expect(worst).toBeLessThanOrEqual(plan.bound!.autodiffRelative);
      // Tight to within a small factor where the range is attained.
      expect(plan.bound!.autodiffRelative).toBeLessThan(1);
      expect(worst).toBeGreaterThan(plan.bound!.autodiffRelative / 20);
      expect(expPolynomial('taylor', g, 1).degree).toBe(g);
    }
  });
});
