import { type Matrix, zeros } from '@almora/tensor';

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Qwen3's MLP nonlinearity: silu(gate) ∘ up, silu(x) = x·σ(x); the input of `down_proj`. */
export function swiglu(gate: Matrix, up: Matrix): Matrix {
  const m = zeros(gate.rows, gate.cols, { dtype: gate.dtype });
  for (let i = 0; i < gate.rows; i++) {
    for (let j = 0; j < gate.cols; j++) {
      const g = gate.data[gate.offset + i * gate.stride + j];
      m.data[i * gate.cols + j] = g * sigmoid(g) * up.data[up.offset + i * up.stride + j];
    }
  }
  return m;
}

/** The vector-Jacobian product of {@link swiglu}: ∂gate = ∂m ∘ up ∘ σ(g)(1 + g(1 − σ(g))), ∂up = ∂m ∘ silu(g). */
export function swigluBackward(gate: Matrix, up: Matrix, dm: Matrix): { dgate: Matrix; dup: Matrix } {
  const dgate = zeros(gate.rows, gate.cols, { dtype: gate.dtype });
  const dup = zeros(gate.rows, gate.cols, { dtype: gate.dtype });
  for (let i = 0; i < gate.rows; i++) {
    for (let j = 0; j < gate.cols; j++) {
      const g = gate.data[gate.offset + i * gate.stride + j];
      const u = up.data[up.offset + i * up.stride + j];
      const d = dm.data[dm.offset + i * dm.stride + j];
      const s = sigmoid(g);
      dgate.data[i * gate.cols + j] = d * u * s * (1 + g * (1 - s));
      dup.data[i * gate.cols + j] = d * g * s;
    }
  }
  return { dgate, dup };
}
