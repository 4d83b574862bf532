import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { block, DTypeError, matmul, Matrix, randomNormal, Rng, ShapeError, sliceCols, sliceRows, toDType, transpose, zeros } from '../src/index.js';
import { maxDiff, randn, referenceMatmul } from './helpers.js';

const forms: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

describe('matmul', () => {
  it.each(forms)('matches the triple loop (transposeA=%s, transposeB=%s) across block edges', (tA, tB) => {
    // Sizes straddle the 4×4 tile, the 64-row and 256-deep blocks, and 1-wide edges.
    for (const [mm, k, n] of [
      [1, 1, 1],
      [3, 5, 7],
      [4, 4, 4],
      [67, 259, 13],
      [130, 17, 515],
      [9, 300, 1],
    ]) {
      const a = tA ? randn(k, mm, mm * 31 + k) : randn(mm, k, mm * 31 + k);
      const b = tB ? randn(n, k, n * 17 + k) : randn(k, n, n * 17 + k);
      const c = matmul(a, b, { transposeA: tA, transposeB: tB });
      expect(c.shape).toEqual([mm, n]);
      expect(maxDiff(c.toArray(), referenceMatmul(a, b, tA, tB))).toBeLessThan(1e-11 * Math.sqrt(k));
    }
  });

  it('reads strided views without copying them first', () => {
    const big = randn(40, 50, 1);
    const a = block(big, 3, 7, 20, 30);
    const b = sliceCols(sliceRows(randn(60, 45, 2), 10, 40), 5, 25);
    const c = matmul(a, b);
    expect(maxDiff(c.toArray(), referenceMatmul(a, b))).toBeLessThan(1e-12);
  });

  it('keeps float32 and stays within float32 rounding of the float64 result', () => {
    const a64 = randn(70, 90, 3);
    const b64 = randn(90, 33, 4);
    const c32 = matmul(toDType(a64, 'float32'), toDType(b64, 'float32'));
    expect(c32.dtype).toBe('float32');
    const c64 = matmul(toDType(toDType(a64, 'float32'), 'float64'), toDType(toDType(b64, 'float32'), 'float64'));
    expect(maxDiff(c32.toArray(), c64.toArray())).toBeLessThan(1e-4);
  });

  it('all four transpose forms agree with explicit transposes (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 12 }), fc.integer(), (mm, k, n, seed) => {
        const rng = new Rng(seed);
        const a = randomNormal(mm, k, rng);
        const b = randomNormal(k, n, rng);
        const base = matmul(a, b).toArray();
        expect(maxDiff(matmul(transpose(a), b, { transposeA: true }).toArray(), base)).toBeLessThan(1e-12);
        expect(maxDiff(matmul(a, transpose(b), { transposeB: true }).toArray(), base)).toBeLessThan(1e-12);
        expect(maxDiff(matmul(transpose(a), transpose(b), { transposeA: true, transposeB: true }).toArray(), base)).toBeLessThan(1e-12);
      }),
      { numRuns: 200 },
    );
  });

  it('is associative within rounding (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer(),
        (p, q, r, s, seed) => {
          const rng = new Rng(seed);
          const a = randomNormal(p, q, rng);
          const b = randomNormal(q, r, rng);
          const c = randomNormal(r, s, rng);
          expect(maxDiff(matmul(matmul(a, b), c).toArray(), matmul(a, matmul(b, c)).toArray())).toBeLessThan(1e-10);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('handles empty inner and outer dimensions', () => {
    expect(matmul(randn(3, 0, 1), randn(0, 4, 2)).toArray()).toEqual([
      [0, 0, 0, 0],
      [0, 0, 0, 0],
      [0, 0, 0, 0],
    ]);
    expect(matmul(randn(0, 3, 1), randn(3, 2, 2)).shape).toEqual([0, 2]);
  });

  it('names both shapes when inner dimensions differ', () => {
    expect(() => matmul(randn(2, 3, 1), randn(4, 5, 2))).toThrow(ShapeError);
    expect(() => matmul(randn(2, 3, 1), randn(4, 5, 2))).toThrow(/A is 2×3 and B is 4×5/);
    expect(() => matmul(randn(2, 3, 1), randn(2, 5, 2), { transposeB: true })).toThrow(/Bᵀ is 5×2/);
  });

  it('refuses to mix dtypes', () => {
    expect(() => matmul(randn(2, 2, 1), toDType(randn(2, 2, 2), 'float32'))).toThrow(DTypeError);
  });
});

describe('matmul into a given buffer', () => {
  it('overwrites out, including a view at an offset, and checks its shape', () => {
    const a = randn(5, 7, 1);
    const b = randn(7, 3, 2);
    const buffer = new Float64Array(40).fill(9);
    const out = new Matrix(5, 3, buffer, 10, 3);
    const c = matmul(a, b, { out });
    expect(c).toBe(out);
    expect(maxDiff(out.toArray(), referenceMatmul(a, b))).toBeLessThan(1e-12);
    expect(buffer[9]).toBe(9);
    expect(buffer[25]).toBe(9);
    expect(() => matmul(a, b, { out: zeros(5, 4) })).toThrow(/out is 5×4 float64 but the result is a contiguous 5×3 float64/);
    expect(() => matmul(a, b, { out: sliceCols(zeros(5, 6), 0, 3) })).toThrow(/strided/);
  });

  it('gives the right product when out is one of the inputs, or shares their memory', () => {
    for (const transposeB of [false, true]) {
      const a = randn(4, 4, 3);
      const b = randn(4, 4, 4);
      const expected = referenceMatmul(a, transposeB ? transpose(b) : b);
      expect(maxDiff(matmul(a, b, { out: a, transposeB }).toArray(), expected)).toBeLessThan(1e-12);
    }
    const shared = new Float64Array(32);
    const left = new Matrix(4, 4, shared, 0, 4);
    const right = new Matrix(4, 4, shared, 16, 4);
    left.data.set(randn(4, 4, 5).data);
    right.data.set(randn(4, 4, 6).data, 16);
    const expected = referenceMatmul(left, right);
    // out overlaps the second half of `left`'s span and the first half of `right`'s.
    const out = new Matrix(4, 4, shared, 8, 4);
    expect(maxDiff(matmul(left, right, { out }).toArray(), expected)).toBeLessThan(1e-12);
  });
});
