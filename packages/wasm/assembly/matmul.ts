// The matmul kernels: rows [start, end) of C = op(A)·B, B k×n, op(A) m×k, row-major, in float64
// (f64x2) and float32 (f32x4), plain 128-bit SIMD only (no relaxed SIMD: Node 20 and browsers run
// it without flags, and the results do not depend on the engine's choice of fused multiply-add).
//
// Laid out as a GEMM (Goto/BLIS): for each NC-column, KC-deep panel of B, the thread copies the
// panel into its scratch as contiguous NR-column strips (zero-padded at the right edge), then runs
// an MR×NR register-blocked microkernel over its rows and the strips. The copy is what makes B's
// reads sequential: read in place, the KC rows of a strip lie n·size bytes apart, which at n = 1,024
// puts them all in the same few L1 sets and defeats the prefetcher. A is read in place, one value
// per row and step broadcast straight from memory (load_splat): A·B steps along a row of A, Aᵀ·B
// down a column, so no transpose of A is ever made.

/** Values in one v128. */
@inline function lanes<T>(): i32 {
  return 16 / sizeof<T>();
}

/**
 * Rows of the register block: MR rows × 2 vectors = 8 accumulators, 2 of B and 1 of A fit x64's 16
 * vector registers. Six rows (12 accumulators) measured 40 % slower in V8: it spills.
 */
const MR = 4;
/** Columns of the register block: two vectors (8 float32 or 4 float64). */
@inline function nr<T>(): i32 {
  return 2 * lanes<T>();
}
/** Depth of a panel of B: a KC×NR strip (16 KiB in float64) stays in L1 while the microkernel sweeps it. */
const KC = 256;
/** Columns of a panel of B: the KC×NC panel (512 KiB in float64, 256 KiB in float32) stays in L2 across all of a thread's rows. */
const NC = 256;

/**
 * Bytes of scratch one thread needs for a matmul of `size`-byte values with n columns and inner
 * dimension k: one MR×NR edge tile, then the packed panel of B (at most KC×NC), so a small product
 * asks for little.
 */
export function matmulScratchBytes(size: i32, n: i32, k: i32): i32 {
  const w = 32 / size;
  const cols = (min(n, NC) + w - 1) / w * w;
  return (MR * w + min(k, KC) * cols) * size;
}

/**
 * Copies rows [p0, p1) and columns [j0, j1) of B (row stride `rowB` bytes) to `dst` as strips of
 * NR columns: strip s holds, for each row p, columns j0 + s·NR … + NR − 1 side by side, zero past j1.
 */
@inline function packB<T>(b: usize, rowB: usize, p0: i32, p1: i32, j0: i32, j1: i32, dst: usize): void {
  const size = sizeof<T>();
  const w = nr<T>();
  let out = dst;
  for (let j = j0; j < j1; j += w) {
    const cols = min(w, j1 - j);
    let src = b + <usize>p0 * rowB + <usize>j * size;
    if (cols == w) {
      for (let p = p0; p < p1; p++) {
        v128.store(out, v128.load(src));
        v128.store(out, v128.load(src, 16), 16);
        out += 32;
        src += rowB;
      }
    } else {
      for (let p = p0; p < p1; p++) {
        v128.store(out, v128.splat<T>(0));
        v128.store(out, v128.splat<T>(0), 16);
        for (let q = 0; q < cols; q++) store<T>(out + <usize>q * size, load<T>(src + <usize>q * size));
        out += 32;
        src += rowB;
      }
    }
  }
}

/** Writes (or adds, unless `first`) one row of a register block: NR values at `c`. */
@inline function storeRow<T>(c: usize, s0: v128, s1: v128, first: bool): void {
  v128.store(c, first ? s0 : v128.add<T>(s0, v128.load(c)));
  v128.store(c, first ? s1 : v128.add<T>(s1, v128.load(c, 16)), 16);
}

/**
 * The microkernel: C[rows × cols] (=, or += unless `first`) Σ_p op(A)_row,p · B_p over `depth`
 * steps. Row r of op(A) starts at a + r·rowStep and steps by innerStep; B's strip starts at `bp`
 * and steps by bStep (32 bytes packed, n·size in place). Rows past `rows` repeat the last real
 * row (their results are dropped), so a short block never reads outside A. Whole strips store
 * straight to C; a strip cut by C's right edge goes through `tile` (MR×NR values) and copies its
 * real columns.
 */
@inline function block<T>(a: usize, rowStep: usize, innerStep: usize, bp: usize, bStep: usize, depth: i32, c: usize, rowC: usize, rows: i32, cols: i32, first: bool, tile: usize): void {
  const a0 = a;
  const a1 = rows > 1 ? a0 + rowStep : a0;
  const a2 = rows > 2 ? a1 + rowStep : a1;
  const a3 = rows > 3 ? a2 + rowStep : a2;
  let s00 = v128.splat<T>(0);
  let s01 = v128.splat<T>(0);
  let s10 = v128.splat<T>(0);
  let s11 = v128.splat<T>(0);
  let s20 = v128.splat<T>(0);
  let s21 = v128.splat<T>(0);
  let s30 = v128.splat<T>(0);
  let s31 = v128.splat<T>(0);
  let o: usize = 0;
  let bq = bp;
  for (let p = 0; p < depth; p++) {
    const b0 = v128.load(bq);
    const b1 = v128.load(bq, 16);
    let x = v128.load_splat<T>(a0 + o);
    s00 = v128.add<T>(s00, v128.mul<T>(x, b0));
    s01 = v128.add<T>(s01, v128.mul<T>(x, b1));
    x = v128.load_splat<T>(a1 + o);
    s10 = v128.add<T>(s10, v128.mul<T>(x, b0));
    s11 = v128.add<T>(s11, v128.mul<T>(x, b1));
    x = v128.load_splat<T>(a2 + o);
    s20 = v128.add<T>(s20, v128.mul<T>(x, b0));
    s21 = v128.add<T>(s21, v128.mul<T>(x, b1));
    x = v128.load_splat<T>(a3 + o);
    s30 = v128.add<T>(s30, v128.mul<T>(x, b0));
    s31 = v128.add<T>(s31, v128.mul<T>(x, b1));
    o += innerStep;
    bq += bStep;
  }
  if (cols == nr<T>()) {
    storeRow<T>(c, s00, s01, first);
    if (rows > 1) storeRow<T>(c + rowC, s10, s11, first);
    if (rows > 2) storeRow<T>(c + 2 * rowC, s20, s21, first);
    if (rows > 3) storeRow<T>(c + 3 * rowC, s30, s31, first);
    return;
  }
  v128.store(tile, s00);
  v128.store(tile, s01, 16);
  v128.store(tile, s10, 32);
  v128.store(tile, s11, 48);
  v128.store(tile, s20, 64);
  v128.store(tile, s21, 80);
  v128.store(tile, s30, 96);
  v128.store(tile, s31, 112);
  const size = sizeof<T>();
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const at = c + <usize>r * rowC + <usize>j * size;
      const v = load<T>(tile + <usize>(r * 32) + <usize>j * size);
      store<T>(at, first ? v : load<T>(at) + v);
    }
  }
}

/**
 * Rows [start, end) of C = op(A)·B with B packed panel by panel into `scratch`
 * ({@link matmulScratchBytes} bytes, this thread's own). op(A)_ip sits at a + i·rowStep + p·innerStep.
 */
function matmulPacked<T>(a: usize, rowStep: usize, innerStep: usize, b: usize, c: usize, n: i32, k: i32, scratch: usize, start: i32, end: i32): void {
  const size = sizeof<T>();
  const w = nr<T>();
  const rowC = <usize>n * size;
  // With no inner dimension no panel runs: C is all zeros.
  if (k == 0) {
    memory.fill(c + <usize>start * rowC, 0, <usize>(end - start) * rowC);
    return;
  }
  const tile = scratch;
  const panel = scratch + <usize>(MR * w) * size;
  for (let j0 = 0; j0 < n; j0 += NC) {
    const j1 = min(j0 + NC, n);
    for (let p0 = 0; p0 < k; p0 += KC) {
      const p1 = min(p0 + KC, k);
      const depth = p1 - p0;
      const strip = <usize>depth * 32;
      packB<T>(b, rowC, p0, p1, j0, j1, panel);
      for (let i = start; i < end; i += MR) {
        const rows = min(MR, end - i);
        const ai = a + <usize>i * rowStep + <usize>p0 * innerStep;
        const ci = c + <usize>i * rowC;
        let bp = panel;
        for (let j = j0; j < j1; j += w) {
          block<T>(ai, rowStep, innerStep, bp, 32, depth, ci + <usize>j * size, rowC, rows, min(w, j1 - j), p0 == 0, tile);
          bp += strip;
        }
      }
    }
  }
}

/**
 * Rows [start, end) of C = op(A)·B with B read in place (no scratch): for the attention kernels,
 * whose inner dimension is a head's width (B has few rows, so its strips stay in cache unpacked).
 * Columns past the last whole NR-column strip are summed one at a time.
 */
export function matmulRows<T>(a: usize, rowStep: usize, innerStep: usize, b: usize, c: usize, n: i32, k: i32, start: i32, end: i32): void {
  const size = sizeof<T>();
  const w = nr<T>();
  const whole = n - (n % w);
  const rowC = <usize>n * size;
  for (let i = start; i < end; i += MR) {
    const rows = min(MR, end - i);
    const ai = a + <usize>i * rowStep;
    const ci = c + <usize>i * rowC;
    // Every block here is a whole strip, so `block` never needs an edge tile.
    for (let j = 0; j < whole; j += w) block<T>(ai, rowStep, innerStep, b + <usize>j * size, rowC, k, ci + <usize>j * size, rowC, rows, w, true, 0);
  }
  for (let i = start; i < end; i++) {
    const ai = a + <usize>i * rowStep;
    const ci = c + <usize>i * rowC;
    for (let j = whole; j < n; j++) {
      let s: T = <T>0;
      for (let p = 0; p < k; p++) s += load<T>(ai + <usize>p * innerStep) * load<T>(b + (<usize>p * n + j) * size);
      store<T>(ci + <usize>j * size, s);
    }
  }
}

/** Rows [start, end) of A·B, A m×k; `scratch`: this thread's {@link matmulScratchBytes}(8, n, k) bytes. */
export function matmulF64(a: usize, b: usize, c: usize, n: i32, k: i32, scratch: usize, start: i32, end: i32): void {
  matmulPacked<f64>(a, <usize>k * 8, 8, b, c, n, k, scratch, start, end);
}
/** Rows [start, end) of A·B, A m×k; `scratch`: this thread's {@link matmulScratchBytes}(4, n, k) bytes. */
export function matmulF32(a: usize, b: usize, c: usize, n: i32, k: i32, scratch: usize, start: i32, end: i32): void {
  matmulPacked<f32>(a, <usize>k * 4, 4, b, c, n, k, scratch, start, end);
}

/** Rows [start, end) of Aᵀ·B, A k×m, read by columns in place; `scratch` as for matmulF64/F32. */
export function matmulTNF64(a: usize, b: usize, c: usize, m: i32, n: i32, k: i32, scratch: usize, start: i32, end: i32): void {
  matmulPacked<f64>(a, 8, <usize>m * 8, b, c, n, k, scratch, start, end);
}
/** Rows [start, end) of Aᵀ·B, A k×m, read by columns in place; `scratch` as for matmulF64/F32. */
export function matmulTNF32(a: usize, b: usize, c: usize, m: i32, n: i32, k: i32, scratch: usize, start: i32, end: i32): void {
  matmulPacked<f32>(a, 4, <usize>m * 4, b, c, n, k, scratch, start, end);
}
