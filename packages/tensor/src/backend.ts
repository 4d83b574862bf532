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
 * The monomials x^a of a polynomial feature map as a product tree: column a is
 * `weights[a] · m[parents[a]] · x[:, variables[a]]`, where m is the unweighted monomial column and
 * column 0 is the constant (parents[0] = variables[0] = −1).
 */
export interface ProductTree {
  /** Index of each monomial's parent (−1 for the constant). */
  parents: Int32Array;
  /** The variable the parent is multiplied by (−1 for the constant). */
  variables: Int32Array;
  /** The weight each column is scaled by. */
  weights: Float64Array;
}

/**
 * The primitives the kernel-approximation and LoRA-gradient algorithms are written against; the
 * CPU implementation is {@link cpuBackend}, the gpu.js one lives in `@almora/gpu`.
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
  /** Copies (or, on the CPU, wraps) a host matrix; the host matrix must not change while in use. */
  upload(m: Matrix): T;
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
  /** diag(s)·A for a column s (rows×1). */
  scaleRows(a: T, s: T): T;
  /** A·1, a rows×1 column. */
  rowSums(a: T): T;
  /** 1ᵀ·A, a 1×cols row. */
  colSums(a: T): T;
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
  /** The lower (j ≤ i) or upper (j ≥ i) triangle of A, the rest 0. */
  triangle(a: T, keep: 'lower' | 'upper'): T;
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
  'scaleRows',
  'rowSums',
  'colSums',
  'faceSplit',
  'faceSplitReduce',
  'productFeatures',
  'productFeaturesBackward',
  'attentionProbabilities',
  'attentionScoresGradient',
  'triangle',
] as const satisfies readonly (keyof Backend)[];

/** A {@link Backend} that remembers every handle it made, so that one call releases them all. */
export interface ScopedBackend<T extends DeviceMatrix> extends Backend<T> {
  /** Disposes every handle made through this scope except those in `keep`. */
  releaseAll(keep?: readonly T[]): void;
}

/**
 * Wraps a backend so that intermediates need no bookkeeping: an algorithm makes its temporaries
 * through the scope and calls `releaseAll(results)` at the end (on a GPU every handle holds device
 * memory; on the CPU released block buffers are reused).
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
  scope.releaseAll = (keep = []) => {
    for (const handle of made.splice(0)) if (!keep.includes(handle)) backend.dispose(handle);
  };
  return scope;
}
