import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@almora/tensor';
import { chebyshevExp, chooseDegree, relativeErrorBound, taylorExp } from '../src/index.js';
import { evaluatePolynomial, taylorRelativeErrorBound } from '../src/polynomial.js';

/** sup |p(t)e^{−t} − 1| on a fine grid: what the certificate must never be below. */
function sampledRelativeError(coefficients: readonly number[], range: number, points = 20001): number {
  let worst = 0;
  for (let i = 0; i < points; i++) {
    const t = -range + (2 * range * i) / (points - 1);
    worst = Math.max(worst, Math.abs(evaluatePolynomial(coefficients, t) * Math.exp(-t) - 1));
  }
  return worst;
}

describe('polynomials of exp', () => {
  it('Taylor has coefficients 1/j!', () => {
    expect(taylorExp(4).coefficients).toEqual([1, 1, 1 / 2, 1 / 6, 1 / 24]);
  });

  it('Chebyshev interpolates exp at the Chebyshev nodes', () => {
    const p = chebyshevExp(6, 2.5);
    for (let k = 0; k < 7; k++) {
      const t = 2.5 * Math.cos((Math.PI * (k + 0.5)) / 7);
      expect(evaluatePolynomial(p.coefficients, t)).toBeCloseTo(Math.exp(t), 12);
    }
  });

  it('odd Taylor degrees go negative: T₃(t) < 0 for t < −1.596', () => {
    expect(evaluatePolynomial(taylorExp(3).coefficients, -1.6)).toBeLessThan(0);
    expect(evaluatePolynomial(taylorExp(3).coefficients, -1.59)).toBeGreaterThan(0);
    expect(relativeErrorBound(taylorExp(3).coefficients, 1.6)).toBeGreaterThan(1);
  });
});

describe('the certified relative error δ', () => {
  it('is never below the sampled error and, where δ < 1, within 5% of it (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 14 }), fc.double({ min: 0.01, max: 6, noNaN: true }), fc.boolean(), (g, range, cheb) => {
        const p = cheb ? chebyshevExp(g, range) : taylorExp(g);
        const certified = relativeErrorBound(p.coefficients, range);
        const sampled = sampledRelativeError(p.coefficients, range);
        expect(certified).toBeGreaterThanOrEqual(sampled);
        // Tightness matters only where p is usable (δ < 1) and above float64 evaluation noise (~1e-12).
        if (sampled < 1) expect(certified).toBeLessThanOrEqual(sampled * 1.05 + 1e-11);
      }),
      { numRuns: 300 },
    );
  });

  it('for Taylor is within the closed-form Lagrange bound e^R·R^{g+1}/(g+1)!', () => {
    for (const range of [0.1, 0.5, 1, 2, 4])
      for (let g = 0; g <= 12; g++) {
        expect(relativeErrorBound(taylorExp(g).coefficients, range)).toBeLessThanOrEqual(taylorRelativeErrorBound(g, range) * 1.02 + 1e-12);
      }
  });

  it('is exact at range 0', () => {
    expect(relativeErrorBound(taylorExp(0).coefficients, 0)).toBeLessThan(1e-14);
    expect(relativeErrorBound(chebyshevExp(3, 0).coefficients, 0)).toBeLessThan(1e-14);
  });
});

describe('the degree chooser', () => {
  const ranges = [0, 0.05, 0.25, 0.5, 1, 1.5, 2, 3, 4, 5, 6];
  const epsilons = [0.5, 1e-1, 1e-2, 1e-3, 1e-4, 1e-6, 1e-8];

  it('meets ε with the smallest degree it can', () => {
    for (const range of ranges)
      for (const epsilon of epsilons) {
        const choice = chooseDegree(range, epsilon, 'taylor');
        if (!choice) continue;
        expect(choice.bound.softmaxRelative).toBeLessThanOrEqual(epsilon);
        if (choice.degree > 0) {
          const lower = chooseDegree(range, epsilon, 'taylor', choice.degree - 1);
          expect(lower).toBeUndefined();
        }
      }
  });

  it('is monotone in ε and in R, and Chebyshev never needs more degree than Taylor', () => {
    const degree = (range: number, epsilon: number, method: 'taylor' | 'chebyshev') => chooseDegree(range, epsilon, method)?.degree ?? Number.POSITIVE_INFINITY;
    for (const method of ['taylor', 'chebyshev'] as const) {
      for (const range of ranges)
        for (let e = 1; e < epsilons.length; e++) expect(degree(range, epsilons[e], method)).toBeGreaterThanOrEqual(degree(range, epsilons[e - 1], method));
      for (const epsilon of epsilons)
        for (let r = 1; r < ranges.length; r++) expect(degree(ranges[r], epsilon, method)).toBeGreaterThanOrEqual(degree(ranges[r - 1], epsilon, method));
    }
    for (const range of ranges)
      for (const epsilon of epsilons) expect(degree(range, epsilon, 'chebyshev')).toBeLessThanOrEqual(degree(range, epsilon, 'taylor'));
  });

  it('gives up past the phase transition and rejects bad ε', () => {
    expect(chooseDegree(12, 1e-3, 'taylor')).toBeUndefined();
    expect(() => chooseDegree(1, 0, 'taylor')).toThrow(InvalidArgumentError);
    expect(() => chooseDegree(1, -1, 'taylor')).toThrow(InvalidArgumentError);
    expect(() => chooseDegree(1, Number.NaN, 'taylor')).toThrow(InvalidArgumentError);
  });
});
