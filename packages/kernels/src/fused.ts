import type { Backend, DeviceMatrix, ScopedBackend } from '@almora/tensor';
import { composedKernels } from './composed.js';
import type { ProductTree } from './features.js';

/**
 * The fused kernels almora's algorithms use beyond a backend's core primitives: the face-splitting
 * product and its reduction, polynomial product-tree features and their backward, attention
 * probabilities and their gradient. Each has a default composed from the core (`Backend` of
 * @almora/tensor), so a backend that implements only the core is correct everywhere; a backend
 * overrides one by having a method of the same name (as tfjs-core registers a kernel for a
 * backend), where a single kernel pays: the CPU's live in {@link cpuBackend}, gpu.js's and
 * WebAssembly's in their backend classes. Reach them only through {@link fused}.
 */
export interface FusedKernels<T extends DeviceMatrix = DeviceMatrix> {
  /** A ⊘ B, the row-wise Kronecker (face-splitting) product: row i is A_i ⊗ B_i. */
  faceSplit(a: T, b: T): T;
  /**
   * The contraction that undoes a face split against weights: for W (L×d) and blocks (L×(d·n)),
   * out_ij = Σ_l W_il·blocks_i,(l·n+j), L×n.
   */
  faceSplitReduce(weights: T, blocks: T): T;
  /** Polynomial features of the rows of X from a {@link ProductTree}: L×(number of monomials). */
  productFeatures(x: T, tree: ProductTree): T;
  /** ∂ℓ/∂X given ∂ℓ/∂Φ for Φ = productFeatures(X, tree): the vector-Jacobian product, L×d. */
  productFeaturesBackward(x: T, tree: ProductTree, featureGradient: T): T;
  /**
   * The attention probabilities P = softmax(β·Q·Kᵀ) row by row, with the row maximum subtracted so
   * exp cannot overflow. With `causalStart` = s, row r keeps only keys j ≤ s + r (the rest are 0).
   */
  attentionProbabilities(queries: T, keys: T, beta: number, causalStart?: number): T;
  /**
   * The gradient through the softmax of attention, P ∘ (C·Vᵀ − r·1ᵀ), for ∂loss/∂O = C and
   * r_i = ⟨C_i, O_i⟩ as a column: ∂loss/∂(β·S) when O = P·V.
   */
  attentionScoresGradient(probabilities: T, outputGradient: T, values: T, rowDots: T): T;
}

/** The names of the {@link FusedKernels}: what a backend may override. */
export const FUSED_KERNEL_NAMES = [
  'faceSplit',
  'faceSplitReduce',
  'productFeatures',
  'productFeaturesBackward',
  'attentionProbabilities',
  'attentionScoresGradient',
] as const satisfies readonly (keyof FusedKernels)[];

/**
 * The one dispatch point of the fused kernels: for each of {@link FusedKernels}, `backend`'s own
 * method of that name where it has one (its override), else the default composed from its core
 * primitives. Through a `scoped` backend every handle made is recorded — an override's result by
 * the scope's `track`, a default's by the core primitives it runs on — so `releaseAll` frees them.
 */
export function fused<T extends DeviceMatrix>(backend: Backend<T>): FusedKernels<T> {
  const overrides = backend as Backend<T> & Partial<FusedKernels<T>>;
  const scope = backend as Partial<ScopedBackend<T>>;
  const track = typeof scope.track === 'function' ? (handle: T) => scope.track!(handle) : (handle: T) => handle;
  const defaults = composedKernels(backend);
  const kernels: Partial<Record<keyof FusedKernels, unknown>> = {};
  for (const name of FUSED_KERNEL_NAMES) {
    const override = overrides[name] as ((...args: unknown[]) => T) | undefined;
    kernels[name] = typeof override === 'function' ? (...args: unknown[]) => track(override.apply(backend, args)) : defaults[name];
  }
  return kernels as FusedKernels<T>;
}
