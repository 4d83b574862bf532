import type { DType, Matrix } from './matrix.js';

/** A matrix held by a {@link Backend}: only its shape is visible to the caller. */
export interface DeviceMatrix {
  /** Number of rows. */
  readonly rows: number;
  /** Number of columns. */
  readonly cols: number;
}

/** Which operands {@link Backend.matmul} reads transposed. */
export interface TransposeForms {
  /** Use Aᵀ in place of A. */
  transposeA?: boolean;
  /** Use Bᵀ in place of B. */
  transposeB?: boolean;
}

/**
 * The small core of primitives every backend implements — tinygrad's "a couple dozen ops", and
 * tfjs-core's kernels before any fused override: upload/read/dispose, row slices, matmul in its
 * four transpose forms, elementwise arithmetic (add, sub, hadamard, affine, abs, exp, reciprocal),
 * row and column reductions (rowSums, colSums, rowMax), scaleRows, triangle and accumulate. The
 * CPU implementation is {@link cpuCore}; gpu.js and WebAssembly ones live in `@almora/gpu` and
 * `@almora/wasm`. Fused kernels (the algorithms' attention and feature kernels) are not part of it:
 * a package that needs one declares it with a default composed from these primitives, and a
 * backend overrides it only where that pays (see `fused` in `@almora/kernels`).
 *
 * Every primitive returns a fresh matrix and leaves its operands unchanged, except
 * {@link Backend.accumulate}, which adds into its target. Handles are released with
 * {@link Backend.dispose}; reading a result gives a host {@link Matrix} the caller owns.
 *
 * Asynchronous devices: primitives only enqueue work and return a handle at once (as WebGPU's
 * command queue and gpu.js's pipeline mode both allow), so an algorithm never waits between steps;
 * only reading back may be asynchronous. {@link Backend.read} is the portable read; backends that
 * can also read synchronously (the CPU, gpu.js in its cpu, webasm and WebGL modes) provide
 * {@link Backend.readSync}, which the synchronous entry points use, and at no cost on the CPU.
 * Algorithms are written once as generators that yield their read-backs; `loraGradients` answers
 * them at once, `loraGradientsAsync` awaits them (gpu.js's WebGPU mode).
 */
export interface Backend<T extends DeviceMatrix = DeviceMatrix> {
  /** e.g. 'cpu' or 'gpu.js webgl2'. */
  readonly name: string;
  /** Precision of the arithmetic: 'input' computes in the dtype of the uploaded matrices. */
  readonly precision: DType | 'input';
  /**
   * Copies (or, on the CPU, wraps) a host matrix; the host matrix must not change while in use.
   * With `like`, the copy is in the precision of `like` (how a default composition uploads a
   * selection matrix to multiply a handle by); without it, in the host matrix's dtype.
   */
  upload(m: Matrix, like?: T): T;
  /** A rows×cols matrix of zeros, in the precision of `like`. */
  zeros(rows: number, cols: number, like: T): T;
  /** Reads a matrix back to the host. */
  read(m: T): Promise<Matrix>;
  /** Reads a matrix back synchronously, where the device can. */
  readSync?(m: T): Matrix;
  /** Releases a handle; using it afterwards is an error, releasing it again is harmless. */
  dispose(m: T): void;
  /** Rows [start, end) of m. */
  sliceRows(m: T, start: number, end: number): T;
  /** op(A)·op(B) in any of the four transpose forms. */
  matmul(a: T, b: T, forms?: TransposeForms): T;
  /** A + B. */
  add(a: T, b: T): T;
  /** A − B. */
  sub(a: T, b: T): T;
  /** A ∘ B. */
  hadamard(a: T, b: T): T;
  /** factor·A + shift, entrywise. */
  affine(a: T, factor: number, shift?: number): T;
  /** |A|, entrywise. */
  abs(a: T): T;
  /** exp(A), entrywise; an overflow gives +Infinity (subtract a row maximum first, as a softmax does). */
  exp(a: T): T;
  /** 1/A, entrywise (±Infinity for a zero). */
  reciprocal(a: T): T;
  /** diag(s)·A for a column s (rows×1). */
  scaleRows(a: T, s: T): T;
  /** A·1, a rows×1 column. */
  rowSums(a: T): T;
  /** 1ᵀ·A, a 1×cols row. */
  colSums(a: T): T;
  /** max_j A_ij, a rows×1 column (−Infinity for a row of no columns). */
  rowMax(a: T): T;
  /**
   * The lower (j ≤ i + offset) or upper (j ≥ i + offset) triangle of A, the rest 0; `offset`
   * (an integer, default 0) moves the diagonal right, so 'upper' with offset s + 1 keeps exactly
   * the entries a causal mask starting at s hides.
   */
  triangle(a: T, keep: 'lower' | 'upper', offset?: number): T;
  /** target[rowOffset + i, j] += source[i, j], in place. */
  accumulate(target: T, source: T, rowOffset?: number): void;
}

/** The primitives that return a new handle: what {@link scoped} records. */
const PRODUCERS = [
  'upload',
  'zeros',
  'sliceRows',
  'matmul',
  'add',
  'sub',
  'hadamard',
  'affine',
  'abs',
  'exp',
  'reciprocal',
  'scaleRows',
  'rowSums',
  'colSums',
  'rowMax',
  'triangle',
] as const satisfies readonly (keyof Backend)[];

/** A {@link Backend} that remembers every handle it made, so that one call releases them all. */
export interface ScopedBackend<T extends DeviceMatrix> extends Backend<T> {
  /** Disposes every handle made through this scope except those in `keep`. */
  releaseAll(keep?: readonly T[]): void;
  /**
   * Records a handle made outside the core primitives — by a backend's fused kernel — so that
   * {@link ScopedBackend.releaseAll} releases it too; returns it. `fused` in `@almora/kernels`
   * calls it for every override's result, so scoped code never calls it itself.
   */
  track(handle: T): T;
}

/**
 * Wraps a backend so that intermediates need no bookkeeping: an algorithm makes its temporaries
 * through the scope and calls `releaseAll(results)` at the end (on a GPU every handle holds device
 * memory; on the CPU released block buffers are reused). Every core primitive that returns a
 * handle is recorded; so is every handle passed to `track`. A handle released early and then
 * again by `releaseAll` is harmless: releasing twice is allowed.
 */
export function scoped<T extends DeviceMatrix>(backend: Backend<T>): ScopedBackend<T> {
  const made: T[] = [];
  const scope = Object.create(backend) as ScopedBackend<T>;
  for (const name of PRODUCERS) {
    const primitive = backend[name] as (...args: unknown[]) => T;
    (scope as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      const result = primitive.apply(backend, args);
      made.push(result);
      return result;
    };
  }
  scope.track = (handle) => {
    made.push(handle);
    return handle;
  };
  scope.releaseAll = (keep = []) => {
    for (const handle of made.splice(0)) if (!keep.includes(handle)) backend.dispose(handle);
  };
  return scope;
}
