import { centeredKeys, featureTree, type ApproximationPlan } from '@almora/kernels';
import { type Backend, type DeviceMatrix, fromFlat, type Matrix, OutOfRegimeError, type ProductTree, scoped } from '@almora/tensor';
import { onesColumn, readBack, type Reading } from './head.js';
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
  /** Whether `keys` was made for f̂ (centered) and is released with it, rather than being K's handle. */
  ownsKeys: boolean;
  /** The feature maps' product trees, built once per head. */
  trees: { query: ProductTree; key: ProductTree };
  /** 1/D̂_i, a column. */
  inverseRowSums: T;
  /** Whether f̂ is masked to j ≤ i. */
  causal: boolean;
  /** The plan it was built from (degree, range, certified bound). */
  plan: ApproximationPlan;
}

/**
 * Builds f̂ on `backend` for a plan that has a degree: features U₁ = φ(Q), V₁ = φ(K̃) and the row
 * sums D̂ = tril?(U₁V₁ᵀ)·1, checked positive on the host. Throws {@link OutOfRegimeError} if any row
 * sum is ≤ 0 (a polynomial that goes negative on this range), since D̂⁻¹ would then be meaningless.
 * `device` holds Q and K already on the backend; `hostKeys` is K on the host, from which the
 * centered keys are made when the plan centers them.
 */
export function* softmaxFactors<T extends DeviceMatrix>(
  backend: Backend<T>,
  device: { q: T; k: T },
  hostKeys: Matrix,
  plan: ApproximationPlan,
  beta: number,
  causal: boolean,
): Reading<LowRankSoftmax<T>> {
  if (!plan.polynomial) throw new OutOfRegimeError(plan.outOfRegime?.message ?? 'no polynomial degree was chosen');
  const scope = scoped(backend);
  const ownsKeys = plan.range.centered;
  const keys = ownsKeys ? backend.upload(centeredKeys(hostKeys, plan.range)) : device.k;
  const trees = { query: featureTree(device.q.cols, plan.polynomial, beta, 'query'), key: featureTree(device.k.cols, plan.polynomial, beta, 'key') };
  const u = backend.productFeatures(device.q, trees.query);
  const v = backend.productFeatures(keys, trees.key);
  const inverse = new Float64Array(device.q.rows);
  try {
    const sums = yield* readBack(backend, lowRankApply(scope, stored(u), stored(v), onesColumn(scope, keys.rows, keys), causal), 'float64');
    for (let i = 0; i < device.q.rows; i++) {
      const s = sums.data[i];
      if (!(s > 0)) {
        throw new OutOfRegimeError(
          `row ${i} of the approximate softmax sums to ${s} ≤ 0 at degree ${plan.polynomial.degree} on R = ${plan.range.range.toPrecision(4)} (Γ = ${plan.range.gamma.toPrecision(3)}): the norms are outside the regime where this polynomial is positive; use method 'exact' or 'auto'`,
        );
      }
      inverse[i] = 1 / s;
    }
  } catch (error) {
    for (const handle of ownsKeys ? [keys, u, v] : [u, v]) backend.dispose(handle);
    throw error;
  } finally {
    scope.releaseAll();
  }
  const inverseRowSums = backend.upload(fromFlat(device.q.rows, 1, inverse, { dtype: hostKeys.dtype }));
  return { u, v, keys, ownsKeys, trees, inverseRowSums, causal, plan };
}

/** Releases the device memory of f̂. */
export function disposeSoftmax<T extends DeviceMatrix>(backend: Backend<T>, f: LowRankSoftmax<T>): void {
  for (const handle of [f.u, f.v, f.inverseRowSums]) backend.dispose(handle);
  if (f.ownsKeys) backend.dispose(f.keys);
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
