import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  abs,
  add,
  addInto,
  block,
  zeros,
  colSums,
  DTypeError,
  exp,
  fromArray,
  frobeniusNorm,
  hadamard,
  map,
  maxAbs,
  NonFiniteError,
  Rng,
  randomNormal,
  rowSums,
  scale,
  scaleCols,
  scaleRows,
  ShapeError,
  sliceCols,
  sub,
  toDType,
} from '../src/index.js';
import { randn } from './helpers.js';

const a = fromArray([
  [1, -2, 3],
  [-4, 5, -6],
]);
const b = fromArray([
  [0.5, 1, 2],
  [3, -1, 0],
]);

describe('elementwise operations', () => {
  it('match their definitions', () => {
    expect(add(a, b).toArray()).toEqual([
      [1.5, -1, 5],
      [-1, 4, -6],
    ]);
    expect(sub(a, b).toArray()).toEqual([
      [0.5, -3, 1],
      [-7, 6, -6],
    ]);
    expect(hadamard(a, b).toArray()).toEqual([
      [0.5, -2, 6],
      [-12, -5, -0],
    ]);
    expect(scale(a, 2).toArray()).toEqual([
      [2, -4, 6],
      [-8, 10, -12],
    ]);
    expect(map(a, (x, i, j) => x + 10 * i + 100 * j).get(1, 2)).toBe(-6 + 10 + 200);
    expect(exp(fromArray([[0, 1]])).toArray()[0]).toEqual([1, Math.E]);
    expect(abs(a).toArray()).toEqual(map(a, Math.abs).toArray());
    // A view (offset and stride) in float32 keeps its dtype.
    const view = block(toDType(a, 'float32'), 1, 1, 1, 2);
    expect(abs(view).dtype).toBe('float32');
    expect(abs(view).toArray()).toEqual([[5, 6]]);
  });

  it('accumulates in place into a view', () => {
    const target = zeros(3, 4);
    addInto(block(target, 1, 1, 2, 3), a);
    expect(target.toArray()).toEqual([
      [0, 0, 0, 0],
      [0, 1, -2, 3],
      [0, -4, 5, -6],
    ]);
    expect(() => addInto(target, a)).toThrow(ShapeError);
  });

  it('scale rows and columns by a diagonal', () => {
    expect(scaleRows(a, [2, -1]).toArray()).toEqual([
      [2, -4, 6],
      [4, -5, 6],
    ]);
    expect(scaleCols(a, [1, 0, -1]).toArray()).toEqual([
      [1, -0, -3],
      [-4, 0, 6],
    ]);
  });

  it('reduce to row sums, column sums and norms', () => {
    expect(Array.from(rowSums(a))).toEqual([2, -5]);
    expect(Array.from(colSums(a))).toEqual([-3, 3, -3]);
    expect(maxAbs(a)).toBe(6);
    expect(frobeniusNorm(a)).toBeCloseTo(Math.sqrt(91), 14);
    expect(frobeniusNorm(fromArray([[1e200, 1e200]]))).toBeCloseTo(Math.SQRT2 * 1e200, -186);
    expect(maxAbs(fromArray([]))).toBe(0);
  });

  it('work on strided views', () => {
    const v = sliceCols(a, 1, 3);
    expect(Array.from(rowSums(v))).toEqual([1, -1]);
    expect(add(v, v).toArray()).toEqual([
      [-4, 6],
      [10, -12],
    ]);
  });

  it('keep float32 as float32', () => {
    const f = toDType(a, 'float32');
    expect(scale(f, 3).dtype).toBe('float32');
    expect(rowSums(f)).toBeInstanceOf(Float32Array);
    expect(colSums(f)).toBeInstanceOf(Float32Array);
  });

  it('satisfy rowSums(A) = A·1 and the distributive law (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 20 }), fc.integer(), (r, c, seed) => {
        const rng = new Rng(seed);
        const x = randomNormal(r, c, rng);
        const y = randomNormal(r, c, rng);
        const z = randomNormal(r, c, rng);
        const left = hadamard(x, add(y, z));
        const right = add(hadamard(x, y), hadamard(x, z));
        expect(maxAbs(sub(left, right))).toBeLessThan(1e-12);
        const sums = rowSums(x);
        for (let i = 0; i < r; i++)
          expect(sums[i]).toBeCloseTo(
            x.toArray()[i].reduce((s, v) => s + v, 0),
            12,
          );
      }),
      { numRuns: 100 },
    );
  });

  it('reject mismatched shapes naming both, mixed dtypes, and bad vectors', () => {
    expect(() => add(a, randn(3, 2, 1))).toThrow(ShapeError);
    expect(() => add(a, randn(3, 2, 1))).toThrow(/2×3 and 3×2/);
    expect(() => hadamard(a, toDType(b, 'float32'))).toThrow(DTypeError);
    expect(() => scaleRows(a, [1, 2, 3])).toThrow(/length 3, the matrix has 2 rows/);
    expect(() => scaleCols(a, [1])).toThrow(ShapeError);
  });

  it('never lets exp overflow or a non-finite scale through silently', () => {
    expect(() => exp(fromArray([[0, 710]]))).toThrow(NonFiniteError);
    expect(() => exp(toDType(fromArray([[89]]), 'float32'))).toThrow(NonFiniteError);
    expect(() => scale(a, Number.NaN)).toThrow(NonFiniteError);
  });
});
