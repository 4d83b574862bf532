// almora's WebAssembly kernels: row-major matrices in linear memory, addressed by byte pointers,
// in float64 (f64x2) and float32 (f32x4). Every kernel that can be split by rows takes the row range
// [start, end) it computes, so worker threads sharing the memory can each take a part. Nothing here
// allocates: the host owns the memory and passes scratch space where a kernel needs it.

// ---------- matmul: rows [start, end) of C = op(A)·B, B k×n, op(A) m×k ----------

@inline function lanes<T>(): i32 {
  return 16 / sizeof<T>();
}

// The matmul kernels (a packed-panel GEMM with an MR×NR register-blocked microkernel) live in
// matmul.ts; the attention kernels below reuse its in-place row kernel.
import { matmulRows } from './matmul';
export { matmulF64, matmulF32, matmulTNF64, matmulTNF32, matmulScratchBytes } from './matmul';

// ---------- transpose: dst (cols×rows) = srcᵀ, rows [start, end) of src, in 32×32 tiles ----------

function transposeRows<T>(src: usize, dst: usize, rows: i32, cols: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  for (let i0 = start; i0 < end; i0 += 32) {
    const i1 = min(i0 + 32, end);
    for (let j0 = 0; j0 < cols; j0 += 32) {
      const j1 = min(j0 + 32, cols);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) store<T>(dst + (<usize>j * rows + i) * size, load<T>(src + (<usize>i * cols + j) * size));
    }
  }
}
export function transposeF64(src: usize, dst: usize, rows: i32, cols: i32, start: i32, end: i32): void {
  transposeRows<f64>(src, dst, rows, cols, start, end);
}
export function transposeF32(src: usize, dst: usize, rows: i32, cols: i32, start: i32, end: i32): void {
  transposeRows<f32>(src, dst, rows, cols, start, end);
}

// ---------- elementwise over entries [start, end): op 0 add, 1 sub, 2 hadamard ----------

function zipRange<T>(a: usize, b: usize, out: usize, op: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  const l = lanes<T>();
  let t = start;
  const vend = start + ((end - start) / l) * l;
  for (; t < vend; t += l) {
    const o = <usize>t * size;
    const x = v128.load(a + o);
    const y = v128.load(b + o);
    v128.store(out + o, op == 0 ? v128.add<T>(x, y) : op == 1 ? v128.sub<T>(x, y) : v128.mul<T>(x, y));
  }
  for (; t < end; t++) {
    const o = <usize>t * size;
    const x = load<T>(a + o);
    const y = load<T>(b + o);
    store<T>(out + o, op == 0 ? x + y : op == 1 ? x - y : x * y);
  }
}
export function zipF64(a: usize, b: usize, out: usize, op: i32, start: i32, end: i32): void {
  zipRange<f64>(a, b, out, op, start, end);
}
export function zipF32(a: usize, b: usize, out: usize, op: i32, start: i32, end: i32): void {
  zipRange<f32>(a, b, out, op, start, end);
}

/** `mapRange` op codes: out = factor·a + shift, factor·|a| + shift, exp(a), 1/a. */
const AFFINE = 0;
const ABS = 1;
const EXP = 2;
const RECIPROCAL = 3;

/** out = op(a) (see AFFINE…RECIPROCAL; factor and shift only for the first two), entries [start, end). */
function mapRange<T>(a: usize, out: usize, factor: f64, shift: f64, op: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  if (op == EXP) {
    // Scalar, in float64 then rounded once: as the CPU computes it.
    for (let t = start; t < end; t++) store<T>(out + <usize>t * size, <T>Math.exp(<f64>load<T>(a + <usize>t * size)));
    return;
  }
  const l = lanes<T>();
  const f = v128.splat<T>(<T>factor);
  const s = v128.splat<T>(<T>shift);
  const one = v128.splat<T>(<T>1);
  let t = start;
  const vend = start + ((end - start) / l) * l;
  for (; t < vend; t += l) {
    const o = <usize>t * size;
    let x = v128.load(a + o);
    if (op == RECIPROCAL) {
      v128.store(out + o, v128.div<T>(one, x));
      continue;
    }
    if (op == ABS) x = v128.abs<T>(x);
    v128.store(out + o, v128.add<T>(v128.mul<T>(x, f), s));
  }
  for (; t < end; t++) {
    const o = <usize>t * size;
    let x = load<T>(a + o);
    if (op == RECIPROCAL) {
      store<T>(out + o, <T>1 / x);
      continue;
    }
    if (op == ABS) x = <T>abs<T>(x);
    store<T>(out + o, x * <T>factor + <T>shift);
  }
}
export function mapF64(a: usize, out: usize, factor: f64, shift: f64, op: i32, start: i32, end: i32): void {
  mapRange<f64>(a, out, factor, shift, op, start, end);
}
export function mapF32(a: usize, out: usize, factor: f64, shift: f64, op: i32, start: i32, end: i32): void {
  mapRange<f32>(a, out, factor, shift, op, start, end);
}

// ---------- row-wise kernels over rows [start, end) ----------

/** out_i = s_i·a_i. */
function scaleRowsRange<T>(a: usize, s: usize, out: usize, cols: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  for (let i = start; i < end; i++) mapRange<T>(a + <usize>i * cols * size, out + <usize>i * cols * size, <f64>load<T>(s + <usize>i * size), 0, AFFINE, 0, cols);
}
export function scaleRowsF64(a: usize, s: usize, out: usize, cols: i32, start: i32, end: i32): void {
  scaleRowsRange<f64>(a, s, out, cols, start, end);
}
export function scaleRowsF32(a: usize, s: usize, out: usize, cols: i32, start: i32, end: i32): void {
  scaleRowsRange<f32>(a, s, out, cols, start, end);
}

/** out_i = Σ_j a_ij, accumulated in float64. */
function rowSumsRange<T>(a: usize, out: usize, cols: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  for (let i = start; i < end; i++) {
    const row = a + <usize>i * cols * size;
    let s: f64 = 0;
    for (let j = 0; j < cols; j++) s += <f64>load<T>(row + <usize>j * size);
    store<T>(out + <usize>i * size, <T>s);
  }
}
export function rowSumsF64(a: usize, out: usize, cols: i32, start: i32, end: i32): void {
  rowSumsRange<f64>(a, out, cols, start, end);
}
export function rowSumsF32(a: usize, out: usize, cols: i32, start: i32, end: i32): void {
  rowSumsRange<f32>(a, out, cols, start, end);
}

/** out_i = max_j a_ij (−Infinity for no columns; a NaN wins, as wasm's max gives). */
function rowMaxRange<T>(a: usize, out: usize, cols: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  for (let i = start; i < end; i++) {
    const row = a + <usize>i * cols * size;
    let best: T = <T>-Infinity;
    for (let j = 0; j < cols; j++) best = max<T>(best, load<T>(row + <usize>j * size));
    store<T>(out + <usize>i * size, best);
  }
}
export function rowMaxF64(a: usize, out: usize, cols: i32, start: i32, end: i32): void {
  rowMaxRange<f64>(a, out, cols, start, end);
}
export function rowMaxF32(a: usize, out: usize, cols: i32, start: i32, end: i32): void {
  rowMaxRange<f32>(a, out, cols, start, end);
}

/** out (cols, zeroed by the host) += Σ_{i ∈ [start, end)} a_i: columns are summed in row order by one thread. */
function colSumsRange<T>(a: usize, out: usize, cols: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  for (let i = start; i < end; i++) zipRange<T>(out, a + <usize>i * cols * size, out, 0, 0, cols);
}
export function colSumsF64(a: usize, out: usize, cols: i32, start: i32, end: i32): void {
  colSumsRange<f64>(a, out, cols, start, end);
}
export function colSumsF32(a: usize, out: usize, cols: i32, start: i32, end: i32): void {
  colSumsRange<f32>(a, out, cols, start, end);
}

/** The lower (j ≤ i + offset) or upper (j ≥ i + offset) triangle of a, the rest 0. */
function triangleRange<T>(a: usize, out: usize, cols: i32, lower: i32, offset: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  for (let i = start; i < end; i++) {
    const row = <usize>i * cols * size;
    const diagonal = i + offset;
    for (let j = 0; j < cols; j++) store<T>(out + row + <usize>j * size, (lower ? j <= diagonal : j >= diagonal) ? load<T>(a + row + <usize>j * size) : <T>0);
  }
}
export function triangleF64(a: usize, out: usize, cols: i32, lower: i32, offset: i32, start: i32, end: i32): void {
  triangleRange<f64>(a, out, cols, lower, offset, start, end);
}
export function triangleF32(a: usize, out: usize, cols: i32, lower: i32, offset: i32, start: i32, end: i32): void {
  triangleRange<f32>(a, out, cols, lower, offset, start, end);
}

/** Row i of out is a_i ⊗ b_i (ca·cb entries). */
function faceSplitRange<T>(a: usize, b: usize, out: usize, ca: i32, cb: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  for (let i = start; i < end; i++) {
    const ai = a + <usize>i * ca * size;
    const bi = b + <usize>i * cb * size;
    const oi = out + <usize>i * ca * cb * size;
    for (let l = 0; l < ca; l++) mapRange<T>(bi, oi + <usize>l * cb * size, <f64>load<T>(ai + <usize>l * size), 0, AFFINE, 0, cb);
  }
}
export function faceSplitF64(a: usize, b: usize, out: usize, ca: i32, cb: i32, start: i32, end: i32): void {
  faceSplitRange<f64>(a, b, out, ca, cb, start, end);
}
export function faceSplitF32(a: usize, b: usize, out: usize, ca: i32, cb: i32, start: i32, end: i32): void {
  faceSplitRange<f32>(a, b, out, ca, cb, start, end);
}

/** out_ij = Σ_l w_il·blocks_i,(l·n+j) for w (rows×d), blocks (rows×d·n). */
function faceSplitReduceRange<T>(w: usize, blocks: usize, out: usize, d: i32, n: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  const l4 = lanes<T>();
  for (let i = start; i < end; i++) {
    const oi = out + <usize>i * n * size;
    memory.fill(oi, 0, <usize>n * size);
    const bi = blocks + <usize>i * d * n * size;
    for (let l = 0; l < d; l++) {
      const x = v128.splat<T>(load<T>(w + (<usize>i * d + l) * size));
      const src = bi + <usize>l * n * size;
      let j = 0;
      for (; j + l4 <= n; j += l4) v128.store(oi + <usize>j * size, v128.add<T>(v128.load(oi + <usize>j * size), v128.mul<T>(x, v128.load(src + <usize>j * size))));
      const xs = load<T>(w + (<usize>i * d + l) * size);
      for (; j < n; j++) store<T>(oi + <usize>j * size, load<T>(oi + <usize>j * size) + xs * load<T>(src + <usize>j * size));
    }
  }
}
export function faceSplitReduceF64(w: usize, blocks: usize, out: usize, d: i32, n: i32, start: i32, end: i32): void {
  faceSplitReduceRange<f64>(w, blocks, out, d, n, start, end);
}
export function faceSplitReduceF32(w: usize, blocks: usize, out: usize, d: i32, n: i32, start: i32, end: i32): void {
  faceSplitReduceRange<f32>(w, blocks, out, d, n, start, end);
}

// ---------- polynomial features from a product tree (parents, variables: i32; weights: f64) ----------

/** Row i of out (k columns) holds weights[a]·m_a(x_i), m_a = m_parent(a)·x_variable(a), m_0 = 1; computed in float64. */
function productFeaturesRange<T>(x: usize, parents: usize, variables: usize, weights: usize, out: usize, d: i32, k: i32, scratch: usize, start: i32, end: i32): void {
  const size = sizeof<T>();
  for (let i = start; i < end; i++) {
    const xi = x + <usize>i * d * size;
    const oi = out + <usize>i * k * size;
    store<f64>(scratch, 1);
    for (let a = 1; a < k; a++) {
      const m = load<f64>(scratch + (<usize>load<i32>(parents + <usize>a * 4) << 3)) * <f64>load<T>(xi + <usize>load<i32>(variables + <usize>a * 4) * size);
      store<f64>(scratch + (<usize>a << 3), m);
    }
    for (let a = 0; a < k; a++) store<T>(oi + <usize>a * size, <T>(load<f64>(weights + (<usize>a << 3)) * load<f64>(scratch + (<usize>a << 3))));
  }
}
export function productFeaturesF64(x: usize, parents: usize, variables: usize, weights: usize, out: usize, d: i32, k: i32, scratch: usize, start: i32, end: i32): void {
  productFeaturesRange<f64>(x, parents, variables, weights, out, d, k, scratch, start, end);
}
export function productFeaturesF32(x: usize, parents: usize, variables: usize, weights: usize, out: usize, d: i32, k: i32, scratch: usize, start: i32, end: i32): void {
  productFeaturesRange<f32>(x, parents, variables, weights, out, d, k, scratch, start, end);
}

/**
 * ∂ℓ/∂x_i from ∂ℓ/∂Φ_i by reverse mode over the tree: ∂m_parent += ∂m_a·x_v, ∂x_v += ∂m_a·m_parent.
 * `scratch` holds 2k + d float64 per thread (monomials, their gradients, the input gradient).
 */
function productFeaturesBackwardRange<T>(x: usize, parents: usize, variables: usize, weights: usize, gradient: usize, out: usize, d: i32, k: i32, scratch: usize, start: i32, end: i32): void {
  const size = sizeof<T>();
  const monomials = scratch;
  const monomialGradient = scratch + (<usize>k << 3);
  const variableGradient = scratch + (<usize>(2 * k) << 3);
  for (let i = start; i < end; i++) {
    const xi = x + <usize>i * d * size;
    const gi = gradient + <usize>i * k * size;
    store<f64>(monomials, 1);
    for (let a = 1; a < k; a++) {
      store<f64>(monomials + (<usize>a << 3), load<f64>(monomials + (<usize>load<i32>(parents + <usize>a * 4) << 3)) * <f64>load<T>(xi + <usize>load<i32>(variables + <usize>a * 4) * size));
    }
    for (let a = 0; a < k; a++) store<f64>(monomialGradient + (<usize>a << 3), load<f64>(weights + (<usize>a << 3)) * <f64>load<T>(gi + <usize>a * size));
    memory.fill(variableGradient, 0, <usize>d << 3);
    for (let a = k - 1; a >= 1; a--) {
      const g = load<f64>(monomialGradient + (<usize>a << 3));
      const parent = <usize>load<i32>(parents + <usize>a * 4);
      const variable = <usize>load<i32>(variables + <usize>a * 4);
      const pg = monomialGradient + (parent << 3);
      store<f64>(pg, load<f64>(pg) + g * <f64>load<T>(xi + variable * size));
      const vg = variableGradient + (variable << 3);
      store<f64>(vg, load<f64>(vg) + g * load<f64>(monomials + (parent << 3)));
    }
    for (let v = 0; v < d; v++) store<T>(out + (<usize>i * d + v) * size, <T>load<f64>(variableGradient + (<usize>v << 3)));
  }
}
export function productFeaturesBackwardF64(x: usize, parents: usize, variables: usize, weights: usize, gradient: usize, out: usize, d: i32, k: i32, scratch: usize, start: i32, end: i32): void {
  productFeaturesBackwardRange<f64>(x, parents, variables, weights, gradient, out, d, k, scratch, start, end);
}
export function productFeaturesBackwardF32(x: usize, parents: usize, variables: usize, weights: usize, gradient: usize, out: usize, d: i32, k: i32, scratch: usize, start: i32, end: i32): void {
  productFeaturesBackwardRange<f32>(x, parents, variables, weights, gradient, out, d, k, scratch, start, end);
}

// ---------- attention ----------

/**
 * Rows [start, end) of P = softmax(β·Q·Kᵀ), with Kᵀ given (d×L_k, so the scores are a matmul of
 * rows): scores, the row maximum subtracted, exp, normalized; with causalStart ≥ 0, row r keeps
 * keys j ≤ causalStart + r and the rest are 0.
 */
function softmaxRowsRange<T>(q: usize, keysT: usize, out: usize, cols: i32, d: i32, beta: f64, causalStart: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  matmulRows<T>(q, <usize>d * sizeof<T>(), sizeof<T>(), keysT, out, cols, d, start, end);
  for (let r = start; r < end; r++) {
    const row = out + <usize>r * cols * size;
    const allowed = causalStart < 0 ? cols : min(cols, causalStart + r + 1);
    let max = -Infinity;
    for (let j = 0; j < allowed; j++) max = Math.max(max, beta * <f64>load<T>(row + <usize>j * size));
    let sum: f64 = 0;
    for (let j = 0; j < allowed; j++) {
      const e = Math.exp(beta * <f64>load<T>(row + <usize>j * size) - max);
      store<T>(row + <usize>j * size, <T>e);
      sum += e;
    }
    mapRange<T>(row, row, 1 / sum, 0, AFFINE, 0, allowed);
    if (allowed < cols) memory.fill(row + <usize>allowed * size, 0, <usize>(cols - allowed) * size);
  }
}
export function softmaxRowsF64(q: usize, keysT: usize, out: usize, cols: i32, d: i32, beta: f64, causalStart: i32, start: i32, end: i32): void {
  softmaxRowsRange<f64>(q, keysT, out, cols, d, beta, causalStart, start, end);
}
export function softmaxRowsF32(q: usize, keysT: usize, out: usize, cols: i32, d: i32, beta: f64, causalStart: i32, start: i32, end: i32): void {
  softmaxRowsRange<f32>(q, keysT, out, cols, d, beta, causalStart, start, end);
}

/** Rows [start, end) of P ∘ (C·Vᵀ − r·1ᵀ), with Vᵀ given (d×L_k). */
function scoresGradientRange<T>(p: usize, c: usize, valuesT: usize, dots: usize, out: usize, cols: i32, d: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  const l = lanes<T>();
  matmulRows<T>(c, <usize>d * sizeof<T>(), sizeof<T>(), valuesT, out, cols, d, start, end);
  for (let r = start; r < end; r++) {
    const row = <usize>r * cols * size;
    const dot = load<T>(dots + <usize>r * size);
    const dv = v128.splat<T>(dot);
    let j = 0;
    for (; j + l <= cols; j += l) {
      const o = row + <usize>j * size;
      v128.store(out + o, v128.mul<T>(v128.load(p + o), v128.sub<T>(v128.load(out + o), dv)));
    }
    for (; j < cols; j++) {
      const o = row + <usize>j * size;
      store<T>(out + o, load<T>(p + o) * (load<T>(out + o) - dot));
    }
  }
}
export function scoresGradientF64(p: usize, c: usize, valuesT: usize, dots: usize, out: usize, cols: i32, d: i32, start: i32, end: i32): void {
  scoresGradientRange<f64>(p, c, valuesT, dots, out, cols, d, start, end);
}
export function scoresGradientF32(p: usize, c: usize, valuesT: usize, dots: usize, out: usize, cols: i32, d: i32, start: i32, end: i32): void {
  scoresGradientRange<f32>(p, c, valuesT, dots, out, cols, d, start, end);
}

/** The end of this module's static data (the exp tables): the host keeps its own data above it. */
export function staticEnd(): usize {
  return __heap_base;
}
