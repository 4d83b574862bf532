import { type Matrix, zeros } from '@almora/tensor';

/**
 * RMSNorm of every group of `gain.cols` columns of each row, the gain shared by the groups:
 * y = x / √(mean(x²) + ε) ∘ gain. With gain 1×hidden it is Qwen3's `input_layernorm`,
 * `post_attention_layernorm` and `model.norm`; with gain 1×head_dim it is `q_norm` / `k_norm`, which
 * normalise each head's query (key) on its own. Returns y and the 1/√(mean(x²) + ε) of every group.
 */
export function rmsNorm(x: Matrix, gain: Matrix, epsilon: number): { y: Matrix; inverseRms: Float64Array } {
  const width = gain.cols;
  const groups = x.cols / width;
  const y = zeros(x.rows, x.cols, { dtype: x.dtype });
  const inverseRms = new Float64Array(x.rows * groups);
  for (let i = 0; i < x.rows; i++) {
    for (let g = 0; g < groups; g++) {
      const base = x.offset + i * x.stride + g * width;
      let squares = 0;
      for (let j = 0; j < width; j++) squares += x.data[base + j] * x.data[base + j];
      const r = 1 / Math.sqrt(squares / width + epsilon);
      inverseRms[i * groups + g] = r;
      const out = i * x.cols + g * width;
      for (let j = 0; j < width; j++) y.data[out + j] = x.data[base + j] * r * gain.data[gain.offset + j];
    }
  }
  return { y, inverseRms };
}

/**
 * The vector-Jacobian product of {@link rmsNorm}: with u = gain ∘ ∂y and r = 1/√(mean(x²) + ε) per
 * group of n columns, ∂x = r·u − (r³/n)·(u·x)·x and ∂gain = Σ over rows and groups of ∂y ∘ x·r.
 */
export function rmsNormBackward(x: Matrix, gain: Matrix, inverseRms: Float64Array, dy: Matrix): { dx: Matrix; dgain: Matrix } {
  const width = gain.cols;
  const groups = x.cols / width;
  const dx = zeros(x.rows, x.cols, { dtype: x.dtype });
  const dgain = new Float64Array(width);
  for (let i = 0; i < x.rows; i++) {
    for (let g = 0; g < groups; g++) {
      const base = x.offset + i * x.stride + g * width;
      const upBase = dy.offset + i * dy.stride + g * width;
      const r = inverseRms[i * groups + g];
      let dot = 0;
      for (let j = 0; j < width; j++) {
        const up = dy.data[upBase + j];
        dot += up * gain.data[gain.offset + j] * x.data[base + j];
        dgain[j] += up * x.data[base + j] * r;
      }
      const c = (r * r * r * dot) / width;
      const out = i * x.cols + g * width;
      for (let j = 0; j < width; j++) dx.data[out + j] = r * gain.data[gain.offset + j] * dy.data[upBase + j] - c * x.data[base + j];
    }
  }
  const dgainMatrix = zeros(1, width, { dtype: x.dtype });
  dgainMatrix.data.set(dgain);
  return { dx, dgain: dgainMatrix };
}
