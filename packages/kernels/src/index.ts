/**
 * Certified low-rank approximation of the softmax kernel exp(β·QKᵀ): polynomial features (Taylor, Chebyshev) with a computable error bound and the regime check; FAVOR+ for comparison. Also the fused kernels (attention, features, face splitting) every backend gets by default from its core primitives or overrides, and the CPU backend with its overrides.
 *
 * @packageDocumentation
 * @module @almora/kernels
 */
export {
  taylorExp,
  chebyshevExp,
  relativeErrorBound,
  relativeErrorEnclosure,
  type RelativeErrorEnclosure,
  type ExpPolynomial,
  type PolynomialMethod,
} from './polynomial.js';
export { featureRank, polynomialFeatures, polynomialFeaturesBackward, featureTree, type FeatureSide, type ProductTree } from './features.js';
export { fused, FUSED_KERNEL_NAMES, type FusedKernels } from './fused.js';
export { cpuBackend, cpuFusedKernels } from './cpu.js';
export { OutOfRegimeError } from './errors.js';
export { certifiedRange, type RangeReport } from './range.js';
export {
  certifyPolynomial,
  chooseDegree,
  certifiedError,
  type CertifiedFactor,
  DEFAULT_MAX_DEGREE,
  MAX_POLYNOMIAL_DEGREE,
  type ErrorBound,
  type DegreeChoice,
  type RoundingModel,
  UNIT_ROUNDOFFS,
  exactSoftmaxRounding,
} from './bound.js';
export {
  planSoftmaxApproximation,
  approximateSoftmaxKernel,
  applySoftmax,
  applySoftmaxTransposed,
  denseSoftmax,
  centeredKeys,
  type ApproximationOptions,
  type PolynomialChoice,
  type ApproximationPlan,
  type ApproximationResult,
  type KernelApproximation,
  type OutOfRegimeReason,
} from './approximate.js';
export { positiveRandomFeatures, type RandomFeatureOptions } from './random-features.js';
export { exactKernel, exactSoftmax, sampledSoftmaxError } from './reference.js';
