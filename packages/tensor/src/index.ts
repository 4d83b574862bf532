/**
 * Dense row-major float64/float32 matrices: fast packed matmul, Kronecker and face-splitting products, seeded RNG.
 *
 * @packageDocumentation
 * @module @almora/tensor
 */
export { AlmoraError, ShapeError, DTypeError, NonFiniteError, InvalidArgumentError, BackendError, ResourceLimitError, type AlmoraErrorCode } from './errors.js';
export { Matrix, copy, sliceRows, sliceCols, block, type DType, type FloatArray, type CreateOptions } from './matrix.js';
export { zeros, ones, full, identity, fromArray, fromFlat, toDType } from './create.js';
export { Rng, randomUniform, randomNormal, type UniformOptions, type NormalOptions } from './random.js';
export { matmul, type MatmulOptions } from './matmul.js';
export { map, addInto, add, sub, hadamard, scale, exp, abs, scaleRows, scaleCols, rowSums, colSums, maxAbs, frobeniusNorm } from './elementwise.js';
export { transpose, vec, mat, kron, faceSplit } from './products.js';
export { assertSameShape, assertShape, assertFinite } from './validate.js';
export { scoped, type Backend, type DeviceMatrix, type ScopedBackend, type TransposeForms } from './backend.js';
export { cpuCore } from './cpu-backend.js';
