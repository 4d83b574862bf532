import { DTypeError, NonFiniteError, ShapeError } from './errors.js';
import type { Matrix } from './matrix.js';

/** Throws {@link DTypeError} unless `a` and `b` have the same dtype; `op` names the operation. */
export function assertSameDType(a: Matrix, b: Matrix, op: string): void {
  if (a.dtype !== b.dtype) {
    throw new DTypeError(`${op}: cannot mix ${a.dtype} and ${b.dtype}; convert one with toDType()`);
  }
}

/** Throws {@link ShapeError} unless `a` and `b` have the same shape (and {@link DTypeError} unless the same dtype). */
export function assertSameShape(a: Matrix, b: Matrix, op: string): void {
  if (a.rows !== b.rows || a.cols !== b.cols) {
    throw new ShapeError(`${op}: shapes ${a.rows}×${a.cols} and ${b.rows}×${b.cols} differ`);
  }
  assertSameDType(a, b, op);
}

/**
 * Throws {@link ShapeError} unless `m` is `rows`×`cols`; `name` is what the caller calls the
 * matrix (e.g. "A_q"), so the message says which input is wrong.
 */
export function assertShape(m: Matrix, rows: number, cols: number, name: string): void {
  if (m.rows !== rows || m.cols !== cols) {
    throw new ShapeError(`${name} must be ${rows}×${cols}, got ${m.rows}×${m.cols}`);
  }
}

/** Throws {@link NonFiniteError} naming the first NaN or ±Infinity in `m` and where it is. */
export function assertFinite(m: Matrix, name: string): void {
  const { data, rows, cols, offset, stride } = m;
  for (let i = 0; i < rows; i++) {
    const base = offset + i * stride;
    for (let j = 0; j < cols; j++) {
      const v = data[base + j];
      if (!Number.isFinite(v)) {
        throw new NonFiniteError(`${name} has a non-finite value ${v} at (${i}, ${j})`);
      }
    }
  }
}
