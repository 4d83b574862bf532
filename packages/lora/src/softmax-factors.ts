import { centeredKeys, featureTree, fused, OutOfRegimeError, type ApproximationPlan, type ProductTree } from '@almora/kernels';
import { type Backend, type DeviceMatrix, fromFlat, type Matrix, scoped } from '@almora/tensor';
import { onesColumn, readBack, type Reading } from './head.js';
import { featureFactor, lowRankApply, lowRankApplyTransposedEach, type RowFactor, stored } from './low-rank.js';

/**
 * The paper's f(x) = D⁻¹exp(β·QKᵀ), approximated as f̂ = D̂⁻¹·U₁V₁ᵀ (masked to j ≤ i when causal)
 * and kept as its factors on a backend: it is applied, never formed. The features are stored, or
 * — when {@link softmaxFactors} is asked to stream them — made block by block from Q and K̃ each
 * time a product needs them, so a head holds O(L·d) rather than O(L·k).
 */
export interface LowRankSoftmax<T extends DeviceMatrix = Matrix> {
  /** U₁ = φ_query(Q) (L_q×k). */
  u: RowFactor<T>;
  /** V₁ = φ_key(K̃) (L_k×k), K̃ the keys, centered when the plan says so. */
  v: RowFactor<T>;
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
 * centered keys are made when the plan centers them. With `streamFeatures` the features are not
 * stored but made block by block in every product (unmasked heads only: the causal products keep
 * prefix states over stored blocks).
 */
export function* softmaxFactors<T extends DeviceMatrix>(
  backend: Backend<T>,
  device: { q: T; k: T },
  hostKeys: Matrix,
  plan: ApproximationPlan,
  beta: number,
  causal: boolean,
  streamFeatures = false,
): Reading<LowRankSoftmax<T>> {
  if (!plan.polynomial) throw new OutOfRegimeError(plan.outOfRegime?.message ?? 'no polynomial degree was chosen');
  const scope = scoped(backend);
  const ownsKeys = plan.range.centered;
  const keys = ownsKeys ? backend.upload(centeredKeys(hostKeys, plan.range)) : device.k;
  const trees = { query: featureTree(device.q.cols, plan.polynomial, beta, 'query'), key: featureTree(device.k.cols, plan.polynomial, beta, 'key') };
  const streamed = streamFeatures && !causal;
  const bytes = hostKeys.dtype === 'float64' ? 8 : 4;
  const kernels = fused(backend);
  const u = streamed ? featureFactor(device.q, trees.query, bytes) : stored(kernels.productFeatures(device.q, trees.query));
  const v = streamed ? featureFactor(keys, trees.key, bytes) : stored(kernels.productFeatures(keys, trees.key));
  const inverse = new Float64Array(device.q.rows);
  try {
    const sums = yield* readBack(backend, lowRankApply(scope, u, v, onesColumn(scope, keys.rows, keys), causal), 'float64');
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
    for (const handle of storedHandles(u, v, ownsKeys ? keys : undefined)) backend.dispose(handle);
    throw error;
  } finally {
    scope.releaseAll();
  }
  const inverseRowSums = backend.upload(fromFlat(device.q.rows, 1, inverse, { dtype: hostKeys.dtype }));
  return { u, v, keys, ownsKeys, trees, inverseRowSums, causal, plan };
}

/** The handles among f̂'s parts that hold memory: stored features, and the centered keys it made. */
function storedHandles<T extends DeviceMatrix>(u: RowFactor<T>, v: RowFactor<T>, ownedKeys: T | undefined): T[] {
  return [u.whole, v.whole, ownedKeys].filter((h): h is T => h !== undefined);
}

/** Releases the device memory of f̂. */
export function disposeSoftmax<T extends DeviceMatrix>(backend: Backend<T>, f: LowRankSoftmax<T>): void {
  for (const handle of [...storedHandles(f.u, f.v, f.ownsKeys ? f.keys : undefined), f.inverseRowSums]) backend.dispose(handle);
}

/** f̂·M = D̂⁻¹·tril?(U₁V₁ᵀ)·M, in O(L·k·m). */
export function applyF<T extends DeviceMatrix>(backend: Backend<T>, f: LowRankSoftmax<T>, m: T): T {
  const unscaled = lowRankApply(backend, f.u, f.v, m, f.causal);
  const out = backend.scaleRows(unscaled, f.inverseRowSums);
  backend.dispose(unscaled);
  return out;
}

/** f̂ᵀ·M = tril?(U₁V₁ᵀ)ᵀ·D̂⁻¹·M, in O(L·k·m). */
export function applyFTransposed<T extends DeviceMatrix>(backend: Backend<T>, f: LowRankSoftmax<T>, m: T): T {
  return applyFTransposedEach(backend, f, [m])[0];
}

/** f̂ᵀ·M for several M, in one pass over f̂'s factors when unmasked (streamed features are made once for all). */
export function applyFTransposedEach<T extends DeviceMatrix>(backend: Backend<T>, f: LowRankSoftmax<T>, ms: readonly T[]): T[] {
  const scaled = ms.map((m) => backend.scaleRows(m, f.inverseRowSums));
  try {
    return lowRankApplyTransposedEach(backend, f.u, f.v, scaled, f.causal);
  } finally {
    for (const handle of scaled) backend.dispose(handle);
  }
}
