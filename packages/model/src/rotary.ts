import { type Matrix, zeros } from '@almora/tensor';

/** cos and sin of every row's rotary angles: row t, frequency i at t·half + i. */
export interface RotaryTables {
  /** head_dim / 2. */
  half: number;
  /** cos(p_t·θ^(−2i/head_dim)). */
  cos: Float64Array;
  /** sin(p_t·θ^(−2i/head_dim)). */
  sin: Float64Array;
}

/**
 * The rotary angles of Hugging Face's default RoPE for the given position of every row:
 * inv_freq_i = 1/θ^(2i/head_dim), angle = position·inv_freq_i, i < head_dim/2. Computed in float64
 * (transformers computes inv_freq and the angles in float32, ~1e-7 apart from these).
 */
export function rotaryTables(positions: readonly number[], headDim: number, theta: number): RotaryTables {
  const half = headDim / 2;
  const inverseFrequency = Array.from({ length: half }, (_, i) => 1 / Math.pow(theta, (2 * i) / headDim));
  const cos = new Float64Array(positions.length * half);
  const sin = new Float64Array(positions.length * half);
  positions.forEach((p, t) => {
    for (let i = 0; i < half; i++) {
      cos[t * half + i] = Math.cos(p * inverseFrequency[i]);
      sin[t * half + i] = Math.sin(p * inverseFrequency[i]);
    }
  });
  return { half, cos, sin };
}

/**
 * Rotary embedding of every head (column groups of head_dim) of every row, in transformers'
 * rotate_half convention: x·cos + rotate_half(x)·sin with rotate_half(x) = [−x₂, x₁], that is, the
 * pair (x_i, x_{i+half}) turned by the row's i-th angle. `inverse` turns it back by the same angle,
 * which is also the backward pass: the rotation is orthogonal, so its vector-Jacobian product is
 * its inverse applied to ∂y.
 */
export function rotary(x: Matrix, tables: RotaryTables, inverse = false): Matrix {
  const { half, cos, sin } = tables;
  const width = 2 * half;
  const heads = x.cols / width;
  const sign = inverse ? -1 : 1;
  const y = zeros(x.rows, x.cols, { dtype: x.dtype });
  for (let t = 0; t < x.rows; t++) {
    for (let h = 0; h < heads; h++) {
      const base = x.offset + t * x.stride + h * width;
      const out = t * x.cols + h * width;
      for (let i = 0; i < half; i++) {
        const [c, s] = [cos[t * half + i], sign * sin[t * half + i]];
        const [a, b] = [x.data[base + i], x.data[base + i + half]];
        y.data[out + i] = a * c - b * s;
        y.data[out + i + half] = b * c + a * s;
      }
    }
  }
  return y;
}
