import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assertFinite,
  DTypeError,
  faceSplit,
  fromArray,
  hadamard,
  kron,
  mat,
  matmul,
  maxAbs,
  NonFiniteError,
  Rng,
  randomNormal,
  ShapeError,
  sliceCols,
  sub,
  toDType,
  transpose,
  vec,
  zeros,
} from '../src/index.js';
import { assertShape } from '../src/validate.js';

describe('vec and mat', () => {
  it('stack rows (row-major, Definition 2.1) and invert each other', () => {
    const x = fromArray([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(vec(x).toArray().flat()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(vec(x).shape).toEqual([6, 1]);
    expect(mat(vec(x), 2, 3).toArray()).toEqual(x.toArray());
    expect(mat(vec(sliceCols(x, 1, 3)), 2, 2).toArray()).toEqual([
      [2, 3],
      [5, 6],
    ]);
    expect(mat(transpose(vec(x)), 3, 2).toArray()).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    expect(() => mat(vec(x), 4, 2)).toThrow(ShapeError);
  });
});

describe('Kronecker products', () => {
  it('kron follows Definition 2.3', () => {
    const a = fromArray([
      [1, 2],
      [3, 4],
    ]);
    const b = fromArray([[0, 5, 1]]);
    expect(kron(a, b).toArray()).toEqual([
      [0, 5, 1, 0, 10, 2],
      [0, 15, 3, 0, 20, 4],
    ]);
  });

  it('faceSplit puts A_i ⊗ B_i in row i', () => {
    const a = fromArray([
      [1, 2],
      [3, 4],
    ]);
    const b = fromArray([
      [1, 10],
      [-1, 2],
    ]);
    expect(faceSplit(a, b).toArray()).toEqual([
      [1, 10, 2, 20],
      [-3, 6, -4, 8],
    ]);
  });

  it('satisfies the tensor trick vec(A·X·Bᵀ) = (A⊗B)·vec(X) (Lemma 2.1, property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer(),
        (m, n, p, q, seed) => {
          const rng = new Rng(seed);
          const a = randomNormal(m, n, rng);
          const x = randomNormal(n, q, rng);
          const b = randomNormal(p, q, rng);
          const left = vec(matmul(matmul(a, x), b, { transposeB: true }));
          const right = matmul(kron(a, b), vec(x));
          expect(maxAbs(sub(left, right))).toBeLessThan(1e-11);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('satisfies (A⊘B)·(C⊘D)ᵀ = (A·Cᵀ)∘(B·Dᵀ) (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer(),
        (n, m, p, q, seed) => {
          const rng = new Rng(seed);
          const a = randomNormal(n, p, rng);
          const b = randomNormal(n, q, rng);
          const c = randomNormal(m, p, rng);
          const d = randomNormal(m, q, rng);
          const left = matmul(faceSplit(a, b), faceSplit(c, d), { transposeB: true });
          const right = hadamard(matmul(a, c, { transposeB: true }), matmul(b, d, { transposeB: true }));
          expect(maxAbs(sub(left, right))).toBeLessThan(1e-11);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reject mismatched rows and mixed dtypes', () => {
    expect(() => faceSplit(zeros(2, 2), zeros(3, 2))).toThrow(/A is 2×2 and B is 3×2/);
    expect(() => kron(zeros(1, 1), zeros(1, 1, { dtype: 'float32' }))).toThrow(DTypeError);
  });
});

describe('validation helpers', () => {
  it('name the offending matrix', () => {
    expect(() => assertShape(zeros(2, 3), 3, 3, 'W_q')).toThrow(/W_q must be 3×3, got 2×3/);
    const bad = zeros(2, 2);
    bad.set(1, 0, Number.NaN);
    expect(() => assertFinite(bad, 'X')).toThrow(NonFiniteError);
    expect(() => assertFinite(bad, 'X')).toThrow(/X has a non-finite value NaN at \(1, 0\)/);
    expect(() => assertFinite(toDType(zeros(1, 1), 'float32'), 'Y')).not.toThrow();
  });
});
