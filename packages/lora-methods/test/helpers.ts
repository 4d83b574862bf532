import type { LoraWeights } from '@almora/lora';
import { centralDifferences } from '@almora/vitest-config/finite-difference';
import { add, matmul, type Matrix, randomNormal, type Rng, scale, sub, zeros } from '@almora/tensor';
import { svd } from '../src/index.js';
import type { ModuleMethodState } from '../src/index.js';

/** A tiny least-squares problem for one module: loss ½‖X·W_effᵀ − Y‖². */
export interface Quadratic {
  x: Matrix;
  y: Matrix;
}

/** n samples for an out×in module. */
export function quadratic(n: number, out: number, inn: number, rng: Rng): Quadratic {
  return { x: randomNormal(n, inn, rng), y: randomNormal(n, out, rng) };
}

/** W + s·B·A. */
export function effective(weight: Matrix, adapter: LoraWeights, scaling: number): Matrix {
  return add(weight, scale(matmul(adapter.lora_B, adapter.lora_A), scaling));
}

/** ½‖X·W_effᵀ − Y‖². */
export function loss(problem: Quadratic, weightEff: Matrix): number {
  const r = sub(matmul(problem.x, weightEff, { transposeB: true }), problem.y);
  let s = 0;
  for (let i = 0; i < r.rows; i++) for (const v of r.row(i)) s += v * v;
  return s / 2;
}

/** ∂loss/∂W_eff = (X·W_effᵀ − Y)ᵀ·X (out×in). */
export function lossGradient(problem: Quadratic, weightEff: Matrix): Matrix {
  const r = sub(matmul(problem.x, weightEff, { transposeB: true }), problem.y);
  return matmul(r, problem.x, { transposeA: true });
}

/** The LoRA chain rule from ∂W: ∂lora_A = s·Bᵀ·∂W, ∂lora_B = s·∂W·Aᵀ (what the model's backward returns). */
export function adapterGradients(weightGradient: Matrix, adapter: LoraWeights, scaling: number): LoraWeights {
  return {
    lora_A: scale(matmul(adapter.lora_B, weightGradient, { transposeA: true }), scaling),
    lora_B: scale(matmul(weightGradient, adapter.lora_A, { transposeB: true }), scaling),
  };
}

/** The method's gradients at its current parameters, from ∂W as the model would give it. */
export function methodGradients(state: ModuleMethodState, weight: Matrix, problem: Quadratic): Matrix[] {
  const adapter = state.adapter();
  const g = lossGradient(problem, effective(weight, adapter, state.scaling));
  return state.gradients(adapterGradients(g, adapter, state.scaling), g);
}

/** Central differences of the loss with respect to every entry of every parameter. */
export function finiteDifferenceGradients(state: ModuleMethodState, weight: Matrix, problem: Quadratic, h = 1e-6): Float64Array[] {
  const f = () => loss(problem, effective(weight, state.adapter(), state.scaling));
  return state.parameters.map((p) => centralDifferences(p, f, [...Array(p.size).keys()], h));
}

/** max |a − b| / max(1, max |b|) over flattened entries. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 1;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/** An m×k matrix with orthonormal columns, from a Gaussian one by modified Gram–Schmidt (twice). */
export function orthonormal(m: number, k: number, rng: Rng): Matrix {
  const g = randomNormal(m, k, rng);
  const q = zeros(m, k);
  for (let j = 0; j < k; j++) {
    const v = Array.from({ length: m }, (_, i) => g.get(i, j));
    for (let pass = 0; pass < 2; pass++) {
      for (let t = 0; t < j; t++) {
        let p = 0;
        for (let i = 0; i < m; i++) p += q.get(i, t) * v[i];
        for (let i = 0; i < m; i++) v[i] -= p * q.get(i, t);
      }
    }
    const norm = Math.hypot(...v);
    for (let i = 0; i < m; i++) q.set(i, j, v[i] / norm);
  }
  return q;
}

/** U·diag(s)·Vᵀ with random orthonormal U (m×k), V (n×k): a matrix with exactly the singular values s. */
export function withSingularValues(m: number, n: number, s: readonly number[], rng: Rng): Matrix {
  const u = orthonormal(m, s.length, rng);
  const v = orthonormal(n, s.length, rng);
  const us = zeros(m, s.length);
  for (let i = 0; i < m; i++) for (let j = 0; j < s.length; j++) us.set(i, j, u.get(i, j) * s[j]);
  return matmul(us, v, { transposeB: true });
}

/** Cosines of the principal angles between the column spaces of a and b (any bases): 1 means the angle is 0. */
export function principalCosines(a: Matrix, b: Matrix): number[] {
  const qa = svd(a).U;
  const qb = svd(b).U;
  return Array.from(svd(matmul(qa, qb, { transposeA: true })).S);
}

/** Numerical rank: singular values above tol·σ₁. */
export function numericalRank(m: Matrix, tol = 1e-10): number {
  const { S } = svd(m);
  return S.filter((s) => s > tol * (S[0] ?? 0)).length;
}

/** ⟨x, y⟩ = Σ xᵢⱼ·yᵢⱼ. */
export function inner(x: Matrix, y: Matrix): number {
  let s = 0;
  for (let i = 0; i < x.rows; i++) for (let j = 0; j < x.cols; j++) s += x.get(i, j) * y.get(i, j);
  return s;
}
