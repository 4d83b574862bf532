/**
 * What kind of bad input an {@link AlmoraError} reports; stable, so callers can branch on it.
 * 'OUT_OF_REGIME' is the code of `OutOfRegimeError` in `@almora/kernels`.
 */
export type AlmoraErrorCode = 'SHAPE' | 'DTYPE' | 'NON_FINITE' | 'INVALID_ARGUMENT' | 'OUT_OF_REGIME' | 'BACKEND' | 'RESOURCE_LIMIT';

/** Base class of every error almora throws on bad input. `code` says which kind it is. */
export class AlmoraError extends Error {
  /** Machine-readable kind of the error. */
  readonly code: AlmoraErrorCode;
  constructor(code: AlmoraErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Two operands (or an operand and an expected shape) do not fit; the message names both shapes. */
export class ShapeError extends AlmoraError {
  constructor(message: string) {
    super('SHAPE', message);
  }
}

/** Operands of different dtypes (float32 vs float64) were mixed, or a dtype is not supported. */
export class DTypeError extends AlmoraError {
  constructor(message: string) {
    super('DTYPE', message);
  }
}

/** A NaN or ±Infinity appeared where the operation cannot accept one (input, or an overflowing result). */
export class NonFiniteError extends AlmoraError {
  constructor(message: string) {
    super('NON_FINITE', message);
  }
}

/** An argument is out of its domain: a negative or non-integer size, ε ≤ 0, an unknown option. */
export class InvalidArgumentError extends AlmoraError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/**
 * A compute backend cannot do what was asked: no GPU mode is available, a matrix exceeds the
 * device's limits, or a synchronous read was asked of a device that only reads back asynchronously.
 */
export class BackendError extends AlmoraError {
  constructor(message: string) {
    super('BACKEND', message);
  }
}

/**
 * A call would need more memory than its limit allows. It is refused before anything is allocated,
 * with the estimate and the limit in the message and as fields, so the caller can raise the limit,
 * shrink the problem, or pick a cheaper path.
 */
export class ResourceLimitError extends AlmoraError {
  /** Estimated peak bytes the call would hold beyond its inputs and outputs. */
  readonly estimatedBytes: number;
  /** The limit it was checked against, in bytes. */
  readonly limitBytes: number;
  constructor(message: string, estimatedBytes: number, limitBytes: number) {
    super('RESOURCE_LIMIT', message);
    this.estimatedBytes = estimatedBytes;
    this.limitBytes = limitBytes;
  }
}
