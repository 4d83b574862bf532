import { describe, expect, it } from 'vitest';
import { fromFlat, type Matrix, maxAbs, randomNormal, Rng, sub } from '@almora/tensor';
import { attention, loraGradients } from '../src/index.js';
import { randomProblem } from './reference.js';

const float32 = (m: Matrix) => fromFlat(m.rows, m.cols, Float32Array.from(m.toFlat()), { dtype: 'float32' });
const float64 = (m: Matrix) => fromFlat(m.rows, m.cols, Float64Array.from(m.toFlat()));

/** Largest |Ô − O| / max|V| over the output: what an entrywise relative attention error of η bounds by η. */
function outputError(q: Matrix, k: Matrix, v: Matrix, output: Matrix): number {
  const reference = attention(float64(q), float64(k), float64(v), { method: 'exact' });
  reference.dispose();
  return maxAbs(sub(float64(output), reference.output)) / maxAbs(float64(v));
}

describe('the certificate in float32 includes rounding', () => {
  it("does not call a float32 fast result certified at ε below float32's rounding (was: 'certified 8.1e-10 ≤ ε = 1e-8', measured 2e-7)", () => {
    const rng = new Rng(77);
    const [q, k, v] = [0.02, 0.02, 1].map((std) => float32(randomNormal(256, 4, rng, { std })));
    const run = attention(q, k, v, { method: 'auto', epsilon: 1e-8 });
    run.dispose();
    expect(run.report.chosen).toBe('exact');
    expect(run.report.meetsEpsilon).toBe(false);
    expect(run.report.heads[0].attentionBound).toBeGreaterThan(1e-8);
    const forced = attention(q, k, v, { method: 'fast', degree: 2, epsilon: 1e-8 });
    forced.dispose();
    expect(forced.report.meetsEpsilon).toBe(false);
    expect(outputError(q, k, v, forced.output)).toBeLessThanOrEqual(forced.report.heads[0].attentionBound);
  });

  it('holds on float32 fast results it does certify, and the same problem in float64 certifies a smaller bound', () => {
    const rng = new Rng(78);
    const [q, k, v] = [0.1, 0.1, 1].map((std) => randomNormal(1024, 4, rng, { std }));
    const single = attention(float32(q), float32(k), float32(v), { method: 'auto', epsilon: 1e-3 });
    single.dispose();
    expect(single.report.chosen).toBe('fast');
    expect(single.report.meetsEpsilon).toBe(true);
    expect(outputError(float32(q), float32(k), float32(v), single.output)).toBeLessThanOrEqual(single.report.heads[0].attentionBound);
    const double = attention(q, k, v, { method: 'fast', degree: single.report.heads[0].degree, epsilon: 1e-3 });
    double.dispose();
    expect(double.report.heads[0].attentionBound).toBeLessThan(single.report.heads[0].attentionBound);
  });
});

describe('a gradient-level guarantee', () => {
  const problem = randomProblem({ length: 600, dIn: 2, dOut: 2, r: 1, targets: ['q', 'v'], xScale: 0.1 }, 5);

  it('the report says what the gradients are guaranteed to be', () => {
    const fast = loraGradients(problem, { method: 'fast', degree: 3 }).report;
    expect(fast.gradientRelativeBound).toBeGreaterThan(0);
    expect(fast.gradientGuarantee).toMatch(
      Number.isFinite(fast.gradientRelativeBound) ? /^certified: every adapter gradient is within/ : /^no finite gradient-level guarantee/,
    );
    const exact = loraGradients(problem, { method: 'exact' }).report;
    expect(exact.gradientRelativeBound).toBe(0);
    expect(exact.gradientGuarantee).toMatch(/^exact gradients/);
    const single = loraGradients(
      {
        ...problem,
        x: float32(problem.x as Matrix),
        target: float32(problem.target as Matrix),
        weights: { q: float32(problem.weights.q), k: float32(problem.weights.k), v: float32(problem.weights.v) },
        adapters: {
          q: { a: float32(problem.adapters.q!.a), b: float32(problem.adapters.q!.b) },
          v: { a: float32(problem.adapters.v!.a), b: float32(problem.adapters.v!.b) },
        },
      },
      { method: 'fast', degree: 3 },
    ).report;
    expect(single.gradientRelativeBound).toBeUndefined();
    expect(single.gradientGuarantee).toMatch(/^no gradient-level guarantee: the fast path ran in float32/);
  });

  it("'auto' with gradientEpsilon keeps the fast gradients only when their certified bound meets it, else recomputes exactly and says why", () => {
    const plain = loraGradients(problem, { method: 'auto', epsilon: 1e-4 });
    expect(plain.report.chosen).toBe('fast');
    const bound = plain.report.gradientRelativeBound!;
    expect(Number.isFinite(bound)).toBe(true);
    const loose = loraGradients(problem, { method: 'auto', epsilon: 1e-4, gradientEpsilon: bound * 2 });
    expect(loose.report.chosen).toBe('fast');
    const strict = loraGradients(problem, { method: 'auto', epsilon: 1e-4, gradientEpsilon: bound / 2 });
    expect(strict.report.chosen).toBe('exact');
    expect(strict.report.requested).toBe('auto');
    expect(strict.report.reason).toMatch(/not ≤ gradientEpsilon/);
    const exact = loraGradients(problem, { method: 'exact' });
    expect(maxAbs(sub(strict.grads.q!.a, exact.grads.q!.a))).toBe(0);
    expect(() => loraGradients(problem, { gradientEpsilon: 0 })).toThrow(/gradientEpsilon must be finite and > 0/);
  });
});
