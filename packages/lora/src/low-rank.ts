import { fused, type ProductTree } from '@almora/kernels';
import type { Backend, DeviceMatrix } from '@almora/tensor';
import { BackendError, scoped } from '@almora/tensor';

/**
 * An L×m matrix available in row blocks. A face-splitting product A⊘B is L×(k·d), and the
 * polynomial features φ(X) are L×k — too large to hold at long L — so they can be produced block
 * by block and never stored whole.
 */
export interface RowFactor<T extends DeviceMatrix> {
  /** Number of rows L. */
  rows: number;
  /** Number of columns m. */
  cols: number;
  /** Rows per block when it is produced block by block. */
  blockRows: number;
  /** Rows [start, end), made through `backend` (the caller releases them). */
  block(backend: Backend<T>, start: number, end: number): T;
  /** The whole matrix, when it is stored: then one product replaces the blocks. */
  whole?: T;
}

const FULL_BLOCK = 512;
const CAUSAL_BLOCK = 64;
/** Bytes a block of streamed features aims at: large enough that a block is one big product, small enough to stay in cache-sized pieces. */
const FEATURE_BLOCK_BYTES = 4 * 2 ** 20;

/** Rows per block of streamed features of `cols` columns. */
export function featureBlockRows(cols: number, bytesPerEntry: number): number {
  return Math.max(FULL_BLOCK, Math.floor(FEATURE_BLOCK_BYTES / (bytesPerEntry * cols)));
}

/** A stored matrix as a {@link RowFactor}. */
export function stored<T extends DeviceMatrix>(m: T): RowFactor<T> {
  return { rows: m.rows, cols: m.cols, blockRows: FULL_BLOCK, block: (backend, start, end) => backend.sliceRows(m, start, end), whole: m };
}

/** The stored matrix of a factor that must be stored (a causal or chained head's features). */
export function wholeOf<T extends DeviceMatrix>(factor: RowFactor<T>): T {
  if (!factor.whole) throw new BackendError('internal: this product needs a stored factor, and got one made block by block');
  return factor.whole;
}

/** A ⊘ B as a {@link RowFactor}: row i is A_i ⊗ B_i, built on demand. */
export function faceSplitFactor<T extends DeviceMatrix>(a: T, b: T): RowFactor<T> {
  return {
    rows: a.rows,
    cols: a.cols * b.cols,
    blockRows: FULL_BLOCK,
    block: (backend, start, end) => fused(backend).faceSplit(backend.sliceRows(a, start, end), backend.sliceRows(b, start, end)),
  };
}

/**
 * φ(X) from a product tree as a {@link RowFactor} made block by block: O(block·k) memory instead
 * of O(L·k), for O(L·k) work per pass, small beside the O(L·k·d) products each pass feeds.
 */
export function featureFactor<T extends DeviceMatrix>(x: T, tree: ProductTree, bytesPerEntry: number): RowFactor<T> {
  const cols = tree.parents.length;
  return {
    rows: x.rows,
    cols,
    blockRows: featureBlockRows(cols, bytesPerEntry),
    block: (backend, start, end) => fused(backend).productFeatures(backend.sliceRows(x, start, end), tree),
  };
}

/**
 * (A·Bᵀ)·M — or, when causal, (tril(A·Bᵀ))·M — in O(L·m·n) without forming the L×L matrix.
 * Non-causal: A·(Bᵀ·M) — one product each for stored factors; over row blocks for a face-split
 * factor, which is never whole.
 * Causal: a running prefix state Σ_{j<block} B_jᵀM_j plus the in-block lower triangle, so row i
 * sees only j ≤ i.
 */
export function lowRankApply<T extends DeviceMatrix>(backend: Backend<T>, a: RowFactor<T>, b: RowFactor<T>, m: T, causal: boolean): T {
  return lowRankApplyEach(backend, a, b, [m], causal)[0];
}

/**
 * {@link lowRankApply} for several M at once: unmasked, each factor's blocks are made once for all
 * of them (one pass over B for every Bᵀ·M, one over A for every A·(Bᵀ·M)).
 */
export function lowRankApplyEach<T extends DeviceMatrix>(backend: Backend<T>, a: RowFactor<T>, b: RowFactor<T>, ms: readonly T[], causal: boolean): T[] {
  if (causal) return ms.map((m) => causalApply(backend, a, b, m, 'lower'));
  const states = blockedProducts(backend, b, ms);
  try {
    if (a.whole) return states.map((state) => backend.matmul(a.whole!, state));
    const outs = ms.map((m) => backend.zeros(a.rows, m.cols, m));
    const scope = scoped(backend);
    for (let s = 0; s < a.rows; s += a.blockRows) {
      const e = Math.min(s + a.blockRows, a.rows);
      const block = a.block(scope, s, e);
      states.forEach((state, i) => backend.accumulate(outs[i], scope.matmul(block, state), s));
      scope.releaseAll();
    }
    return outs;
  } finally {
    for (const state of states) backend.dispose(state);
  }
}

/** Bᵀ·M for each M, from one pass over B's blocks: each block is made once for all of them. */
export function blockedProducts<T extends DeviceMatrix>(backend: Backend<T>, b: RowFactor<T>, ms: readonly T[]): T[] {
  if (b.whole) return ms.map((m) => backend.matmul(b.whole!, m, { transposeA: true }));
  const states = ms.map((m) => backend.zeros(b.cols, m.cols, m));
  const scope = scoped(backend);
  for (let s = 0; s < b.rows; s += b.blockRows) {
    const e = Math.min(s + b.blockRows, b.rows);
    const block = b.block(scope, s, e);
    ms.forEach((m, i) => backend.accumulate(states[i], scope.matmul(block, scope.sliceRows(m, s, e), { transposeA: true })));
    scope.releaseAll();
  }
  return states;
}

/**
 * (A·Bᵀ)ᵀ·M — or, when causal, (tril(A·Bᵀ))ᵀ·M — in O(L·m·n): B·(Aᵀ·M), or with a suffix state
 * Σ_{i>block} A_iᵀM_i so that row j sees only i ≥ j.
 */
export function lowRankApplyTransposed<T extends DeviceMatrix>(backend: Backend<T>, a: RowFactor<T>, b: RowFactor<T>, m: T, causal: boolean): T {
  return lowRankApplyTransposedEach(backend, a, b, [m], causal)[0];
}

/** {@link lowRankApplyTransposed} for several M at once, each factor's blocks made once when unmasked. */
export function lowRankApplyTransposedEach<T extends DeviceMatrix>(
  backend: Backend<T>,
  a: RowFactor<T>,
  b: RowFactor<T>,
  ms: readonly T[],
  causal: boolean,
): T[] {
  // Without a mask, (A·Bᵀ)ᵀ·M = (B·Aᵀ)·M.
  return causal ? ms.map((m) => causalApply(backend, b, a, m, 'upper')) : lowRankApplyEach(backend, b, a, ms, false);
}

/**
 * tril(L·Rᵀ)·M (keep 'lower', blocks in order, a prefix state) or triu(L·Rᵀ)·M (keep 'upper',
 * blocks in reverse, a suffix state): each block adds L_b·state plus its own masked L_b·R_bᵀ·M_b,
 * then folds R_bᵀ·M_b into the state. O(L·m·n) plus O(L·block·n) for the in-block triangles.
 */
function causalApply<T extends DeviceMatrix>(backend: Backend<T>, left: RowFactor<T>, right: RowFactor<T>, m: T, keep: 'lower' | 'upper'): T {
  const length = left.rows;
  const out = backend.zeros(length, m.cols, m);
  const state = backend.zeros(right.cols, m.cols, m);
  const scope = scoped(backend);
  const starts = Array.from({ length: Math.ceil(length / CAUSAL_BLOCK) }, (_, i) => i * CAUSAL_BLOCK);
  if (keep === 'upper') starts.reverse();
  for (const s of starts) {
    const e = Math.min(s + CAUSAL_BLOCK, length);
    const lb = left.block(scope, s, e);
    const rb = right.block(scope, s, e);
    const mb = scope.sliceRows(m, s, e);
    const local = scope.triangle(scope.matmul(lb, rb, { transposeB: true }), keep);
    backend.accumulate(out, scope.matmul(lb, state), s);
    backend.accumulate(out, scope.matmul(local, mb), s);
    backend.accumulate(state, scope.matmul(rb, mb, { transposeA: true }));
    scope.releaseAll();
  }
  backend.dispose(state);
  return out;
}

/**
 * (A⊘C)·(B⊘V)ᵀ·M — or, with `transposed`, ((A⊘C)·(B⊘V)ᵀ)ᵀ·M; lower-triangular when causal — for
 * A, B of k columns and C, V of d columns. Without a mask the L×(k·d) face-splitting factors are
 * never formed: with T_l = Bᵀ·diag(V_{:,l})·M (k×n), row i is Σ_l C_il·(A·T_l)_i. All d blocks go
 * through two matmuls, Bᵀ·(V⊘M) and A·[T_l]_l, so A and B are packed once — the same O(L·k·d·n)
 * work as the factored product. With a mask it goes block by block through `lowRankApply`.
 */
export function faceSplitApply<T extends DeviceMatrix>(backend: Backend<T>, left: [T, T], right: [T, T], m: T, causal: boolean, transposed: boolean): T {
  if (causal) {
    const factors: [RowFactor<T>, RowFactor<T>] = [faceSplitFactor(...left), faceSplitFactor(...right)];
    return transposed ? lowRankApplyTransposed(backend, ...factors, m, true) : lowRankApply(backend, ...factors, m, true);
  }
  const [a, c] = transposed ? right : left;
  const [b, v] = transposed ? left : right;
  const scope = scoped(backend);
  // Row i of V⊘M is [V_i0·M_i | … | V_i,d−1·M_i]: the d blocks diag(V_{:,l})·M side by side.
  const blocks = scope.matmul(a, scope.matmul(b, fused(scope).faceSplit(v, m), { transposeA: true }));
  const out = fused(backend).faceSplitReduce(c, blocks);
  scope.releaseAll();
  return out;
}
