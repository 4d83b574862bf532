import { DTypeError, InvalidArgumentError, ShapeError } from './errors.js';

/** Element type of a {@link Matrix}: float64 (the default) or float32. */
export type DType = 'float64' | 'float32';

/** Typed array backing a {@link Matrix}. */
export type FloatArray = Float64Array | Float32Array;

/** Options shared by every function that creates a matrix. */
export interface CreateOptions {
  /** Element type; float64 unless said otherwise. */
  dtype?: DType;
}

/**
 * A dense, row-major matrix, possibly a view into a larger buffer.
 *
 * Element (i, j) lives at `data[offset + i * stride + j]`. Views made by {@link sliceRows},
 * {@link sliceCols} and {@link block} share `data` with their parent; every operation returns a
 * fresh contiguous matrix (offset 0, stride = cols).
 */
export class Matrix {
  /** Number of rows. */
  readonly rows: number;
  /** Number of columns. */
  readonly cols: number;
  /** Backing buffer, shared with views. */
  readonly data: FloatArray;
  /** Index in `data` of element (0, 0). */
  readonly offset: number;
  /** Distance in `data` between the starts of consecutive rows. */
  readonly stride: number;

  /**
   * Wraps `data` without copying. Prefer {@link fromFlat}, {@link zeros} and friends, which validate
   * their input; this constructor checks that sizes, offset and stride are non-negative integers and
   * that the view stays inside the buffer.
   */
  constructor(rows: number, cols: number, data: FloatArray, offset = 0, stride = cols) {
    assertSize(rows, 'rows');
    assertSize(cols, 'cols');
    // A NaN or fractional offset or stride would pass the bounds check below and make every read undefined.
    assertSize(offset, 'offset');
    assertSize(stride, 'stride');
    if (!(data instanceof Float64Array || data instanceof Float32Array)) {
      throw new DTypeError('Matrix data must be a Float64Array or a Float32Array');
    }
    if (rows > 0 && cols > 0) {
      const last = offset + (rows - 1) * stride + cols - 1;
      if (offset < 0 || stride < cols || last >= data.length) {
        throw new ShapeError(`a ${rows}×${cols} view at offset ${offset} with stride ${stride} does not fit in a buffer of ${data.length} elements`);
      }
    }
    this.rows = rows;
    this.cols = cols;
    this.data = data;
    this.offset = offset;
    this.stride = stride;
  }

  /** Element type of the backing buffer. */
  get dtype(): DType {
    return this.data instanceof Float32Array ? 'float32' : 'float64';
  }

  /** `[rows, cols]`. */
  get shape(): [number, number] {
    return [this.rows, this.cols];
  }

  /** Number of elements, rows × cols. */
  get size(): number {
    return this.rows * this.cols;
  }

  /** True when the rows follow one another in `data` without gaps (a row slice or a fresh matrix). */
  get isContiguous(): boolean {
    return this.stride === this.cols || this.rows <= 1;
  }

  /** Element (i, j), bounds-checked. */
  get(i: number, j: number): number {
    this.checkIndex(i, j);
    return this.data[this.offset + i * this.stride + j];
  }

  /** Sets element (i, j), bounds-checked. */
  set(i: number, j: number, value: number): void {
    this.checkIndex(i, j);
    this.data[this.offset + i * this.stride + j] = value;
  }

  /** Row i as a typed-array view (no copy): writing to it writes the matrix. */
  row(i: number): FloatArray {
    if (!Number.isInteger(i) || i < 0 || i >= this.rows) {
      throw new ShapeError(`row ${i} is outside a ${this.rows}×${this.cols} matrix`);
    }
    const start = this.offset + i * this.stride;
    return this.data.subarray(start, start + this.cols);
  }

  /** The elements as a contiguous row-major array of this matrix's dtype (a view when already contiguous). */
  toFlat(): FloatArray {
    if (this.isContiguous) return this.data.subarray(this.offset, this.offset + this.size);
    return copy(this).data;
  }

  /** The elements as nested JavaScript arrays, row by row. */
  toArray(): number[][] {
    const out: number[][] = [];
    for (let i = 0; i < this.rows; i++) out.push(Array.from(this.row(i)));
    return out;
  }

  /** Shape and dtype, for messages: `"3×4 float64"`. */
  describe(): string {
    return `${this.rows}×${this.cols} ${this.dtype}`;
  }

  private checkIndex(i: number, j: number): void {
    if (!Number.isInteger(i) || !Number.isInteger(j) || i < 0 || j < 0 || i >= this.rows || j >= this.cols) {
      throw new ShapeError(`index (${i}, ${j}) is outside a ${this.rows}×${this.cols} matrix`);
    }
  }
}

/** Throws {@link InvalidArgumentError} unless `n` is a non-negative integer. */
export function assertSize(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0) {
    throw new InvalidArgumentError(`${what} must be a non-negative integer, got ${n}`);
  }
}

/** Allocates a zero-filled typed array of the given dtype. */
export function allocate(length: number, dtype: DType = 'float64'): FloatArray {
  return dtype === 'float32' ? new Float32Array(length) : new Float64Array(length);
}

/** A contiguous copy of `m` (its own buffer, offset 0, stride = cols). */
export function copy(m: Matrix): Matrix {
  const out = new Matrix(m.rows, m.cols, allocate(m.size, m.dtype));
  for (let i = 0; i < m.rows; i++) {
    const base = m.offset + i * m.stride;
    out.data.set(m.data.subarray(base, base + m.cols), i * m.cols);
  }
  return out;
}

/** Rows [start, end) of `m`, sharing its buffer (no copy). */
export function sliceRows(m: Matrix, start: number, end: number): Matrix {
  checkRange(start, end, m.rows, 'row');
  return new Matrix(end - start, m.cols, m.data, m.offset + start * m.stride, m.stride);
}

/** Columns [start, end) of `m`, sharing its buffer (no copy; the view is strided). */
export function sliceCols(m: Matrix, start: number, end: number): Matrix {
  checkRange(start, end, m.cols, 'column');
  return new Matrix(m.rows, end - start, m.data, m.offset + start, m.stride);
}

/** The `rows`×`cols` block of `m` whose top-left element is (row, col), sharing its buffer. */
export function block(m: Matrix, row: number, col: number, rows: number, cols: number): Matrix {
  checkRange(row, row + rows, m.rows, 'row');
  checkRange(col, col + cols, m.cols, 'column');
  return new Matrix(rows, cols, m.data, m.offset + row * m.stride + col, m.stride);
}

function checkRange(start: number, end: number, limit: number, what: string): void {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > limit) {
    throw new ShapeError(`${what} range [${start}, ${end}) is outside [0, ${limit})`);
  }
}
