/**
 * One conformance kit for every almora `Backend` (the CPU, gpu.js's modes, WebAssembly, and the
 * CPU's core alone, whose fused kernels are all default compositions): each core primitive and each
 * fused kernel (through `fused`, so a backend's override or else its default) against its
 * definition, and whole gradients against the CPU in float64, each check beside the time the
 * backend took for it — validate and benchmark together, as llm.c pairs
 * `validate_result` with `benchmark_kernel`. Plain functions, no test framework, so the same code
 * runs under vitest in Node and in a page or a worker in headless Chromium.
 *
 * @packageDocumentation
 * @module @almora/conformance
 */
import { featureTree, fused, type ProductTree, taylorExp } from '@almora/kernels';
import { attention, attentionAsync, loraGradients, loraGradientsAsync, type AttentionCoreOptions, type LoraProblem } from '@almora/lora';
import { type Backend, type DeviceMatrix, type DType, fromFlat, type Matrix, randomNormal, Rng, scale, toDType, type TransposeForms } from '@almora/tensor';

/** One comparison: the largest deviation from the float64 CPU result, what it may be, and how long the backend took. */
export interface Check {
  /** What was compared. */
  name: string;
  /** Largest absolute deviation from the reference. */
  deviation: number;
  /** What the deviation may be in the backend's precision. */
  tolerance: number;
  /** Seconds the backend took for the checked work, read-back included. */
  seconds: number;
}

const FLOAT32_EPSILON = 2 ** -23;

/**
 * Tolerance for a result whose entries are sums of `terms` products, the largest result entry
 * being `magnitude`: rounding grows like √terms per sum, here with a margin of 8 (GPU exp and
 * division are not correctly rounded); float64 inputs on the CPU backend get 1e-12 per term.
 */
function tolerance(precision: DType, terms: number, magnitude: number): number {
  const unit = precision === 'float32' ? 8 * FLOAT32_EPSILON * Math.sqrt(terms) : 1e-9 * terms;
  return unit * Math.max(1, magnitude);
}

/** The precision a backend computes in for inputs of `dtype`. */
function precisionOf(backend: Backend, dtype: DType): DType {
  return backend.precision === 'input' ? dtype : backend.precision;
}

function deviation(a: Matrix, b: Matrix): number {
  if (a.rows !== b.rows || a.cols !== b.cols) return Number.POSITIVE_INFINITY;
  let worst = 0;
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < a.cols; j++) {
      const d = Math.abs(a.data[a.offset + i * a.stride + j] - b.data[b.offset + i * b.stride + j]);
      if (!(d <= worst)) worst = d;
    }
  }
  return worst;
}

function maxAbsOf(m: Matrix): number {
  let best = 0;
  for (let t = 0; t < m.data.length; t++) best = Math.max(best, Math.abs(m.data[t]));
  return best;
}

/** Builds a rows×cols matrix entry by entry: the references below are definitions, not kernels. */
function build(rows: number, cols: number, entry: (i: number, j: number) => number): Matrix {
  return fromFlat(
    rows,
    cols,
    Float64Array.from({ length: rows * cols }, (_, t) => entry(Math.floor(t / cols), t % cols)),
  );
}

const reference = {
  matmul(a: Matrix, b: Matrix, forms: TransposeForms): Matrix {
    const at = (i: number, p: number) => (forms.transposeA ? a.get(p, i) : a.get(i, p));
    const bt = (p: number, j: number) => (forms.transposeB ? b.get(j, p) : b.get(p, j));
    const inner = forms.transposeA ? a.rows : a.cols;
    return build(forms.transposeA ? a.cols : a.rows, forms.transposeB ? b.rows : b.cols, (i, j) => {
      let s = 0;
      for (let p = 0; p < inner; p++) s += at(i, p) * bt(p, j);
      return s;
    });
  },
  zip: (a: Matrix, b: Matrix, fn: (x: number, y: number) => number) => build(a.rows, a.cols, (i, j) => fn(a.get(i, j), b.get(i, j))),
  map: (a: Matrix, fn: (x: number, i: number, j: number) => number) => build(a.rows, a.cols, (i, j) => fn(a.get(i, j), i, j)),
  features(x: Matrix, tree: ProductTree): Matrix {
    // x^a by its exponent vector, straight from the tree's definition.
    const k = tree.parents.length;
    const exponents: number[][] = [new Array<number>(x.cols).fill(0)];
    for (let a = 1; a < k; a++) {
      exponents.push([...exponents[tree.parents[a]]]);
      exponents[a][tree.variables[a]]++;
    }
    return build(x.rows, k, (i, a) => tree.weights[a] * exponents[a].reduce((m, e, v) => m * x.get(i, v) ** e, 1));
  },
  softmax(q: Matrix, k: Matrix, beta: number, causalStart?: number): Matrix {
    const s = reference.matmul(q, k, { transposeB: true });
    const allowed = (i: number, j: number) => causalStart === undefined || j <= causalStart + i;
    const sums = Array.from({ length: s.rows }, (_, i) => {
      let sum = 0;
      for (let l = 0; l < s.cols; l++) if (allowed(i, l)) sum += Math.exp(beta * s.get(i, l));
      return sum;
    });
    return build(s.rows, s.cols, (i, j) => (allowed(i, j) ? Math.exp(beta * s.get(i, j)) / sums[i] : 0));
  },
};

/** ∂ℓ/∂X of Σ featureGradient ∘ features(X) by central differences of the definition (h = 1e-6). */
function featureVjp(x: Matrix, tree: ProductTree, featureGradient: Matrix): Matrix {
  const h = 1e-6;
  return build(x.rows, x.cols, (i, v) => {
    const at = (delta: number) => {
      const nudged = reference.map(x, (value, r, c) => (r === i && c === v ? value + delta : value));
      const f = reference.features(nudged, tree);
      let s = 0;
      for (let a = 0; a < f.cols; a++) s += f.get(i, a) * featureGradient.get(i, a);
      return s;
    };
    return (at(h) - at(-h)) / (2 * h);
  });
}

/**
 * Runs every core primitive and every fused kernel (the backend's override, or its default
 * composition) on `backend`, with inputs in `dtype`, against its definition evaluated in float64;
 * each result must also come back in the backend's precision. `rows` sets the long dimension; pass
 * one above the texture limit to check tiling.
 */
export async function primitiveChecks<T extends DeviceMatrix>(backend: Backend<T>, dtype: DType = 'float64', rows = 37, seed = 1): Promise<Check[]> {
  const rng = new Rng(seed);
  const normal = (r: number, c: number) => randomNormal(r, c, rng);
  const checks: Check[] = [];
  const pending: Promise<void>[] = [];
  const compare = (name: string, run: (b: Backend<T>, up: (m: Matrix) => T) => T, expected: Matrix, terms: number) =>
    pending.push(compareOne(name, run, expected, terms));
  const compareOne = async (name: string, run: (b: Backend<T>, up: (m: Matrix) => T) => T, expected: Matrix, terms: number) => {
    const handles: T[] = [];
    const up = (m: Matrix) => {
      const h = backend.upload(toDType(m, dtype));
      handles.push(h);
      return h;
    };
    const began = performance.now();
    const result = run(backend, up);
    const host = await backend.read(result);
    const seconds = (performance.now() - began) / 1000;
    for (const h of [...handles, result]) backend.dispose(h);
    const precision = precisionOf(backend, dtype);
    checks.push({
      name,
      deviation: host.dtype === precision ? deviation(host, expected) : Number.POSITIVE_INFINITY,
      tolerance: tolerance(precision, terms, maxAbsOf(expected)),
      seconds,
    });
  };
  const a = normal(rows, 5);
  const b = normal(rows, 5);
  const small = normal(5, 3);
  const column = normal(rows, 1);
  for (const [label, forms, x, y] of [
    ['A·B', {}, a, small],
    ['Aᵀ·B', { transposeA: true }, a, b],
    ['A·Bᵀ', { transposeB: true }, a, b],
    ['Aᵀ·Bᵀ', { transposeA: true, transposeB: true }, small, a],
  ] as [string, TransposeForms, Matrix, Matrix][]) {
    compare(`matmul ${label}`, (be, up) => be.matmul(up(x), up(y), forms), reference.matmul(x, y, forms), forms.transposeA ? x.rows : x.cols);
  }
  compare(
    'add',
    (be, up) => be.add(up(a), up(b)),
    reference.zip(a, b, (u, w) => u + w),
    1,
  );
  compare(
    'sub',
    (be, up) => be.sub(up(a), up(b)),
    reference.zip(a, b, (u, w) => u - w),
    1,
  );
  compare(
    'hadamard',
    (be, up) => be.hadamard(up(a), up(b)),
    reference.zip(a, b, (u, w) => u * w),
    1,
  );
  compare(
    'affine',
    (be, up) => be.affine(up(a), -0.75, 0.5),
    reference.map(a, (u) => -0.75 * u + 0.5),
    1,
  );
  compare('abs', (be, up) => be.abs(up(a)), reference.map(a, Math.abs), 1);
  compare('exp', (be, up) => be.exp(up(a)), reference.map(a, Math.exp), 1);
  compare(
    'reciprocal',
    (be, up) => be.reciprocal(up(a)),
    reference.map(a, (u) => 1 / u),
    1,
  );
  compare('upload in the precision of another handle', (be, up) => be.upload(small, up(a)), small, 1);
  compare(
    'scaleRows',
    (be, up) => be.scaleRows(up(a), up(column)),
    reference.map(a, (u, i) => u * column.get(i, 0)),
    1,
  );
  compare(
    'rowSums',
    (be, up) => be.rowSums(up(a)),
    build(a.rows, 1, (i) => Array.from({ length: a.cols }, (_, j) => a.get(i, j)).reduce((t, u) => t + u, 0)),
    a.cols,
  );
  compare(
    'colSums',
    (be, up) => be.colSums(up(a)),
    build(1, a.cols, (_, j) => Array.from({ length: a.rows }, (_, i) => a.get(i, j)).reduce((t, u) => t + u, 0)),
    a.rows,
  );
  compare(
    'rowMax',
    (be, up) => be.rowMax(up(a)),
    build(a.rows, 1, (i) => Math.max(...Array.from({ length: a.cols }, (_, j) => a.get(i, j)))),
    1,
  );
  const right = normal(rows, 3);
  compare(
    'faceSplit',
    (be, up) => fused(be).faceSplit(up(a), up(right)),
    build(rows, 15, (i, j) => a.get(i, Math.floor(j / 3)) * right.get(i, j % 3)),
    1,
  );
  const weights = normal(rows, 3);
  const blocks = normal(rows, 12);
  compare(
    'faceSplitReduce',
    (be, up) => fused(be).faceSplitReduce(up(weights), up(blocks)),
    build(rows, 4, (i, j) => [0, 1, 2].reduce((t, l) => t + weights.get(i, l) * blocks.get(i, 4 * l + j), 0)),
    3,
  );
  const x = scale(normal(rows, 3), 0.5);
  const tree = featureTree(3, taylorExp(3), 0.7, 'query');
  compare('productFeatures', (be, up) => fused(be).productFeatures(up(x), tree), reference.features(x, tree), 1);
  const featureGradient = normal(rows, tree.parents.length);
  compare(
    'productFeaturesBackward',
    (be, up) => fused(be).productFeaturesBackward(up(x), tree, up(featureGradient)),
    featureVjp(x, tree, featureGradient),
    tree.parents.length,
  );
  const queries = normal(rows, 4);
  const keys = normal(rows + 3, 4);
  for (const causal of [undefined, 2]) {
    compare(
      `attentionProbabilities${causal === undefined ? '' : ' causal'}`,
      (be, up) => fused(be).attentionProbabilities(up(queries), up(keys), 0.6, causal),
      reference.softmax(queries, keys, 0.6, causal),
      4 * keys.rows,
    );
  }
  const p = reference.softmax(queries, keys, 0.6);
  const c = normal(rows, 4);
  const values = normal(rows + 3, 4);
  const dots = normal(rows, 1);
  compare(
    'attentionScoresGradient',
    (be, up) => fused(be).attentionScoresGradient(up(p), up(c), up(values), up(dots)),
    reference.map(reference.matmul(c, values, { transposeB: true }), (u, i, j) => p.get(i, j) * (u - dots.get(i, 0))),
    4,
  );
  const square = normal(9, 9);
  compare(
    'triangle lower',
    (be, up) => be.triangle(up(square), 'lower'),
    reference.map(square, (u, i, j) => (j <= i ? u : 0)),
    1,
  );
  compare(
    'triangle upper',
    (be, up) => be.triangle(up(square), 'upper'),
    reference.map(square, (u, i, j) => (j >= i ? u : 0)),
    1,
  );
  const wide = normal(7, 11);
  compare(
    'triangle lower, diagonal 2 left',
    (be, up) => be.triangle(up(wide), 'lower', -2),
    reference.map(wide, (u, i, j) => (j <= i - 2 ? u : 0)),
    1,
  );
  compare(
    'triangle upper, diagonal 3 right',
    (be, up) => be.triangle(up(wide), 'upper', 3),
    reference.map(wide, (u, i, j) => (j >= i + 3 ? u : 0)),
    1,
  );
  compare(
    'sliceRows',
    (be, up) => be.sliceRows(up(a), 3, rows - 2),
    build(rows - 5, 5, (i, j) => a.get(i + 3, j)),
    1,
  );
  const target = normal(rows, 5);
  const block = normal(4, 5);
  const accumulated = reference.map(target, (u, i, j) => (i >= 6 && i < 10 ? u + block.get(i - 6, j) : u));
  compare(
    'accumulate',
    (be, up) => {
      const t = be.affine(up(target), 1);
      be.accumulate(t, up(block), 6);
      return t;
    },
    accumulated,
    2,
  );
  await Promise.all(pending);
  return checks.sort((a, b) => a.name.localeCompare(b.name));
}

function problem(length: number, causal: boolean, seed: number): LoraProblem {
  const rng = new Rng(seed);
  const d = 8;
  const r = 2;
  const weight = () => scale(randomNormal(d, d, rng), 1 / Math.sqrt(d));
  const adapter = () => ({ a: scale(randomNormal(r, d, rng), 0.3), b: scale(randomNormal(d, r, rng), 0.3) });
  return {
    x: scale(randomNormal(length, d, rng), 0.4),
    weights: { q: weight(), k: weight(), v: weight() },
    adapters: { q: adapter(), k: adapter(), v: adapter() },
    alpha: 4,
    heads: 2,
    causal,
    target: randomNormal(length, d, rng),
  };
}

/**
 * loraGradients on `backend` against the CPU in float64 (itself checked against dense references
 * and finite differences in @almora/lora), full adaptation with two heads, for the
 * exact path and both fast variants, unmasked and causal.
 */
export async function gradientChecks(backend: Backend, length = 150, seed = 3): Promise<Check[]> {
  const precision = precisionOf(backend, 'float64');
  const checks: Check[] = [];
  for (const causal of [false, true]) {
    const p = problem(length, causal, seed);
    for (const options of [
      { method: 'exact' },
      { method: 'fast', degree: 3, variant: 'chained' },
      { method: 'fast', degree: 3, variant: 'autodiff' },
    ] as const) {
      const reference = loraGradients(p, options);
      // Backends that can read synchronously take the synchronous entry point; WebGPU the other.
      const began = performance.now();
      const result = backend.readSync ? loraGradients(p, { ...options, backend }) : await loraGradientsAsync(p, { ...options, backend });
      const seconds = (performance.now() - began) / 1000;
      const label = `${options.method}${'variant' in options ? ` ${options.variant}` : ''}${causal ? ' causal' : ''}`;
      for (const t of ['q', 'k', 'v'] as const) {
        for (const g of ['a', 'b'] as const) {
          const ref = reference.grads[t]![g];
          checks.push({
            name: `loraGradients ${label} ∂${g.toUpperCase()}_${t}`,
            deviation: deviation(result.grads[t]![g], ref),
            tolerance: tolerance(precision, 4 * length, maxAbsOf(ref)),
            seconds,
          });
        }
      }
      checks.push({
        name: `loraGradients ${label} loss`,
        deviation: Math.abs(result.loss - reference.loss),
        tolerance: tolerance(precision, length, reference.loss),
        seconds,
      });
    }
    checks.push(...(await layerCoreChecks(backend, length, causal, seed)));
  }
  return checks;
}

/**
 * The attention core as a layer uses it — forward, then backward with an upstream gradient — on
 * `backend` against the CPU in float64: the exact path keeping its probabilities and recomputing
 * them, and both fast variants.
 */
async function layerCoreChecks(backend: Backend, length: number, causal: boolean, seed: number): Promise<Check[]> {
  const precision = precisionOf(backend, 'float64');
  const rng = new Rng(seed + 100);
  const [q, k, v, upstream] = [
    scale(randomNormal(length, 8, rng), 0.5),
    scale(randomNormal(length, 8, rng), 0.5),
    randomNormal(length, 8, rng),
    randomNormal(length, 8, rng),
  ];
  const checks: Check[] = [];
  const cases: [string, AttentionCoreOptions][] = [
    ['exact kept', { method: 'exact' }],
    ['exact recomputed', { method: 'exact', probabilityBudget: 0 }],
    ['fast chained', { method: 'fast', degree: 3, variant: 'chained' }],
    ['fast autodiff', { method: 'fast', degree: 3, variant: 'autodiff' }],
  ];
  for (const [name, options] of cases) {
    const shared = { ...options, heads: 2, causal };
    const reference = attention(q, k, v, shared);
    const referenceGrads = reference.backward(upstream);
    const began = performance.now();
    const forward = backend.readSync ? attention(q, k, v, { ...shared, backend }) : await attentionAsync(q, k, v, { ...shared, backend });
    const grads = await forward.backward(upstream);
    const seconds = (performance.now() - began) / 1000;
    const label = `attention core ${name}${causal ? ' causal' : ''}`;
    checks.push({
      name: `${label} output`,
      deviation: deviation(forward.output, reference.output),
      tolerance: tolerance(precision, length, maxAbsOf(reference.output)),
      seconds,
    });
    for (const g of ['dq', 'dk', 'dv'] as const) {
      checks.push({
        name: `${label} ${g}`,
        deviation: deviation(grads[g], referenceGrads[g]),
        tolerance: tolerance(precision, 4 * length, maxAbsOf(referenceGrads[g])),
        seconds,
      });
    }
  }
  return checks;
}

/**
 * Matrices longer than a texture side (16,384 under headless-gl, 8,192 in headless Chromium): the
 * flat layout must pack them into near-square textures and index them exactly. And reductions
 * longer than a GL driver runs in one loop (headless-gl under Mesa stopped near 65,536 terms):
 * rows of 70,000 summed, and a softmax over 70,000 keys.
 */
export async function tallChecks<T extends DeviceMatrix>(backend: Backend<T>, rows = 20_000, seed = 5): Promise<Check[]> {
  const rng = new Rng(seed);
  const a = randomNormal(rows, 4, rng);
  const b = randomNormal(rows, 3, rng);
  const block = randomNormal(100, 3, rng);
  const [ha, hb, hblock] = [a, b, block].map((m) => backend.upload(m));
  const expected = {
    product: reference.matmul(a, b, { transposeA: true }),
    sums: build(rows, 1, (i) => b.get(i, 0) + b.get(i, 1) + b.get(i, 2)),
    tail: build(100, 3, (i, j) => b.get(rows - 100 + i, j) + block.get(i, j)),
  };
  const made: T[] = [];
  const kernels = fused(backend);
  const runs: Record<keyof typeof expected, () => T> = {
    product: () => backend.matmul(ha, hb, { transposeA: true }),
    sums: () => backend.rowSums(hb),
    tail: () => {
      const tail = backend.sliceRows(hb, rows - 100, rows);
      backend.accumulate(tail, hblock);
      return tail;
    },
  };
  const checks: Check[] = [];
  for (const name of Object.keys(expected) as (keyof typeof expected)[]) {
    const want = expected[name];
    const began = performance.now();
    const handle = runs[name]();
    const host = await backend.read(handle);
    made.push(handle);
    checks.push({
      name: `${rows}-row ${name}`,
      deviation: deviation(host, want),
      tolerance: tolerance(precisionOf(backend, 'float64'), name === 'product' ? rows : 3, maxAbsOf(want)),
      seconds: (performance.now() - began) / 1000,
    });
  }
  for (const h of [ha, hb, hblock, ...made]) backend.dispose(h);
  const long = 70_000;
  const wide = randomNormal(2, long, rng);
  const queries = scale(randomNormal(3, 4, rng), 0.5);
  const keys = scale(randomNormal(long, 4, rng), 0.5);
  const [hw, hq, hk] = [wide, queries, keys].map((m) => backend.upload(m));
  const wideSums = build(2, 1, (i) => Array.from({ length: long }, (_, j) => wide.get(i, j)).reduce((t, u) => t + u, 0));
  const longRows = [
    { name: `rowSums over ${long} columns`, run: () => backend.rowSums(hw), want: wideSums, terms: long },
    {
      name: `attention over ${long} keys`,
      run: () => kernels.attentionProbabilities(hq, hk, 0.7),
      want: reference.softmax(queries, keys, 0.7),
      terms: 4 * long,
    },
    {
      name: `causal attention over ${long} keys`,
      run: () => kernels.attentionProbabilities(hq, hk, 0.7, long - 5),
      want: reference.softmax(queries, keys, 0.7, long - 5),
      terms: 4 * long,
    },
  ];
  for (const { name, run, want, terms } of longRows) {
    const began = performance.now();
    const handle = run();
    const host = await backend.read(handle);
    checks.push({
      name,
      deviation: deviation(host, want),
      tolerance: tolerance(precisionOf(backend, 'float64'), terms, maxAbsOf(want)),
      seconds: (performance.now() - began) / 1000,
    });
    backend.dispose(handle);
  }
  for (const h of [hw, hq, hk]) backend.dispose(h);
  return checks;
}

/**
 * What every backend must refuse with a typed error (an AlmoraError) instead of computing garbage:
 * a block accumulated at a fractional row, a negative or fractional causal start, a fractional
 * diagonal offset. Returns the
 * names of the cases it accepted or threw something untyped for (empty when it conforms).
 */
export function refusalChecks<T extends DeviceMatrix>(backend: Backend<T>): string[] {
  const rng = new Rng(9);
  const [target, block, q, k] = [randomNormal(4, 3, rng), randomNormal(3, 3, rng), randomNormal(4, 3, rng), randomNormal(6, 3, rng)].map((m) =>
    backend.upload(m),
  );
  const kernels = fused(backend);
  const cases: [string, () => unknown][] = [
    ['accumulate at row 0.5', () => backend.accumulate(target, block, 0.5)],
    ['accumulate past the last row', () => backend.accumulate(target, block, 2)],
    ['causalStart −2', () => kernels.attentionProbabilities(q, k, 0.5, -2)],
    ['causalStart 0.5', () => kernels.attentionProbabilities(q, k, 0.5, 0.5)],
    ['triangle with a diagonal offset of 0.5', () => backend.triangle(q, 'lower', 0.5)],
  ];
  const failed = cases.filter(([, run]) => {
    try {
      run();
      return true;
    } catch (error) {
      return !(error instanceof Error && 'code' in error);
    }
  });
  for (const h of [target, block, q, k]) backend.dispose(h);
  return failed.map(([name]) => name);
}
