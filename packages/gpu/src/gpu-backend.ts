import { GPU, type IKernelRunShortcut, type Texture } from 'gpu.js';
import type { FusedKernels, ProductTree } from '@almora/kernels';
import { type Backend, BackendError, type DeviceMatrix, fromFlat, type Matrix, ShapeError, type TransposeForms } from '@almora/tensor';
import { KERNELS, type KernelName } from './kernels.js';

/**
 * The gpu.js modes this backend runs in: GPU modes first, then gpu.js's own CPU fallbacks.
 * 'webgpu' reads back only asynchronously: use it with `loraGradientsAsync`.
 */
export type GpuMode = 'webgpu' | 'webgl2' | 'webgl' | 'headlessgl' | 'webasm' | 'cpu';

/** A matrix held by gpu.js: a texture in the GL modes, a Float32Array in cpu and webasm. */
export interface GpuMatrix extends DeviceMatrix {
  /** Number of rows. */
  readonly rows: number;
  /** Number of columns. */
  readonly cols: number;
  /**
   * Where the values live (a texture in the GL modes, an array in cpu and webasm, the promise of a
   * device buffer in webgpu); replaced by `accumulate`, emptied by `dispose`.
   */
  data: Texture | Float32Array | Promise<unknown> | undefined;
}

// Flat indices are float in the shaders; beyond 2²⁴ consecutive integers are no longer exact.
const MAX_ELEMENTS = 1 << 24;
// gpu.js caps loops whose bound is an argument at loopMaxIterations (1,000 by default); the
// kernels themselves never loop over more than MAX_TERMS terms (see kernels.ts).
const MAX_LOOP = 1 << 24;
const MAX_TERMS = 8192;

/** A device buffer or texture: something gpu.js lets us read and delete. */
interface DeviceValues {
  toArray(): unknown;
  delete(): void;
}

function isDeviceValues(data: unknown): data is DeviceValues {
  return typeof data === 'object' && data !== null && 'toArray' in data && 'delete' in data;
}

/**
 * The {@link Backend} over gpu.js in one mode, float32 throughout, with every fused kernel of
 * `@almora/kernels` overridden by one gpu.js kernel (its default composition would take several
 * passes and matmuls by selection matrices). Made by `createGpuBackend`.
 */
export class GpuBackend implements Backend<GpuMatrix>, FusedKernels<GpuMatrix> {
  readonly name: string;
  readonly precision = 'float32' as const;
  /** The gpu.js mode the kernels run in. */
  readonly mode: GpuMode;
  private readonly gpu: GPU;
  private readonly kernels = new Map<KernelName, IKernelRunShortcut>();
  private readonly textureLimit: number;
  /** WebGPU: every kernel call returns a promise, chained here without waiting. */
  private readonly asynchronous: boolean;
  /** Kernel calls not yet finished (asynchronous mode): a disposed input waits for them. */
  private readonly inflight = new Set<Promise<unknown>>();
  /**
   * The last call of each kernel (asynchronous mode). A kernel's calls run one after another: a
   * WebGPU kernel is built during its first call, and a second call resizing it meanwhile (the
   * output size is per call here) gave wrong results.
   */
  private readonly lastCall = new Map<KernelName, Promise<unknown>>();
  /** Synchronous read-back, in every mode but webgpu. */
  readonly readSync?: (m: GpuMatrix) => Matrix;

  constructor(mode: GpuMode, gpu: GPU, textureLimit: number) {
    this.mode = mode;
    this.gpu = gpu;
    this.name = `gpu.js ${mode}`;
    this.textureLimit = textureLimit;
    this.asynchronous = mode === 'webgpu';
    if (!this.asynchronous) this.readSync = (m) => this.toHost(m, this.values(m));
  }

  private run(name: KernelName, rows: number, cols: number, args: (GpuMatrix | number)[]): GpuMatrix {
    const size = rows * cols;
    if (size > MAX_ELEMENTS || size > this.textureLimit ** 2) {
      throw new BackendError(
        `a ${rows}×${cols} matrix exceeds what the ${this.name} backend holds (${Math.min(MAX_ELEMENTS, this.textureLimit ** 2)} elements)`,
      );
    }
    if (size === 0) return { rows, cols, data: new Float32Array(0) };
    let kernel = this.kernels.get(name);
    if (!kernel) {
      kernel = this.gpu.createKernel(KERNELS[name], {
        output: [1],
        dynamicOutput: true,
        dynamicArguments: true,
        pipeline: true,
        immutable: true,
        precision: 'single',
        tactic: 'precision',
        loopMaxIterations: MAX_LOOP,
      } as Parameters<GPU['createKernel']>[1]);
      this.kernels.set(name, kernel);
    }
    kernel.setOutput([size]);
    const values = args.map((a) => {
      if (typeof a === 'number') return a;
      // An empty operand of a non-empty result (a zero inner dimension) reads nothing.
      return a.rows * a.cols === 0 ? new Float32Array(1) : this.values(a);
    });
    const call = (resolved: unknown[]) => {
      kernel.setOutput([size]);
      return kernel(...(resolved as Parameters<IKernelRunShortcut>)) as GpuMatrix['data'];
    };
    if (!this.asynchronous) return { rows, cols, data: call(values) };
    const previous = this.lastCall.get(name) ?? Promise.resolve();
    const data = Promise.all([...values, previous.catch(() => undefined)]).then((resolved) => call(resolved.slice(0, values.length)));
    this.lastCall.set(name, data);
    this.inflight.add(data);
    const settle = () => this.inflight.delete(data);
    data.then(settle, settle);
    return { rows, cols, data };
  }

  private values(m: GpuMatrix): NonNullable<GpuMatrix['data']> {
    if (m.data === undefined) throw new BackendError(`${this.name}: a matrix was used after dispose`);
    return m.data;
  }

  private toHost(m: GpuMatrix, values: unknown): Matrix {
    const flat = isDeviceValues(values) ? values.toArray() : values;
    if (!(flat instanceof Float32Array)) throw new BackendError(`${this.name}: read back something other than a Float32Array`);
    return fromFlat(m.rows, m.cols, Float32Array.from(flat.subarray(0, m.rows * m.cols)), { dtype: 'float32' });
  }

  /**
   * A reduction over `total` terms of `perTerm` loop steps each, in chunks short enough for any
   * driver: `partial(start, count)` reduces one chunk, `combine` merges two partial results.
   */
  private chunked(total: number, perTerm: number, partial: (start: number, count: number) => GpuMatrix, combine: 'add' | 'maximum'): GpuMatrix {
    const size = Math.max(1, Math.floor(MAX_TERMS / perTerm));
    let result = partial(0, Math.min(size, total));
    for (let start = size; start < total; start += size) {
      const next = partial(start, Math.min(size, total - start));
      const merged = this.run(combine, result.rows, result.cols, [result, next]);
      this.dispose(result);
      this.dispose(next);
      result = merged;
    }
    return result;
  }

  /** Copies `m` to the device in float32, whatever `like` is: every handle here is float32. */
  upload(m: Matrix): GpuMatrix {
    const flat = new Float32Array(m.rows * m.cols);
    for (let i = 0; i < m.rows; i++) {
      for (let j = 0; j < m.cols; j++) flat[i * m.cols + j] = m.data[m.offset + i * m.stride + j];
    }
    const host: GpuMatrix = { rows: m.rows, cols: m.cols, data: flat };
    // In the GL modes every operand is a texture, so each kernel sees one argument type.
    return this.mode === 'cpu' || this.mode === 'webasm' ? host : this.run('upload', m.rows, m.cols, [host]);
  }

  zeros(rows: number, cols: number): GpuMatrix {
    return this.run('fill', rows, cols, [0]);
  }

  async read(m: GpuMatrix): Promise<Matrix> {
    const values = await this.values(m);
    if (values instanceof Float32Array) return this.toHost(m, values);
    if (!isDeviceValues(values)) throw new BackendError(`${this.name}: a kernel returned no device values`);
    // WebGPU buffers read back through a promise; GL textures at once.
    return this.toHost(m, await values.toArray());
  }

  dispose(m: GpuMatrix): void {
    const data = m.data;
    m.data = undefined;
    if (data instanceof Promise) {
      // Kernels already queued may still read it: release it once they have run.
      const release = () => data.then((values) => (isDeviceValues(values) ? values.delete() : undefined)).catch(() => undefined);
      void Promise.allSettled([...this.inflight]).then(release);
    } else if (isDeviceValues(data)) data.delete();
  }

  sliceRows(m: GpuMatrix, start: number, end: number): GpuMatrix {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > m.rows) {
      throw new ShapeError(`row range [${start}, ${end}) is outside [0, ${m.rows})`);
    }
    return this.run('copy', end - start, m.cols, [m, start * m.cols]);
  }

  matmul(a: GpuMatrix, b: GpuMatrix, forms: TransposeForms = {}): GpuMatrix {
    const [m, k] = forms.transposeA ? [a.cols, a.rows] : [a.rows, a.cols];
    const [kB, n] = forms.transposeB ? [b.cols, b.rows] : [b.rows, b.cols];
    if (k !== kB) throw new ShapeError(`matmul: op(A) is ${m}×${k} and op(B) is ${kB}×${n}; inner dimensions differ`);
    const [aRowStep, aInnerStep] = forms.transposeA ? [1, a.cols] : [a.cols, 1];
    const [bInnerStep, bColStep] = forms.transposeB ? [1, b.cols] : [b.cols, 1];
    if (k === 0) return this.zeros(m, n);
    return this.chunked(k, 1, (start, count) => this.run('matmul', m, n, [a, b, start, count, n, aRowStep, aInnerStep, bInnerStep, bColStep]), 'add');
  }

  private elementwise(name: 'add' | 'sub' | 'hadamard', a: GpuMatrix, b: GpuMatrix): GpuMatrix {
    sameShape(a, b, name);
    return this.run(name, a.rows, a.cols, [a, b]);
  }

  add(a: GpuMatrix, b: GpuMatrix): GpuMatrix {
    return this.elementwise('add', a, b);
  }

  sub(a: GpuMatrix, b: GpuMatrix): GpuMatrix {
    return this.elementwise('sub', a, b);
  }

  hadamard(a: GpuMatrix, b: GpuMatrix): GpuMatrix {
    return this.elementwise('hadamard', a, b);
  }

  affine(a: GpuMatrix, factor: number, shift = 0): GpuMatrix {
    return this.run('affine', a.rows, a.cols, [a, factor, shift]);
  }

  abs(a: GpuMatrix): GpuMatrix {
    return this.run('abs', a.rows, a.cols, [a]);
  }

  exp(a: GpuMatrix): GpuMatrix {
    return this.run('exp', a.rows, a.cols, [a]);
  }

  reciprocal(a: GpuMatrix): GpuMatrix {
    return this.run('reciprocal', a.rows, a.cols, [a]);
  }

  scaleRows(a: GpuMatrix, s: GpuMatrix): GpuMatrix {
    isColumn(s, a.rows, 'scaleRows');
    return this.run('scaleRows', a.rows, a.cols, [a, s, a.cols]);
  }

  rowSums(a: GpuMatrix): GpuMatrix {
    if (a.cols === 0) return this.zeros(a.rows, 1);
    return this.chunked(a.cols, 1, (start, count) => this.run('rowSums', a.rows, 1, [a, a.cols, start, count]), 'add');
  }

  colSums(a: GpuMatrix): GpuMatrix {
    if (a.rows === 0) return this.zeros(1, a.cols);
    return this.chunked(a.rows, 1, (start, count) => this.run('colSums', 1, a.cols, [a, a.cols, start, count]), 'add');
  }

  rowMax(a: GpuMatrix): GpuMatrix {
    if (a.cols === 0) return this.run('fill', a.rows, 1, [Number.NEGATIVE_INFINITY]);
    return this.chunked(a.cols, 1, (start, count) => this.run('rowMax', a.rows, 1, [a, a.cols, start, count, 1, -1]), 'maximum');
  }

  faceSplit(a: GpuMatrix, b: GpuMatrix): GpuMatrix {
    if (a.rows !== b.rows) throw new ShapeError(`faceSplit: A is ${a.rows}×${a.cols} and B is ${b.rows}×${b.cols}; row counts must agree`);
    return this.run('faceSplit', a.rows, a.cols * b.cols, [a, b, a.cols, b.cols]);
  }

  faceSplitReduce(weights: GpuMatrix, blocks: GpuMatrix): GpuMatrix {
    const d = weights.cols;
    if (blocks.rows !== weights.rows || d === 0 || blocks.cols % d !== 0) {
      throw new ShapeError(
        `faceSplitReduce: weights are ${weights.rows}×${d} and blocks ${blocks.rows}×${blocks.cols}; blocks need the same rows and a multiple of ${d} columns`,
      );
    }
    const n = blocks.cols / d;
    return this.run('faceSplitReduce', weights.rows, n, [weights, blocks, d, n]);
  }

  productFeatures(x: GpuMatrix, tree: ProductTree): GpuMatrix {
    const k = tree.parents.length;
    const [exponents, weights] = this.treeTables(tree, x.cols);
    const out = this.run('productFeatures', x.rows, k, [x, exponents, weights, x.cols, k]);
    this.dispose(exponents);
    this.dispose(weights);
    return out;
  }

  productFeaturesBackward(x: GpuMatrix, tree: ProductTree, featureGradient: GpuMatrix): GpuMatrix {
    const k = tree.parents.length;
    if (featureGradient.rows !== x.rows || featureGradient.cols !== k) {
      throw new ShapeError(`feature gradient must be ${x.rows}×${k}, got ${featureGradient.rows}×${featureGradient.cols}`);
    }
    const [exponents, weights] = this.treeTables(tree, x.cols);
    // Each monomial costs a loop over the d variables and the powers of each: at most d + degree + 1 steps.
    let degree = 0;
    for (let a = 1, depth = new Int32Array(k); a < k; a++) degree = Math.max(degree, (depth[a] = depth[tree.parents[a]] + 1));
    const out = this.chunked(
      k,
      x.cols + degree + 1,
      (start, count) => this.run('productFeaturesBackward', x.rows, x.cols, [x, featureGradient, exponents, weights, k, x.cols, start, count]),
      'add',
    );
    this.dispose(exponents);
    this.dispose(weights);
    return out;
  }

  /**
   * The tree as tables a shader can read without recursion: the exponent vector of every monomial
   * (k×d), so each thread multiplies its own powers, and the weights.
   */
  private treeTables(tree: ProductTree, d: number): [GpuMatrix, GpuMatrix] {
    const k = tree.parents.length;
    const exponents = new Float64Array(k * d);
    for (let a = 1; a < k; a++) {
      exponents.set(exponents.subarray(tree.parents[a] * d, tree.parents[a] * d + d), a * d);
      exponents[a * d + tree.variables[a]] += 1;
    }
    return [this.upload(fromFlat(k, d, exponents)), this.upload(fromFlat(k, 1, tree.weights))];
  }

  attentionProbabilities(queries: GpuMatrix, keys: GpuMatrix, beta: number, causalStart?: number): GpuMatrix {
    if (queries.cols !== keys.cols)
      throw new ShapeError(`attentionProbabilities: queries are ${queries.rows}×${queries.cols} and keys ${keys.rows}×${keys.cols}`);
    if (causalStart !== undefined && !(Number.isInteger(causalStart) && causalStart >= 0))
      throw new ShapeError(`attentionProbabilities: causalStart must be an integer ≥ 0, got ${causalStart}`);
    const causal = causalStart ?? -1;
    const [rows, cols] = [queries.rows, keys.rows];
    const scores = this.matmul(queries, keys, { transposeB: true });
    const rowMax = this.chunked(cols, 1, (start, count) => this.run('rowMax', rows, 1, [scores, cols, start, count, beta, causal]), 'maximum');
    const rowSum = this.chunked(cols, 1, (start, count) => this.run('rowSumExp', rows, 1, [scores, rowMax, cols, start, count, beta, causal]), 'add');
    const out = this.run('softmaxFromStats', rows, cols, [scores, rowMax, rowSum, cols, beta, causal]);
    for (const m of [scores, rowMax, rowSum]) this.dispose(m);
    return out;
  }

  attentionScoresGradient(probabilities: GpuMatrix, outputGradient: GpuMatrix, values: GpuMatrix, rowDots: GpuMatrix): GpuMatrix {
    if (outputGradient.rows !== probabilities.rows || values.rows !== probabilities.cols || values.cols !== outputGradient.cols) {
      throw new ShapeError(
        `attentionScoresGradient: P is ${probabilities.rows}×${probabilities.cols}, C ${outputGradient.rows}×${outputGradient.cols}, V ${values.rows}×${values.cols}`,
      );
    }
    isColumn(rowDots, probabilities.rows, 'attentionScoresGradient');
    return this.run('attentionScoresGradient', probabilities.rows, probabilities.cols, [
      probabilities,
      outputGradient,
      values,
      rowDots,
      probabilities.cols,
      values.cols,
    ]);
  }

  triangle(a: GpuMatrix, keep: 'lower' | 'upper', offset = 0): GpuMatrix {
    if (!Number.isInteger(offset)) throw new ShapeError(`triangle: the diagonal offset must be an integer, got ${offset}`);
    return this.run('triangle', a.rows, a.cols, [a, a.cols, keep === 'lower' ? 1 : 0, offset]);
  }

  accumulate(target: GpuMatrix, source: GpuMatrix, rowOffset = 0): void {
    if (source.cols !== target.cols || !Number.isInteger(rowOffset) || rowOffset < 0 || rowOffset + source.rows > target.rows) {
      throw new ShapeError(`accumulate: a ${source.rows}×${source.cols} block at row ${rowOffset} does not fit a ${target.rows}×${target.cols} matrix`);
    }
    if (source.rows * source.cols === 0) return;
    const start = rowOffset * target.cols;
    const sum = this.run('accumulate', target.rows, target.cols, [target, source, start, start + source.rows * source.cols]);
    this.dispose(target);
    target.data = sum.data;
  }
}

function sameShape(a: GpuMatrix, b: GpuMatrix, op: string): void {
  if (a.rows !== b.rows || a.cols !== b.cols) throw new ShapeError(`${op}: shapes ${a.rows}×${a.cols} and ${b.rows}×${b.cols} differ`);
}

function isColumn(s: GpuMatrix, rows: number, op: string): void {
  if (s.rows !== rows || s.cols !== 1) throw new ShapeError(`${op}: expected a ${rows}×1 column, got ${s.rows}×${s.cols}`);
}
