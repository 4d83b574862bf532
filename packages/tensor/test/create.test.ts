import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  block,
  copy,
  fromArray,
  fromFlat,
  full,
  identity,
  InvalidArgumentError,
  Matrix,
  NonFiniteError,
  ones,
  randomNormal,
  randomUniform,
  Rng,
  ShapeError,
  sliceCols,
  sliceRows,
  toDType,
  zeros,
} from '../src/index.js';

describe('creation', () => {
  it('builds zeros, ones, full and identity of both dtypes', () => {
    expect(zeros(2, 3).toArray()).toEqual([
      [0, 0, 0],
      [0, 0, 0],
    ]);
    expect(ones(1, 2, { dtype: 'float32' }).dtype).toBe('float32');
    expect(full(2, 2, 2.5).toArray()).toEqual([
      [2.5, 2.5],
      [2.5, 2.5],
    ]);
    expect(identity(3).toArray()).toEqual([
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ]);
  });

  it('reads nested and flat arrays row-major', () => {
    const a = fromArray([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(a.get(1, 0)).toBe(4);
    expect(fromFlat(2, 3, [1, 2, 3, 4, 5, 6]).toArray()).toEqual(a.toArray());
  });

  it('wraps a typed array of the right dtype without copying', () => {
    const data = new Float64Array([1, 2, 3, 4]);
    const a = fromFlat(2, 2, data);
    data[3] = 9;
    expect(a.get(1, 1)).toBe(9);
    expect(fromFlat(1, 2, new Float32Array([1, 2])).dtype).toBe('float32');
  });

  it('rejects ragged rows, wrong lengths, bad sizes and non-finite values with typed errors', () => {
    expect(() => fromArray([[1, 2], [3]])).toThrow(ShapeError);
    expect(() => fromFlat(2, 2, [1, 2, 3])).toThrow(/3 values cannot fill a 2×2/);
    expect(() => zeros(-1, 2)).toThrow(InvalidArgumentError);
    expect(() => zeros(1.5, 2)).toThrow(InvalidArgumentError);
    expect(() => fromArray([[1, Number.NaN]])).toThrow(NonFiniteError);
    expect(() => fromFlat(1, 2, new Float64Array([1, Infinity]))).toThrow(/\(0, 1\)/);
    expect(() => full(1, 1, Infinity)).toThrow(NonFiniteError);
    expect(() => fromArray([['x' as unknown as number]])).toThrow(InvalidArgumentError);
  });

  it('rejects views that would read outside the buffer', () => {
    expect(() => new Matrix(3, 3, new Float64Array(8))).toThrow(ShapeError);
    expect(() => new Matrix(2, 3, new Float64Array(10), 2, 2)).toThrow(ShapeError);
    // A NaN or fractional offset or stride would fit the bounds check and make every read undefined.
    for (const [offset, stride] of [
      [Number.NaN, 2],
      [0.5, 2],
      [0, 2.5],
      [0, Number.NaN],
      [-1, 2],
    ]) {
      expect(() => new Matrix(2, 2, new Float64Array(8), offset, stride)).toThrow(InvalidArgumentError);
    }
  });

  it('bounds-checks get, set and row', () => {
    const a = zeros(2, 2);
    expect(() => a.get(2, 0)).toThrow(ShapeError);
    expect(() => a.set(0, -1, 1)).toThrow(ShapeError);
    expect(() => a.row(5)).toThrow(ShapeError);
  });

  it('converts dtypes', () => {
    const a = fromArray([[1 / 3]]);
    const f = toDType(a, 'float32');
    expect(f.dtype).toBe('float32');
    expect(f.get(0, 0)).toBe(Math.fround(1 / 3));
  });
});

describe('views', () => {
  it('share the parent buffer and see writes both ways', () => {
    const a = fromArray([
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
    ]);
    const rows = sliceRows(a, 1, 3);
    const cols = sliceCols(a, 1, 3);
    const b = block(a, 1, 1, 2, 2);
    expect(rows.data).toBe(a.data);
    expect(rows.isContiguous).toBe(true);
    expect(cols.isContiguous).toBe(false);
    expect(cols.toArray()).toEqual([
      [2, 3],
      [5, 6],
      [8, 9],
    ]);
    expect(b.toArray()).toEqual([
      [5, 6],
      [8, 9],
    ]);
    b.set(0, 0, 50);
    expect(a.get(1, 1)).toBe(50);
    a.row(2)[2] = 90;
    expect(b.get(1, 1)).toBe(90);
    expect(copy(b).toFlat()).toEqual(new Float64Array([50, 6, 8, 90]));
  });

  it('reject ranges outside the matrix', () => {
    const a = zeros(3, 3);
    expect(() => sliceRows(a, 2, 4)).toThrow(ShapeError);
    expect(() => sliceCols(a, -1, 2)).toThrow(ShapeError);
    expect(() => block(a, 1, 1, 3, 1)).toThrow(ShapeError);
  });
});

describe('Rng', () => {
  it('is the documented mulberry32 stream', () => {
    // First outputs of mulberry32 seeded with 1, printed by the canonical C definition compiled with gcc.
    const rng = new Rng(1);
    const first = [rng.next(), rng.next(), rng.next()];
    expect(first.map((x) => Math.round(x * 4294967296))).toEqual([2693262067, 11749833, 2265367787]);
  });

  it('replays from a saved state', () => {
    const rng = new Rng(42);
    rng.next();
    const saved = rng.state;
    const a = [rng.next(), rng.normal(), rng.next()];
    const b = new Rng(0).setState(saved);
    expect([b.next(), b.normal(), b.next()]).toEqual(a);
  });

  it('draws uniform and normal matrices with plausible moments', () => {
    const u = randomUniform(200, 50, new Rng(7), { low: -1, high: 3 });
    const n = randomNormal(200, 50, new Rng(8), { mean: 2, std: 0.5 });
    const mean = (x: ArrayLike<number>) => Array.from(x).reduce((s, v) => s + v, 0) / x.length;
    expect(mean(u.data)).toBeCloseTo(1, 1);
    expect(Math.min(...u.data)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...u.data)).toBeLessThan(3);
    expect(mean(n.data)).toBeCloseTo(2, 1);
    const variance = Array.from(n.data).reduce((s, v) => s + (v - 2) ** 2, 0) / n.data.length;
    expect(Math.sqrt(variance)).toBeCloseTo(0.5, 1);
  });

  it('always returns values in [0, 1) (property)', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const rng = new Rng(seed);
        for (let i = 0; i < 100; i++) {
          const x = rng.next();
          if (!(x >= 0 && x < 1)) return false;
        }
        return true;
      }),
    );
  });

  it('rejects bad seeds, states and bounds', () => {
    expect(() => new Rng(Number.NaN)).toThrow(InvalidArgumentError);
    expect(() => new Rng(1).setState(-1)).toThrow(InvalidArgumentError);
    expect(() => new Rng(1).int(0)).toThrow(InvalidArgumentError);
    expect(() => randomUniform(1, 1, new Rng(1), { low: 2, high: 1 })).toThrow(InvalidArgumentError);
  });
});
