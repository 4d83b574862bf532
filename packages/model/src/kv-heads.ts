import { type Matrix, zeros } from '@almora/tensor';

/**
 * Grouped-query attention as transformers' `repeat_kv`: each of the KV key (value) heads of x
 * (T×KV·d) repeated `groups` times side by side, so query head h reads key/value head ⌊h/groups⌋.
 * The attention core then sees one key and value head per query head.
 */
export function repeatKv(x: Matrix, groups: number, headDim: number): Matrix {
  if (groups === 1) return x;
  const heads = x.cols / headDim;
  const y = zeros(x.rows, x.cols * groups, { dtype: x.dtype });
  for (let t = 0; t < x.rows; t++) {
    for (let h = 0; h < heads; h++) {
      const source = x.data.subarray(x.offset + t * x.stride + h * headDim, x.offset + t * x.stride + (h + 1) * headDim);
      for (let g = 0; g < groups; g++) y.data.set(source, t * y.cols + (h * groups + g) * headDim);
    }
  }
  return y;
}

/** The vector-Jacobian product of {@link repeatKv}: each key/value head's gradient is the sum over the query heads of its group. */
export function sumKv(dy: Matrix, groups: number, headDim: number): Matrix {
  if (groups === 1) return dy;
  const heads = dy.cols / headDim / groups;
  const dx = zeros(dy.rows, heads * headDim, { dtype: dy.dtype });
  for (let t = 0; t < dy.rows; t++) {
    for (let h = 0; h < heads; h++) {
      for (let g = 0; g < groups; g++) {
        const base = dy.offset + t * dy.stride + (h * groups + g) * headDim;
        const out = t * dx.cols + h * headDim;
        for (let j = 0; j < headDim; j++) dx.data[out + j] += dy.data[base + j];
      }
    }
  }
  return dx;
}
