// Random PEFT-shaped attention layers and the plain loss the layer tests differentiate.
import { type Matrix, randomNormal, type Rng, scale } from '@almora/tensor';
import { centralDifferences } from '@almora/vitest-config/finite-difference';
import type { AttentionLayer, ModuleName } from '../src/index.js';

export interface LayerShape {
  dModel: number;
  heads: number;
  headDim: number;
  r: number;
  adapted: ModuleName[];
  causal?: boolean;
  bias?: boolean;
  dtype?: 'float64' | 'float32';
}

/** A seeded random layer: torch.nn.Linear weights (out×in), nonzero lora_A and lora_B (so every gradient is). */
export function randomLayer(shape: LayerShape, rng: Rng): AttentionLayer {
  const inner = shape.heads * shape.headDim;
  const dtype = shape.dtype ?? 'float64';
  const linear = (out: number, inp: number) => scale(randomNormal(out, inp, rng, { dtype }), 1 / Math.sqrt(inp));
  const dims: Record<ModuleName, [number, number]> = {
    q_proj: [inner, shape.dModel],
    k_proj: [inner, shape.dModel],
    v_proj: [inner, shape.dModel],
    o_proj: [shape.dModel, inner],
  };
  const weights = { q_proj: linear(...dims.q_proj), k_proj: linear(...dims.k_proj), v_proj: linear(...dims.v_proj), o_proj: linear(...dims.o_proj) };
  const adapters: NonNullable<AttentionLayer['lora']>['adapters'] = {};
  for (const name of shape.adapted) {
    const [out, inp] = dims[name];
    adapters[name] = { lora_A: scale(randomNormal(shape.r, inp, rng, { dtype }), 0.3), lora_B: scale(randomNormal(out, shape.r, rng, { dtype }), 0.3) };
  }
  const row = (width: number) => scale(randomNormal(1, width, rng, { dtype }), 0.1);
  const bias = shape.bias ? { q_proj: row(inner), k_proj: row(inner), v_proj: row(inner), o_proj: row(shape.dModel) } : undefined;
  return { heads: shape.heads, causal: shape.causal, weights, bias, lora: { r: shape.r, alpha: 2 * shape.r, adapters } };
}

/** Σ out ∘ G over a matrix or a batch: a loss whose upstream gradient is G. */
export function projectedLoss(out: Matrix | Matrix[], g: Matrix | Matrix[]): number {
  const outs = Array.isArray(out) ? out : [out];
  const gs = Array.isArray(g) ? g : [g];
  let sum = 0;
  outs.forEach((o, n) => {
    for (let i = 0; i < o.rows; i++) for (let j = 0; j < o.cols; j++) sum += o.get(i, j) * gs[n].get(i, j);
  });
  return sum;
}

/** Central finite difference of f with respect to every entry of m (m is changed and restored in place). */
export function finiteDifference(m: Matrix, f: () => number, h = 1e-6): Float64Array {
  return centralDifferences(
    m,
    f,
    Array.from({ length: m.rows * m.cols }, (_, e) => e),
    h,
  );
}

/** max|analytic − numeric| / max(1, max|numeric|). */
export function gradientMismatch(analytic: Matrix, numeric: Float64Array): number {
  let num = 0;
  let den = 1;
  for (let i = 0; i < analytic.rows; i++) {
    for (let j = 0; j < analytic.cols; j++) {
      const n = numeric[i * analytic.cols + j];
      num = Math.max(num, Math.abs(analytic.get(i, j) - n));
      den = Math.max(den, Math.abs(n));
    }
  }
  return num / den;
}
