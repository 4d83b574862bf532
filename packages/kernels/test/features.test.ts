import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromArray, fromFlat, full, InvalidArgumentError, matmul, NonFiniteError, randomNormal, ResourceLimitError, Rng, scale } from '@almora/tensor';
import { monomialTable } from '../src/features.js';
import { chebyshevExp, featureRank, polynomialFeatures, polynomialFeaturesBackward, taylorExp } from '../src/index.js';
import { evaluatePolynomial } from '../src/polynomial.js';

function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return Math.round(r);
}

describe('polynomial features', () => {
  it('have rank C(d+g, g): 153 for d=16, g=2 and 4,845 for g=4', () => {
    expect(featureRank(16, 2)).toBe(153);
    expect(featureRank(16, 4)).toBe(4845);
    for (let d = 1; d <= 8; d++) for (let g = 0; g <= 6; g++) expect(monomialTable(d, g).size).toBe(binomial(d + g, g));
  });

  it('list every multi-index once with its multinomial coefficient', () => {
    const table = monomialTable(3, 3);
    const seen = new Set<string>();
    for (let a = 0; a < table.size; a++) {
      const exponents = [0, 0, 0];
      for (let m = a; m > 0; m = table.parents[m]) exponents[table.variables[m]]++;
      const key = exponents.join(',');
      expect(seen.has(key)).toBe(false);
      seen.add(key);
      const total = exponents.reduce((s, e) => s + e, 0);
      expect(total).toBe(table.degrees[a]);
      const factorial = (n: number): number => (n <= 1 ? 1 : n * factorial(n - 1));
      expect(table.multinomials[a]).toBe(factorial(total) / exponents.map(factorial).reduce((s, f) => s * f, 1));
    }
  });

  it('satisfy ⟨φ_query(q), φ_key(k)⟩ = p(β·q·k) to 1e-12 for every degree and both families (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 7 }),
        fc.constantFrom('taylor', 'chebyshev'),
        fc.double({ min: 0.05, max: 1.5, noNaN: true }),
        fc.integer(),
        (d, g, family, beta, seed) => {
          const rng = new Rng(seed);
          const q = scale(randomNormal(7, d, rng), 0.6);
          const k = scale(randomNormal(5, d, rng), 0.6);
          const polynomial = family === 'taylor' ? taylorExp(g) : chebyshevExp(g, 3);
          const u = polynomialFeatures(q, polynomial, beta, 'query');
          const v = polynomialFeatures(k, polynomial, beta, 'key');
          expect(u.cols).toBe(featureRank(d, g));
          const approx = matmul(u, v, { transposeB: true });
          const dots = matmul(q, k, { transposeB: true });
          for (let t = 0; t < approx.data.length; t++) {
            const expected = evaluatePolynomial(polynomial.coefficients, beta * dots.data[t]);
            expect(Math.abs(approx.data[t] - expected)).toBeLessThan(1e-12 * Math.max(1, Math.abs(expected)));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keep float32 inputs float32', () => {
    const q = fromArray([[0.1, 0.2]], { dtype: 'float32' });
    expect(polynomialFeatures(q, taylorExp(2), 0.5, 'query').dtype).toBe('float32');
  });

  it('reject non-finite inputs, bad β and bad degrees', () => {
    const bad = full(2, 2, 1);
    bad.set(1, 1, Number.NaN);
    expect(() => polynomialFeatures(bad, taylorExp(1), 1, 'query')).toThrow(NonFiniteError);
    bad.set(1, 1, Number.POSITIVE_INFINITY);
    expect(() => polynomialFeatures(bad, taylorExp(1), 1, 'key')).toThrow(/K has a non-finite value Infinity at \(1, 1\)/);
    expect(() => polynomialFeatures(fromArray([[1]]), taylorExp(1), 0, 'query')).toThrow(InvalidArgumentError);
    expect(() => taylorExp(-1)).toThrow(InvalidArgumentError);
    expect(() => chebyshevExp(1.5, 1)).toThrow(InvalidArgumentError);
    expect(() => chebyshevExp(2, -1)).toThrow(InvalidArgumentError);
    expect(() => featureRank(-2, 1)).toThrow(InvalidArgumentError);
  });

  it('refuse a degree whose monomial table would not fit, before allocating it (was a RangeError)', () => {
    const x = randomNormal(16, 8, new Rng(3));
    const refused = (() => {
      try {
        polynomialFeatures(x, taylorExp(60), 0.1, 'query');
      } catch (error) {
        return error;
      }
    })();
    expect(refused).toBeInstanceOf(ResourceLimitError);
    expect((refused as ResourceLimitError).estimatedBytes).toBeGreaterThan((refused as ResourceLimitError).limitBytes);
    expect(() => monomialTable(8, 400)).toThrow(/monomials, over the limit/);
  });
});

describe('polynomial feature backward pass', () => {
  it('matches central finite differences of ⟨G, φ(x)⟩ (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 5 }), fc.constantFrom('query', 'key'), fc.integer(), (d, g, side, seed) => {
        const rng = new Rng(seed);
        const x = scale(randomNormal(3, d, rng), 0.7);
        const polynomial = chebyshevExp(g, 2);
        const weightsOfFeatures = randomNormal(3, featureRank(d, g), rng);
        const objective = (input: typeof x) => {
          const f = polynomialFeatures(input, polynomial, 0.8, side);
          let s = 0;
          for (let t = 0; t < f.data.length; t++) s += f.data[t] * weightsOfFeatures.data[t];
          return s;
        };
        const grad = polynomialFeaturesBackward(x, polynomial, 0.8, side, weightsOfFeatures);
        const h = 1e-6;
        for (let t = 0; t < x.data.length; t++) {
          const plus = fromFlat(x.rows, x.cols, Array.from(x.data));
          const minus = fromFlat(x.rows, x.cols, Array.from(x.data));
          plus.data[t] += h;
          minus.data[t] -= h;
          const numeric = (objective(plus) - objective(minus)) / (2 * h);
          expect(Math.abs(grad.data[t] - numeric)).toBeLessThan(1e-6 * Math.max(1, Math.abs(numeric)));
        }
      }),
      { numRuns: 150 },
    );
  });
});
