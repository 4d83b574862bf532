import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { centeredKeys, OutOfRegimeError, polynomialFeatures, polynomialFeaturesBackward, type ExpPolynomial } from '@almora/kernels';
import { add, full, matmul, type Matrix, ones, randomNormal, Rng, scale, sub, zeros } from '@almora/tensor';
import { loraGradients } from '../src/index.js';
import { wholeOf } from '../src/low-rank.js';
import { autodiffHead, buildSoftmax, chainedHead, planHead, streamedSoftmax, type HeadInput } from './heads.js';
import { denseHeadFromSoftmax, maxDifference, nudged, randomProblem, relativeError } from './reference.js';

interface HeadCase {
  length: number;
  d: number;
  degree: number;
  causal: boolean;
  centerKeys: boolean;
  method: 'taylor' | 'chebyshev';
  keyOffset: number;
}

function headCase(c: HeadCase, seed: number): { input: HeadInput; options: Parameters<typeof planHead>[2] } {
  const rng = new Rng(seed);
  const q = scale(randomNormal(c.length, c.d, rng), 0.4);
  const k = add(scale(randomNormal(c.length, c.d, rng), 0.4), full(c.length, c.d, c.keyOffset));
  const v = randomNormal(c.length, c.d, rng);
  const y = randomNormal(c.length, c.d, rng);
  const beta = 1 / Math.sqrt(c.d);
  return {
    input: { q, k, v, y, beta, causal: c.causal },
    options: { beta, epsilon: 1e-3, method: c.method, degree: c.degree, centerKeys: c.centerKeys },
  };
}

/** f̂ = D̂⁻¹·tril?(φ(Q)φ(K̃)ᵀ), formed densely. */
function denseApproximateSoftmax(input: HeadInput, options: Parameters<typeof planHead>[2]): Matrix {
  const plan = planHead(input.q, input.k, options);
  const u = polynomialFeatures(input.q, plan.polynomial!, input.beta, 'query');
  const v = polynomialFeatures(centeredKeys(input.k, plan.range), plan.polynomial!, input.beta, 'key');
  const a = matmul(u, v, { transposeB: true });
  const f = zeros(a.rows, a.cols);
  for (let i = 0; i < a.rows; i++) {
    let sum = 0;
    for (let j = 0; j < a.cols; j++) if (!input.causal || j <= i) sum += a.get(i, j);
    for (let j = 0; j < a.cols; j++) if (!input.causal || j <= i) f.set(i, j, a.get(i, j) / sum);
  }
  return f;
}

/**
 * ½‖f̂·V − Y‖² of the approximated forward, densely, with the polynomial held fixed (a Chebyshev
 * polynomial depends on R, which moves with the inputs) and the key mean recomputed from K: the
 * function the autodiff variant differentiates.
 */
function approximateLoss(input: HeadInput, polynomial: ExpPolynomial, centered: boolean): number {
  const keys = centered ? sub(input.k, matmul(ones(input.k.rows, 1), scale(matmul(ones(1, input.k.rows), input.k), 1 / input.k.rows))) : input.k;
  const a = matmul(polynomialFeatures(input.q, polynomial, input.beta, 'query'), polynomialFeatures(keys, polynomial, input.beta, 'key'), { transposeB: true });
  let loss = 0;
  for (let i = 0; i < a.rows; i++) {
    const allowed = input.causal ? i + 1 : a.cols;
    let sum = 0;
    for (let j = 0; j < allowed; j++) sum += a.get(i, j);
    for (let l = 0; l < input.v.cols; l++) {
      let o = 0;
      for (let j = 0; j < allowed; j++) o += (a.get(i, j) / sum) * input.v.get(j, l);
      loss += 0.5 * (o - input.y.get(i, l)) ** 2;
    }
  }
  return loss;
}

/**
 * Builds f̂, or returns undefined when δ ≥ 1: then the polynomial may go negative, row sums may be
 * near zero, and a 1e-12 comparison measures conditioning rather than algebra. Such a build must
 * either succeed or fail with OutOfRegimeError.
 */
function buildOrSkip(input: HeadInput, plan: ReturnType<typeof planHead>) {
  // δ < 1 guarantees positive row sums, so the build must succeed.
  if (plan.bound!.expRelative < 1) return buildSoftmax(input.q, input.k, plan, input.beta, input.causal);
  try {
    buildSoftmax(input.q, input.k, plan, input.beta, input.causal);
  } catch (error) {
    expect(error).toBeInstanceOf(OutOfRegimeError);
  }
  return undefined;
}

/** A random head case with its plan and f̂, or undefined when f̂ is skipped (δ ≥ 1). */
function builtHead(c: HeadCase, seed: number) {
  const { input, options } = headCase(c, seed);
  const plan = planHead(input.q, input.k, options);
  const f = buildOrSkip(input, plan);
  return f ? { input, options, plan, f } : undefined;
}

const headCases = fc.record({
  length: fc.integer({ min: 1, max: 150 }),
  d: fc.integer({ min: 1, max: 3 }),
  degree: fc.integer({ min: 0, max: 4 }),
  causal: fc.boolean(),
  centerKeys: fc.boolean(),
  method: fc.constantFrom('taylor' as const, 'chebyshev' as const),
  keyOffset: fc.constantFrom(0, 0.8),
});

describe('fast gradients against dense evaluations of the same approximation', () => {
  it('chained variant: the paper chain equals the textbook gradient with f̂ in place of f, to 1e-12 (property)', () => {
    fc.assert(
      fc.property(headCases, fc.integer(), (c, seed) => {
        const built = builtHead(c, seed);
        if (!built) return;
        const { input, options, f } = built;
        const fast = chainedHead(input, f);
        const dense = denseHeadFromSoftmax(denseApproximateSoftmax(input, options), input.q, input.k, input.v, input.y, input.beta);
        let fastLoss = 0;
        for (const x of residual(fast.output, input.y).data) fastLoss += 0.5 * x * x;
        expect(Math.abs(fastLoss - dense.loss)).toBeLessThan(1e-12 * Math.max(1, dense.loss));
        for (const g of ['output', 'dq', 'dk', 'dv'] as const)
          expect(maxDifference(fast[g], dense[g])).toBeLessThan(1e-12 * Math.max(1, ...dense[g].data.map(Math.abs)));
      }),
      { numRuns: 200 },
    );
  });

  it('autodiff variant: equals dense reverse mode through the approximation, to 1e-12, with features stored or made in blocks (property)', () => {
    fc.assert(
      fc.property(headCases, fc.integer({ min: 1, max: 40 }), fc.integer(), (c, blockRows, seed) => {
        const built = builtHead(c, seed);
        if (!built) return;
        const { input, options, plan, f } = built;
        // Causal heads keep their features stored (the masked products need them whole).
        const variants = input.causal ? [f] : [f, streamedSoftmax(f, input.q, blockRows)];
        // Dense: Â = UVᵀ (masked), D̂ = Â1, Ô = D̂⁻¹ÂV; ∂Â_ij = (c_i·v_j − c_i·Ô_i)/D̂_i.
        const u = wholeOf(f.u);
        const vf = wholeOf(f.v);
        const a = matmul(u, vf, { transposeB: true });
        const n = a.rows;
        const fDense = denseApproximateSoftmax(input, options);
        const o = matmul(fDense, input.v);
        const dA = zeros(n, a.cols);
        for (let i = 0; i < n; i++) {
          let sum = 0;
          for (let j = 0; j < a.cols; j++) if (!input.causal || j <= i) sum += a.get(i, j);
          let co = 0;
          for (let l = 0; l < o.cols; l++) co += (o.get(i, l) - input.y.get(i, l)) * o.get(i, l);
          for (let j = 0; j < a.cols; j++) {
            if (input.causal && j > i) continue;
            let cv = 0;
            for (let l = 0; l < o.cols; l++) cv += (o.get(i, l) - input.y.get(i, l)) * input.v.get(j, l);
            dA.set(i, j, (cv - co) / sum);
          }
        }
        const dq = polynomialFeaturesBackward(input.q, plan.polynomial!, input.beta, 'query', matmul(dA, vf));
        const dkTilde = polynomialFeaturesBackward(f.keys, plan.polynomial!, input.beta, 'key', matmul(dA, u, { transposeA: true }));
        const scaleOf = (m: Matrix) => Math.max(1, ...m.data.map(Math.abs));
        for (const factors of variants) {
          const fast = autodiffHead(input, factors);
          expect(maxDifference(fast.output, o)).toBeLessThan(1e-12 * scaleOf(o));
          expect(maxDifference(fast.dq, dq)).toBeLessThan(1e-12 * scaleOf(dq));
          expect(maxDifference(fast.dv, matmul(fDense, residual(o, input.y), { transposeA: true }))).toBeLessThan(1e-12 * scaleOf(fast.dv));
          if (!plan.range.centered) expect(maxDifference(fast.dk, dkTilde)).toBeLessThan(1e-12 * scaleOf(dkTilde));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('autodiff variant: matches finite differences of the approximated loss, centering included', () => {
    for (const [seed, c] of [
      [1, { length: 12, d: 2, degree: 3, causal: false, centerKeys: false, method: 'taylor', keyOffset: 0 }],
      [2, { length: 10, d: 3, degree: 2, causal: true, centerKeys: false, method: 'chebyshev', keyOffset: 0 }],
      [3, { length: 11, d: 2, degree: 4, causal: false, centerKeys: true, method: 'taylor', keyOffset: 0.8 }],
      [4, { length: 9, d: 2, degree: 3, causal: true, centerKeys: true, method: 'chebyshev', keyOffset: 0.8 }],
    ] as [number, HeadCase][]) {
      const { input, options } = headCase(c, seed);
      const plan = planHead(input.q, input.k, options);
      expect(plan.range.centered).toBe(c.centerKeys);
      const fast = autodiffHead(input, buildSoftmax(input.q, input.k, plan, input.beta, input.causal));
      const h = 1e-6;
      for (const name of ['q', 'k', 'v'] as const) {
        const grad = name === 'q' ? fast.dq : name === 'k' ? fast.dk : fast.dv;
        for (let t = 0; t < input[name].data.length; t++) {
          const at = (delta: number) => approximateLoss({ ...input, [name]: nudged(input[name], t, delta) }, plan.polynomial!, c.centerKeys);
          const numeric = (at(h) - at(-h)) / (2 * h);
          expect(Math.abs(grad.data[t] - numeric)).toBeLessThan(1e-7 * Math.max(1, Math.abs(numeric)));
        }
      }
    }
  });
});

function residual(o: Matrix, y: Matrix): Matrix {
  const c = zeros(o.rows, o.cols);
  for (let t = 0; t < c.data.length; t++) c.data[t] = o.data[t] - y.data[t];
  return c;
}

describe('fast against exact', () => {
  it('stays within the certified gradient bound over many random problems (chained and autodiff, multi-head, causal, centered, batched)', () => {
    let checked = 0;
    let autodiffFinite = 0;
    for (let seed = 0; seed < 80; seed++) {
      const rng = new Rng(seed);
      const targets = rng.next() < 0.5 ? (['q', 'v'] as const) : (['q', 'k', 'v'] as const);
      const problem = randomProblem(
        {
          length: 20 + rng.int(120),
          dIn: 2 + rng.int(3),
          dOut: 2 * (1 + rng.int(2)),
          r: 1 + rng.int(2),
          heads: 1 + rng.int(2),
          targets: [...targets],
          causal: rng.next() < 0.5,
          batch: 1 + rng.int(2),
          xScale: 0.1 + 0.6 * rng.next(),
        },
        seed,
      );
      const exact = loraGradients(problem, { method: 'exact' });
      const variant = rng.next() < 0.5 ? 'autodiff' : 'chained';
      let fast;
      try {
        fast = loraGradients(problem, {
          method: 'fast',
          variant,
          degree: 1 + rng.int(4),
          centerKeys: rng.next() < 0.5,
          polynomial: rng.next() < 0.5 ? 'taylor' : 'chebyshev',
        });
      } catch (error) {
        // A polynomial that goes negative on this range is refused, not run.
        if (error instanceof OutOfRegimeError) continue;
        throw error;
      }
      expect(fast.report.chosen).toBe('fast');
      const bound = fast.report.gradientBound!;
      if (variant === 'autodiff' && Object.values(bound).every((b) => Number.isFinite(b!.a.absolute))) autodiffFinite++;
      for (const t of targets) {
        for (const which of ['a', 'b'] as const) {
          const measured = maxDifference(fast.grads[t]![which], exact.grads[t]![which]);
          expect(measured).toBeLessThanOrEqual(bound[t]![which].absolute * (1 + 1e-9) + 1e-13);
          if (bound[t]![which].relative < Infinity) {
            expect(relativeError(fast.grads[t]![which], exact.grads[t]![which])).toBeLessThanOrEqual(bound[t]![which].relative + 1e-12);
          }
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(250);
    expect(autodiffFinite).toBeGreaterThanOrEqual(10);
  });

  it('converges to exact as the degree grows, in both variants', () => {
    const problem = randomProblem({ length: 200, dIn: 4, dOut: 4, r: 2, targets: ['q', 'k', 'v'], xScale: 0.3 }, 21);
    const exact = loraGradients(problem, { method: 'exact' });
    for (const variant of ['chained', 'autodiff'] as const) {
      const errors = [1, 3, 5, 7].map((degree) => relativeError(loraGradients(problem, { method: 'fast', degree, variant }).grads.q!.b, exact.grads.q!.b));
      for (let i = 1; i < errors.length; i++) expect(errors[i]).toBeLessThan(errors[i - 1]);
      expect(errors[3]).toBeLessThan(1e-5);
    }
  });
});
