/**
 * Certified low-rank approximation of the softmax kernel exp(β·QKᵀ): polynomial features (Taylor, Chebyshev) with a computable error bound and the regime check; FAVOR+ for comparison.
 *
 * @packageDocumentation
 * @module @almora/kernels
 */
export {
  taylorExp,
  chebyshevExp,
  expPolynomial,
  evaluatePolynomial,
  relativeErrorBound,
  taylorRelativeErrorBound,
  type ExpPolynomial,
  type PolynomialMethod,
} from './polynomial.js';
export {
  featureRank,
  monomialTable,
  polynomialFeatures,
  polynomialFeaturesBackward,
  featureTree,
  type MonomialTable,
  type FeatureSide,
} from './features.js';
export { certifiedRange, checkQueryKey, type RangeReport } from './range.js';
export {
  errorBoundFromDelta,
  certifyPolynomial,
  chooseDegree,
  DEFAULT_MAX_DEGREE,
  type ErrorBound,
  type DegreeChoice,
} from './bound.js';
export {
  planSoftmaxApproximation,
  approximateSoftmaxKernel,
  applySoftmax,
  applySoftmaxTransposed,
  denseSoftmax,
  centeredKeys,
  lowRankRowSums,
  type ApproximationOptions,
  type ApproximationPlan,
  type ApproximationResult,
  type KernelApproximation,
  type OutOfRegimeReason,
} from './approximate.js';
export { positiveRandomFeatures, type RandomFeatureOptions } from './random-features.js';
export { exactKernel, exactSoftmax } from './reference.js';
