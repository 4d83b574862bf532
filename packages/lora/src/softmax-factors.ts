import {
  centeredKeys,
  featureTree,
  planSoftmaxApproximation,
  type ApproximationPlan,
  type PolynomialMethod,
} from '@almora/kernels';
import { type Backend, type DeviceMatrix, fromFlat, type Matrix, OutOfRegimeError, scoped } from '@almora/tensor';
import { onesColumn, readBack, type Reading, runNow } from './head.js';
import { lowRankApply, lowRankApplyTransposed, stored } from './low-rank.js';

/**
 * The paper's f(x) = D⁻¹exp(β·QKᵀ), approximated as f̂ = D̂⁻¹·U₁V₁ᵀ (masked to j ≤ i when causal)
 * and kept as its factors on a backend: it is applied, never formed.
 */
export interface LowRankSoftmax<T extends DeviceMatrix = Matrix> {
  /** U₁ = φ_query(Q) (L_q×k). */
  u: T;
  /** V₁ = φ_key(K̃) (L_k×k), K̃ the keys, centered when the plan says so. */
  v: T;
  /** K̃ itself. */
  keys: T;
  /** 1/D̂_i, a column. */
  inverseRowSums: T;
  /** Whether f̂ is masked to j ≤ i. */
  causal: boolean;
  /** The plan it was built from (degree, range, certified bound). */
  plan: ApproximationPlan;
}

/** Options for building {@link LowRankSoftmax}. */
export interface SoftmaxFactorOptions {
  /** Softmax temperature β. */
  beta: number;
  /** Target certified entrywise relative error of f̂. */
  epsilon: number;
  /** Polynomial family. */
  method: PolynomialMethod;
  /** A forced degree, instead of the smallest that certifies ε. */
  degree?: number;
  /** Largest degree the chooser may pick. */
  maxDegree?: number;
  /** Subtract the mean key when that shrinks the range. */
  centerKeys: boolean;
}

/** Plans the approximation of one head (degree, rank, bound, regime) in O(L·d), on the host. */
export function planHead(q: Matrix, k: Matrix, options: SoftmaxFactorOptions): ApproximationPlan {
  return planSoftmaxApproximation(q, k, {
    beta: options.beta,
    epsilon: options.epsilon,
    method: options.method,
    degree: options.degree,
    maxDegree: options.maxDegree,
    centerKeys: options.centerKeys,
  });
}

/**
 * Builds f̂ on `backend` for a plan that has a degree: features U₁, V₁ and the row sums
 * D̂ = tril?(U₁V₁ᵀ)·1, checked positive on the host. Throws {@link OutOfRegimeError} if any row sum
 * is ≤ 0 (a polynomial that goes negative on this range), since D̂⁻¹ would then be meaningless.
 * `q` and `k` are the host matrices the plan was made from.
 */
export function buildSoftmax<T extends DeviceMatrix>(
  backend: Backend<T>,
  q: Matrix,
  k: Matrix,
  plan: ApproximationPlan,
  beta: number,
  causal: boolean,
): LowRankSoftmax<T> {
  return runNow(softmaxFactors(backend, q, k, plan, beta, causal));
}

/** {@link buildSoftmax} as a {@link Reading}, for drivers of synchronous and asynchronous devices. */
export function* softmaxFactors<T extends DeviceMatrix>(
  backend: Backend<T>,
  q: Matrix,
  k: Matrix,
  plan: ApproximationPlan,
  beta: number,
  causal: boolean,
): Reading<LowRankSoftmax<T>> {
  if (!plan.polynomial) throw new OutOfRegimeError(plan.outOfRegime?.message ?? 'no polynomial degree was chosen');
  const scope = scoped(backend);
  const queries = scope.upload(q);
  const keys = backend.upload(centeredKeys(k, plan.range));
  const u = backend.productFeatures(queries, featureTree(q.cols, plan.polynomial, beta, 'query'));
  const v = backend.productFeatures(keys, featureTree(k.cols, plan.polynomial, beta, 'key'));
  const sums = yield* readBack(backend, lowRankApply(scope, stored(u), stored(v), onesColumn(scope, k.rows, keys), causal), 'float64');
  const inverse = new Float64Array(q.rows);
  for (let i = 0; i < q.rows; i++) {
    const s = sums.data[i];
    if (!(s > 0)) {
      scope.releaseAll();
      for (const handle of [keys, u, v]) backend.dispose(handle);
      throw new OutOfRegimeError(
        `row ${i} of the approximate softmax sums to ${s} ≤ 0 at degree ${plan.polynomial.degree} on R = ${plan.range.range.toPrecision(4)} (Γ = ${plan.range.gamma.toPrecision(3)}): the norms are outside the regime where this polynomial is positive; use method 'exact' or 'auto'`,
      );
    }
    inverse[i] = 1 / s;
  }
  scope.releaseAll();
  const inverseRowSums = backend.upload(fromFlat(q.rows, 1, inverse, { dtype: q.dtype }));
  return { u, v, keys, inverseRowSums, causal, plan };
}

/** Releases the device memory of f̂. */
export function disposeSoftmax<T extends DeviceMatrix>(backend: Backend<T>, f: LowRankSoftmax<T>): void {
  for (const handle of [f.u, f.v, f.keys, f.inverseRowSums]) backend.dispose(handle);
}

/** f̂·M = D̂⁻¹·tril?(U₁V₁ᵀ)·M, in O(L·k·m). */
export function applyF<T extends DeviceMatrix>(backend: Backend<T>, f: LowRankSoftmax<T>, m: T): T {
  const unscaled = lowRankApply(backend, stored(f.u), stored(f.v), m, f.causal);
  const out = backend.scaleRows(unscaled, f.inverseRowSums);
  backend.dispose(unscaled);
  return out;
}

/** f̂ᵀ·M = tril?(U₁V₁ᵀ)ᵀ·D̂⁻¹·M, in O(L·k·m). */
export function applyFTransposed<T extends DeviceMatrix>(backend: Backend<T>, f: LowRankSoftmax<T>, m: T): T {
  const scaled = backend.scaleRows(m, f.inverseRowSums);
  const out = lowRankApplyTransposed(backend, stored(f.u), stored(f.v), scaled, f.causal);
  backend.dispose(scaled);
  return out;
}
