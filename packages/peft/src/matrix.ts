import { type DType, fromFlat, Matrix } from '@almora/tensor';
import { PeftShapeError } from './errors.js';
import type { SafetensorsDType, SafetensorsTensor } from './safetensors.js';

/** Options of {@link tensorToMatrix}. */
export interface ToMatrixOptions {
  /** The matrix's element type; default float64. */
  dtype?: DType;
  /** Keep NaN and ±Infinity (by default a non-finite value is a `NonFiniteError`). */
  allowNonFinite?: boolean;
}

/**
 * A 2-D tensor [rows, cols] as a rows×cols matrix, a 1-D one [n] as 1×n, a scalar as 1×1 (torch's
 * row-major order, nothing transposed); any other rank is a {@link PeftShapeError}.
 */
export function tensorToMatrix(tensor: SafetensorsTensor, options: ToMatrixOptions = {}): Matrix {
  const { shape, data } = tensor;
  if (shape.length > 2) throw new PeftShapeError(`a tensor of shape [${shape.join(', ')}] is not a matrix`);
  const [rows, cols] = shape.length === 2 ? shape : [1, shape[0] ?? 1];
  const dtype = options.dtype ?? 'float64';
  if (!options.allowNonFinite) return fromFlat(rows, cols, data, { dtype });
  const same = (dtype === 'float64') === data instanceof Float64Array;
  return new Matrix(rows, cols, same ? data : dtype === 'float64' ? Float64Array.from(data) : Float32Array.from(data));
}

/**
 * A matrix as a tensor to be stored as `dtype` (default F32); `shape` defaults to [rows, cols]
 * and may be any shape of as many elements ([n] for a 1×n RMSNorm weight, as torch stores it).
 */
export function matrixToTensor(m: Matrix, dtype: SafetensorsDType = 'F32', shape: number[] = [m.rows, m.cols]): SafetensorsTensor {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== m.size) throw new PeftShapeError(`a ${m.rows}×${m.cols} matrix does not fill shape [${shape.join(', ')}]`);
  const flat = m.toFlat();
  // F16 and BF16 keep float64 values here, so encoding rounds once (float64 → F16), not twice.
  return { dtype, shape: [...shape], data: dtype === 'F32' ? Float32Array.from(flat) : Float64Array.from(flat) };
}
