import {
  fromArray,
  identity,
  InvalidArgumentError,
  matmul,
  maxAbs,
  NonFiniteError,
  randomNormal,
  Rng,
  scaleCols,
  sub,
  ShapeError,
  transpose,
} from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { cholesky, pseudoInverse, spdSolve, spectralNorm, svd } from '../src/index.js';
import { withSingularValues } from './helpers.js';

describe('svd (one-sided Jacobi)', () => {
  for (const [m, n] of [
    [7, 4],
    [4, 7],
    [6, 6],
    [1, 5],
    [5, 1],
  ]) {
    it(`${m}×${n}: U·diag(S)·Vᵀ = a, orthonormal U and V, S non-increasing`, () => {
      const a = randomNormal(m, n, new Rng(m * 10 + n));
      const { U, S, V } = svd(a);
      const p = Math.min(m, n);
      expect(U.shape).toEqual([m, p]);
      expect(V.shape).toEqual([n, p]);
      expect(maxAbs(sub(matmul(scaleCols(U, S), V, { transposeB: true }), a))).toBeLessThan(1e-13);
      expect(maxAbs(sub(matmul(U, U, { transposeA: true }), identity(p)))).toBeLessThan(1e-13);
      expect(maxAbs(sub(matmul(V, V, { transposeA: true }), identity(p)))).toBeLessThan(1e-13);
      for (let i = 1; i < p; i++) expect(S[i]).toBeLessThanOrEqual(S[i - 1]);
    });
  }

  it('recovers known singular values to 1e-12 relative (tall and wide)', () => {
    const s = [9, 4, 2.5, 1, 0.125];
    for (const [m, n] of [
      [12, 8],
      [8, 12],
    ]) {
      const { S } = svd(withSingularValues(m, n, s, new Rng(m)));
      for (let i = 0; i < s.length; i++) expect(Math.abs(S[i] - s[i]) / s[i]).toBeLessThan(1e-12);
      for (let i = s.length; i < S.length; i++) expect(S[i]).toBeLessThan(1e-13);
    }
  });

  it('a rank-deficient matrix still gets orthonormal singular vectors, and the top-k truncation', () => {
    const a = withSingularValues(6, 5, [3, 1], new Rng(4));
    const { U, V, S } = svd(a, 4);
    expect(S.length).toBe(4);
    expect(maxAbs(sub(matmul(U, U, { transposeA: true }), identity(4)))).toBeLessThan(1e-12);
    expect(maxAbs(sub(matmul(V, V, { transposeA: true }), identity(4)))).toBeLessThan(1e-12);
    const zero = svd(
      fromArray([
        [0, 0],
        [0, 0],
        [0, 0],
      ]),
    );
    expect(Array.from(zero.S)).toEqual([0, 0]);
    expect(maxAbs(sub(matmul(zero.U, zero.U, { transposeA: true }), identity(2)))).toBe(0);
  });

  it('is deterministic: the same input gives bit-identical factors', () => {
    const a = randomNormal(9, 6, new Rng(11));
    const one = svd(a);
    const two = svd(a);
    expect(Array.from(one.U.toFlat())).toEqual(Array.from(two.U.toFlat()));
    expect(Array.from(one.S)).toEqual(Array.from(two.S));
  });

  it('refuses a bad k and non-finite entries', () => {
    expect(() => svd(identity(3), 4)).toThrow(InvalidArgumentError);
    expect(() => svd(fromArray([[1, Number.NaN]]))).toThrow(NonFiniteError);
  });

  it('spectralNorm is σ₁', () => {
    expect(spectralNorm(withSingularValues(7, 5, [6, 2, 1], new Rng(2)))).toBeCloseTo(6, 12);
  });
});

describe('cholesky, spdSolve, pseudoInverse', () => {
  const rng = new Rng(5);
  const g = randomNormal(6, 4, rng);
  const spd = matmul(g, g, { transposeA: true });

  it('L·Lᵀ = a and a·spdSolve(a, b) = b', () => {
    const l = cholesky(spd);
    expect(maxAbs(sub(matmul(l, l, { transposeB: true }), spd))).toBeLessThan(1e-12);
    for (let i = 0; i < 4; i++) for (let j = i + 1; j < 4; j++) expect(l.get(i, j)).toBe(0);
    const b = randomNormal(4, 3, rng);
    expect(maxAbs(sub(matmul(spd, spdSolve(spd, b)), b))).toBeLessThan(1e-11);
  });

  it('refuses matrices that are not symmetric positive definite, and misfit shapes', () => {
    expect(() =>
      cholesky(
        fromArray([
          [1, 2],
          [2, 1],
        ]),
      ),
    ).toThrow(InvalidArgumentError);
    expect(() =>
      cholesky(
        fromArray([
          [1, 0.5],
          [0, 1],
        ]),
      ),
    ).toThrow(InvalidArgumentError);
    expect(() => cholesky(fromArray([[1, 0, 0]]))).toThrow(ShapeError);
    expect(() => spdSolve(spd, randomNormal(3, 1, rng))).toThrow(ShapeError);
  });

  it('the pseudo-inverse meets the four Penrose conditions on a rank-deficient matrix, and 0⁺ = 0', () => {
    const a = withSingularValues(5, 4, [2, 1], new Rng(8));
    const p = pseudoInverse(a);
    expect(maxAbs(sub(matmul(matmul(a, p), a), a))).toBeLessThan(1e-12);
    expect(maxAbs(sub(matmul(matmul(p, a), p), p))).toBeLessThan(1e-12);
    const ap = matmul(a, p);
    const pa = matmul(p, a);
    expect(maxAbs(sub(ap, transpose(ap)))).toBeLessThan(1e-12);
    expect(maxAbs(sub(pa, transpose(pa)))).toBeLessThan(1e-12);
    expect(maxAbs(pseudoInverse(fromArray([[0, 0]])))).toBe(0);
  });
});
