import type { FusedKernels, ProductTree } from '@almora/kernels';
import {
  type Backend,
  BackendError,
  type DeviceMatrix,
  DTypeError,
  type DType,
  fromFlat,
  type Matrix,
  ShapeError,
  toDType,
  type TransposeForms,
} from '@almora/tensor';
import type { Heap } from './heap.js';
import type { KERNEL_NAMES, KernelExports, KernelFamily } from './kernels.js';
import type { ThreadPool } from './threads.js';

/** A matrix in the kernels' memory: row-major, contiguous, at `pointer`. */
export interface WasmMatrix extends DeviceMatrix {
  /** Rows. */
  readonly rows: number;
  /** Columns. */
  readonly cols: number;
  /** float64 or float32: the kernels run in it. */
  readonly dtype: DType;
  /** Byte offset in the kernels' memory. */
  readonly pointer: number;
  /** Whether this handle owns its block (a row slice is a view into its parent's). */
  readonly owner: boolean;
  /** Rows of the block this handle lies in (its own rows for an owner; the parent's for a slice). */
  readonly blockRows: number;
  /** Byte offset of that block. */
  readonly block: number;
  /** False once disposed. */
  live: boolean;
}

/** Work below this many multiply-adds runs on the calling thread: waking the workers costs more. */
const PARALLEL_WORK = 1 << 15;

const bytesOf = (dtype: DType) => (dtype === 'float64' ? 8 : 4);

/** The op codes of the `map` kernel (AFFINE, ABS, EXP, RECIPROCAL in assembly/index.ts). */
const MAP_OPS = { affine: 0, abs: 1, exp: 2, reciprocal: 3 } as const;

/**
 * The WebAssembly {@link Backend}: every primitive a SIMD kernel (f64x2 or f32x4, in the dtype of
 * the uploaded matrices), split by rows over the pool's threads when the work is large enough.
 * Handles live in the kernels' linear memory; reads copy out. Every fused kernel of
 * `@almora/kernels` is overridden by one kernel here (reached through `fused(backend)`).
 */
export class WasmBackend implements Backend<WasmMatrix>, FusedKernels<WasmMatrix> {
  readonly precision = 'input' as const;
  /**
   * Transposes of whole blocks made for kernels that read a matrix by columns (keys and values in
   * attention), by block address: the exact path passes K and V, or a slice of all their rows, for
   * every block of queries. An entry goes when its block is released, or when `accumulate` writes
   * into it — the only way memory changes under a handle.
   */
  private readonly transposes = new Map<number, WasmMatrix>();

  private constructor(
    readonly name: string,
    private readonly heap: Heap,
    private readonly exports: KernelExports,
    private readonly pool: ThreadPool | undefined,
  ) {}

  /** @internal What `createWasmBackend` calls once it has compiled the kernels and started the threads: the one way to make one. */
  static over(name: string, heap: Heap, exports: KernelExports, pool: ThreadPool | undefined): WasmBackend {
    return new WasmBackend(name, heap, exports, pool);
  }

  /** Threads the kernels run on, the calling one included. */
  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  /** Bytes of the kernels' memory: it grows as matrices need it and is reused as they are released. */
  get memoryBytes(): number {
    return this.heap.memory.buffer.byteLength;
  }

  /** Stops the worker threads; the backend must not be used afterwards. */
  close(): void {
    this.pool?.terminate();
  }

  private make(rows: number, cols: number, dtype: DType): WasmMatrix {
    const pointer = this.heap.allocate(rows * cols * bytesOf(dtype));
    return { rows, cols, dtype, pointer, owner: true, blockRows: rows, block: pointer, live: true };
  }

  private check(...handles: WasmMatrix[]): DType {
    for (const h of handles) if (!h.live) throw new BackendError('a wasm matrix was used after dispose');
    const dtype = handles[0].dtype;
    for (const h of handles) if (h.dtype !== dtype) throw new DTypeError(`wasm backend: operands mix ${dtype} and ${h.dtype}`);
    return dtype;
  }

  private view(m: WasmMatrix): Float64Array | Float32Array {
    const count = m.rows * m.cols;
    return m.dtype === 'float64' ? this.heap.f64(m.pointer, count) : this.heap.f32(m.pointer, count);
  }

  /** Runs a kernel of `family` in `dtype` over [0, count), on the pool when `work` (multiply-adds) is worth it. */
  private run(family: KernelFamily, dtype: DType, args: number[], count: number, work: number, scratch?: { arg: number; stride: number }): void {
    const kernel = `${family}${dtype === 'float64' ? 'F64' : 'F32'}` as (typeof KERNEL_NAMES)[number];
    const parts = this.pool ? Math.max(1, Math.min(this.pool.threads, count, Math.floor(work / PARALLEL_WORK))) : 1;
    if (parts > 1 && this.pool) return this.pool.run(kernel, args, count, parts, scratch);
    try {
      this.exports[kernel](...args, 0, count);
    } catch (error) {
      throw new BackendError(`wasm kernel ${kernel} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  upload(m: Matrix, like?: WasmMatrix): WasmMatrix {
    const host = like === undefined || like.dtype === m.dtype ? m : toDType(m, like.dtype);
    const out = this.make(host.rows, host.cols, host.dtype);
    this.view(out).set(host.toFlat());
    return out;
  }

  zeros(rows: number, cols: number, like: WasmMatrix): WasmMatrix {
    const out = this.make(rows, cols, like.dtype);
    this.view(out).fill(0);
    return out;
  }

  readSync(m: WasmMatrix): Matrix {
    this.check(m);
    return fromFlat(m.rows, m.cols, this.view(m).slice(), { dtype: m.dtype });
  }

  read(m: WasmMatrix): Promise<Matrix> {
    return Promise.resolve(this.readSync(m));
  }

  dispose(m: WasmMatrix): void {
    if (m.live && m.owner) {
      this.forgetTranspose(m.block);
      this.heap.release(m.pointer, m.rows * m.cols * bytesOf(m.dtype));
    }
    m.live = false;
  }

  private forgetTranspose(block: number): void {
    const cached = this.transposes.get(block);
    if (!cached) return;
    this.transposes.delete(block);
    this.dispose(cached);
  }

  /** mᵀ: kept by block while the block lives when m is all of its block's rows (see `transposes`), else made afresh (the caller disposes it then). */
  private transposeOf(m: WasmMatrix): { transposed: WasmMatrix; cached: boolean } {
    if (m.pointer !== m.block || m.rows !== m.blockRows) return { transposed: this.transposed(m), cached: false };
    let cached = this.transposes.get(m.block);
    if (!cached) {
      cached = this.transposed(m);
      this.transposes.set(m.block, cached);
    }
    return { transposed: cached, cached: true };
  }

  sliceRows(m: WasmMatrix, start: number, end: number): WasmMatrix {
    this.check(m);
    if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= m.rows))
      throw new ShapeError(`sliceRows: rows [${start}, ${end}) of a ${m.rows}×${m.cols} matrix`);
    return {
      rows: end - start,
      cols: m.cols,
      dtype: m.dtype,
      pointer: m.pointer + start * m.cols * bytesOf(m.dtype),
      owner: false,
      blockRows: m.blockRows,
      block: m.block,
      live: true,
    };
  }

  private transposed(m: WasmMatrix): WasmMatrix {
    const out = this.make(m.cols, m.rows, m.dtype);
    this.run('transpose', m.dtype, [m.pointer, out.pointer, m.rows, m.cols], m.rows, m.rows * m.cols);
    return out;
  }

  /**
   * Runs a matmul kernel over `rows` rows of C (n columns, inner dimension k) with scratch appended
   * to `args`: every thread packs panels of B into its own (assembly/matmul.ts sizes it).
   */
  private runMatmul(family: 'matmul' | 'matmulTN', dtype: DType, args: number[], rows: number, n: number, k: number): void {
    const stride = (this.exports as unknown as { matmulScratchBytes(size: number, n: number, k: number): number }).matmulScratchBytes(bytesOf(dtype), n, k);
    const scratch = this.heap.allocate(stride * this.threads);
    try {
      this.run(family, dtype, [...args, scratch], rows, rows * n * k, { arg: args.length, stride });
    } finally {
      this.heap.release(scratch, stride * this.threads);
    }
  }

  matmul(a: WasmMatrix, b: WasmMatrix, forms: TransposeForms = {}): WasmMatrix {
    const dtype = this.check(a, b);
    // Aᵀ·B reads A by columns in place (its rows are the long side: probabilities, features), four at a time.
    if (forms.transposeA && !forms.transposeB) {
      if (a.rows !== b.rows) throw new ShapeError(`matmul: op(A) is ${a.cols}×${a.rows} and op(B) is ${b.rows}×${b.cols}`);
      const out = this.make(a.cols, b.cols, dtype);
      this.runMatmul('matmulTN', dtype, [a.pointer, b.pointer, out.pointer, a.cols, b.cols, a.rows], a.cols, b.cols, a.rows);
      return out;
    }
    // A·Bᵀ with a tall B is Q·Kᵀ-like: the same B comes back block after block.
    const right = forms.transposeB
      ? b.rows > b.cols
        ? this.transposeOf(b)
        : { transposed: this.transposed(b), cached: false }
      : { transposed: b, cached: true };
    try {
      const left = forms.transposeA ? this.transposed(a) : a;
      try {
        const r = right.transposed;
        if (left.cols !== r.rows) throw new ShapeError(`matmul: op(A) is ${left.rows}×${left.cols} and op(B) is ${r.rows}×${r.cols}`);
        const out = this.make(left.rows, r.cols, dtype);
        this.runMatmul('matmul', dtype, [left.pointer, r.pointer, out.pointer, r.cols, left.cols], left.rows, r.cols, left.cols);
        return out;
      } finally {
        if (left !== a) this.dispose(left);
      }
    } finally {
      if (!right.cached) this.dispose(right.transposed);
    }
  }

  private zip(a: WasmMatrix, b: WasmMatrix, op: number, name: string): WasmMatrix {
    const dtype = this.check(a, b);
    if (a.rows !== b.rows || a.cols !== b.cols) throw new ShapeError(`${name}: ${a.rows}×${a.cols} and ${b.rows}×${b.cols} differ`);
    const out = this.make(a.rows, a.cols, dtype);
    const count = a.rows * a.cols;
    this.run('zip', dtype, [a.pointer, b.pointer, out.pointer, op], count, count);
    return out;
  }

  add(a: WasmMatrix, b: WasmMatrix): WasmMatrix {
    return this.zip(a, b, 0, 'add');
  }

  sub(a: WasmMatrix, b: WasmMatrix): WasmMatrix {
    return this.zip(a, b, 1, 'sub');
  }

  hadamard(a: WasmMatrix, b: WasmMatrix): WasmMatrix {
    return this.zip(a, b, 2, 'hadamard');
  }

  /** The entrywise kernel `map` with its op code (assembly/index.ts: 0 affine, 1 abs then affine, 2 exp, 3 reciprocal). */
  private map(a: WasmMatrix, op: 'affine' | 'abs' | 'exp' | 'reciprocal', factor = 1, shift = 0): WasmMatrix {
    const dtype = this.check(a);
    const out = this.make(a.rows, a.cols, dtype);
    const count = a.rows * a.cols;
    this.run('map', dtype, [a.pointer, out.pointer, factor, shift, MAP_OPS[op]], count, op === 'exp' ? 16 * count : count);
    return out;
  }

  affine(a: WasmMatrix, factor: number, shift = 0): WasmMatrix {
    return this.map(a, 'affine', factor, shift);
  }

  abs(a: WasmMatrix): WasmMatrix {
    return this.map(a, 'abs');
  }

  exp(a: WasmMatrix): WasmMatrix {
    return this.map(a, 'exp');
  }

  reciprocal(a: WasmMatrix): WasmMatrix {
    return this.map(a, 'reciprocal');
  }

  private column(s: WasmMatrix, rows: number, name: string): void {
    if (s.rows !== rows || s.cols !== 1) throw new ShapeError(`${name}: expected a ${rows}×1 column, got ${s.rows}×${s.cols}`);
  }

  scaleRows(a: WasmMatrix, s: WasmMatrix): WasmMatrix {
    const dtype = this.check(a, s);
    this.column(s, a.rows, 'scaleRows');
    const out = this.make(a.rows, a.cols, dtype);
    this.run('scaleRows', dtype, [a.pointer, s.pointer, out.pointer, a.cols], a.rows, a.rows * a.cols);
    return out;
  }

  rowSums(a: WasmMatrix): WasmMatrix {
    const dtype = this.check(a);
    const out = this.make(a.rows, 1, dtype);
    this.run('rowSums', dtype, [a.pointer, out.pointer, a.cols], a.rows, a.rows * a.cols);
    return out;
  }

  rowMax(a: WasmMatrix): WasmMatrix {
    const dtype = this.check(a);
    const out = this.make(a.rows, 1, dtype);
    this.run('rowMax', dtype, [a.pointer, out.pointer, a.cols], a.rows, a.rows * a.cols);
    return out;
  }

  colSums(a: WasmMatrix): WasmMatrix {
    const dtype = this.check(a);
    const out = this.zeros(1, a.cols, a);
    // One thread: every row adds into the same output, in row order.
    this.exports[dtype === 'float64' ? 'colSumsF64' : 'colSumsF32'](a.pointer, out.pointer, a.cols, 0, a.rows);
    return out;
  }

  faceSplit(a: WasmMatrix, b: WasmMatrix): WasmMatrix {
    const dtype = this.check(a, b);
    if (a.rows !== b.rows) throw new ShapeError(`faceSplit: ${a.rows} and ${b.rows} rows differ`);
    const out = this.make(a.rows, a.cols * b.cols, dtype);
    this.run('faceSplit', dtype, [a.pointer, b.pointer, out.pointer, a.cols, b.cols], a.rows, a.rows * a.cols * b.cols);
    return out;
  }

  faceSplitReduce(weights: WasmMatrix, blocks: WasmMatrix): WasmMatrix {
    const dtype = this.check(weights, blocks);
    const d = weights.cols;
    if (blocks.rows !== weights.rows || blocks.cols % Math.max(d, 1) !== 0) {
      throw new ShapeError(
        `faceSplitReduce: weights are ${weights.rows}×${d} and blocks ${blocks.rows}×${blocks.cols}; blocks need the same rows and a multiple of ${d} columns`,
      );
    }
    const n = d === 0 ? 0 : blocks.cols / d;
    const out = this.make(weights.rows, n, dtype);
    this.run('faceSplitReduce', dtype, [weights.pointer, blocks.pointer, out.pointer, d, n], weights.rows, weights.rows * blocks.cols);
    return out;
  }

  /**
   * Runs `body` with the tree's arrays copied into the kernels' memory (O(k), next to the O(L·k)
   * kernel) and released after: trees are made per call, so keeping them would leak.
   */
  private withTree<R>(tree: ProductTree, body: (t: { parents: number; variables: number; weights: number; size: number }) => R): R {
    const size = tree.parents.length;
    const placed = { parents: this.heap.allocate(4 * size), variables: this.heap.allocate(4 * size), weights: this.heap.allocate(8 * size), size };
    try {
      this.heap.i32(placed.parents, size).set(tree.parents);
      this.heap.i32(placed.variables, size).set(tree.variables);
      this.heap.f64(placed.weights, size).set(tree.weights);
      return body(placed);
    } finally {
      this.heap.release(placed.parents, 4 * size);
      this.heap.release(placed.variables, 4 * size);
      this.heap.release(placed.weights, 8 * size);
    }
  }

  productFeatures(x: WasmMatrix, tree: ProductTree): WasmMatrix {
    const dtype = this.check(x);
    return this.withTree(tree, (t) => {
      const out = this.make(x.rows, t.size, dtype);
      const stride = 8 * t.size;
      const scratch = this.heap.allocate(stride * this.threads);
      try {
        this.run('productFeatures', dtype, [x.pointer, t.parents, t.variables, t.weights, out.pointer, x.cols, t.size, scratch], x.rows, x.rows * t.size, {
          arg: 7,
          stride,
        });
      } finally {
        this.heap.release(scratch, stride * this.threads);
      }
      return out;
    });
  }

  productFeaturesBackward(x: WasmMatrix, tree: ProductTree, featureGradient: WasmMatrix): WasmMatrix {
    const dtype = this.check(x, featureGradient);
    const size = tree.parents.length;
    if (featureGradient.rows !== x.rows || featureGradient.cols !== size)
      throw new ShapeError(`feature gradient must be ${x.rows}×${size}, got ${featureGradient.rows}×${featureGradient.cols}`);
    return this.withTree(tree, (t) => {
      const out = this.make(x.rows, x.cols, dtype);
      const stride = 8 * (2 * t.size + x.cols);
      const scratch = this.heap.allocate(stride * this.threads);
      try {
        this.run(
          'productFeaturesBackward',
          dtype,
          [x.pointer, t.parents, t.variables, t.weights, featureGradient.pointer, out.pointer, x.cols, t.size, scratch],
          x.rows,
          3 * x.rows * t.size,
          { arg: 8, stride },
        );
      } finally {
        this.heap.release(scratch, stride * this.threads);
      }
      return out;
    });
  }

  attentionProbabilities(queries: WasmMatrix, keys: WasmMatrix, beta: number, causalStart?: number): WasmMatrix {
    const dtype = this.check(queries, keys);
    if (queries.cols !== keys.cols) throw new ShapeError(`attentionProbabilities: queries have ${queries.cols} columns and keys ${keys.cols}`);
    if (causalStart !== undefined && !(Number.isInteger(causalStart) && causalStart >= 0))
      throw new ShapeError(`attentionProbabilities: causalStart must be an integer ≥ 0, got ${causalStart}`);
    const keysT = this.transposeOf(keys);
    try {
      const out = this.make(queries.rows, keys.rows, dtype);
      this.run(
        'softmaxRows',
        dtype,
        [queries.pointer, keysT.transposed.pointer, out.pointer, keys.rows, queries.cols, beta, causalStart ?? -1],
        queries.rows,
        queries.rows * keys.rows * (queries.cols + 4),
      );
      return out;
    } finally {
      if (!keysT.cached) this.dispose(keysT.transposed);
    }
  }

  attentionScoresGradient(probabilities: WasmMatrix, outputGradient: WasmMatrix, values: WasmMatrix, rowDots: WasmMatrix): WasmMatrix {
    const dtype = this.check(probabilities, outputGradient, values, rowDots);
    if (outputGradient.rows !== probabilities.rows || values.rows !== probabilities.cols || outputGradient.cols !== values.cols) {
      throw new ShapeError(
        `attentionScoresGradient: P ${probabilities.rows}×${probabilities.cols}, ∂O ${outputGradient.rows}×${outputGradient.cols}, V ${values.rows}×${values.cols} do not fit`,
      );
    }
    this.column(rowDots, probabilities.rows, 'attentionScoresGradient');
    const valuesT = this.transposeOf(values);
    try {
      const out = this.make(probabilities.rows, probabilities.cols, dtype);
      this.run(
        'scoresGradient',
        dtype,
        [probabilities.pointer, outputGradient.pointer, valuesT.transposed.pointer, rowDots.pointer, out.pointer, probabilities.cols, values.cols],
        probabilities.rows,
        probabilities.rows * probabilities.cols * (values.cols + 2),
      );
      return out;
    } finally {
      if (!valuesT.cached) this.dispose(valuesT.transposed);
    }
  }

  triangle(a: WasmMatrix, keep: 'lower' | 'upper', offset = 0): WasmMatrix {
    const dtype = this.check(a);
    if (!Number.isInteger(offset)) throw new ShapeError(`triangle: the diagonal offset must be an integer, got ${offset}`);
    const out = this.make(a.rows, a.cols, dtype);
    this.run('triangle', dtype, [a.pointer, out.pointer, a.cols, keep === 'lower' ? 1 : 0, offset], a.rows, a.rows * a.cols);
    return out;
  }

  accumulate(target: WasmMatrix, source: WasmMatrix, rowOffset = 0): void {
    const dtype = this.check(target, source);
    if (source.cols !== target.cols || !Number.isInteger(rowOffset) || rowOffset < 0 || rowOffset + source.rows > target.rows) {
      throw new ShapeError(`accumulate: a ${source.rows}×${source.cols} block at row ${rowOffset} does not fit a ${target.rows}×${target.cols} target`);
    }
    this.forgetTranspose(target.block);
    const at = target.pointer + rowOffset * target.cols * bytesOf(dtype);
    const count = source.rows * source.cols;
    this.run('zip', dtype, [at, source.pointer, at, 0], count, count);
  }
}
