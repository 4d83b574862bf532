import { InvalidArgumentError, NonFiniteError, ShapeError } from './errors.js';
import { allocate, assertSize, Matrix, type CreateOptions, type DType, type FloatArray } from './matrix.js';

/** A rows×cols matrix of zeros. */
export function zeros(rows: number, cols: number, options: CreateOptions = {}): Matrix {
  assertSize(rows, 'rows');
  assertSize(cols, 'cols');
  return new Matrix(rows, cols, allocate(rows * cols, options.dtype));
}

/** A rows×cols matrix with every element equal to `value` (which must be finite). */
export function full(rows: number, cols: number, value: number, options: CreateOptions = {}): Matrix {
  if (!Number.isFinite(value)) throw new NonFiniteError(`full: fill value ${value} is not finite`);
  const m = zeros(rows, cols, options);
  m.data.fill(value);
  return m;
}

/** A rows×cols matrix of ones. */
export function ones(rows: number, cols: number, options: CreateOptions = {}): Matrix {
  return full(rows, cols, 1, options);
}

/** The n×n identity matrix. */
export function identity(n: number, options: CreateOptions = {}): Matrix {
  const m = zeros(n, n, options);
  for (let i = 0; i < n; i++) m.data[i * n + i] = 1;
  return m;
}

/**
 * A matrix from nested arrays, one inner array per row. Rows must have equal lengths and every
 * entry must be a finite number.
 */
export function fromArray(values: readonly (readonly number[])[], options: CreateOptions = {}): Matrix {
  const rows = values.length;
  const cols = rows === 0 ? 0 : values[0].length;
  const m = zeros(rows, cols, options);
  for (let i = 0; i < rows; i++) {
    const row = values[i];
    if (!Array.isArray(row) || row.length !== cols) {
      throw new ShapeError(`fromArray: row ${i} has ${Array.isArray(row) ? row.length : 'no'} entries, row 0 has ${cols}`);
    }
    for (let j = 0; j < cols; j++) m.data[i * cols + j] = checkedEntry(row[j], i, j);
  }
  return m;
}

/**
 * A rows×cols matrix from a flat row-major array. A typed array of the requested dtype is wrapped
 * without copying; anything else is copied. Every entry must be finite.
 */
export function fromFlat(rows: number, cols: number, values: FloatArray | readonly number[], options: CreateOptions = {}): Matrix {
  assertSize(rows, 'rows');
  assertSize(cols, 'cols');
  if (values.length !== rows * cols) {
    throw new ShapeError(`fromFlat: ${values.length} values cannot fill a ${rows}×${cols} matrix (${rows * cols} needed)`);
  }
  const dtype: DType = options.dtype ?? (values instanceof Float32Array ? 'float32' : 'float64');
  const wraps = (dtype === 'float64' && values instanceof Float64Array) || (dtype === 'float32' && values instanceof Float32Array);
  const data = wraps ? (values as FloatArray) : allocate(rows * cols, dtype);
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    // The entry's (row, column) is worked out only for the message, when it throws.
    if (typeof v !== 'number' || !Number.isFinite(v)) checkedEntry(v, Math.floor(k / cols), k % cols);
    if (!wraps) data[k] = v;
  }
  return new Matrix(rows, cols, data);
}

/** A copy of `m` converted to `dtype` (float64 → float32 rounds to nearest). */
export function toDType(m: Matrix, dtype: DType): Matrix {
  const out = zeros(m.rows, m.cols, { dtype });
  for (let i = 0; i < m.rows; i++) {
    const base = m.offset + i * m.stride;
    for (let j = 0; j < m.cols; j++) out.data[i * m.cols + j] = m.data[base + j];
  }
  return out;
}

function checkedEntry(v: unknown, i: number, j: number): number {
  if (typeof v !== 'number') throw new InvalidArgumentError(`entry (${i}, ${j}) is not a number: ${String(v)}`);
  if (!Number.isFinite(v)) throw new NonFiniteError(`entry (${i}, ${j}) is not finite: ${v}`);
  return v;
}
