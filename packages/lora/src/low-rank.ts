import { addInto, faceSplit, matmul, type Matrix, scaleRows, sliceRows, zeros } from '@almora/tensor';

/**
 * An L×m matrix available in row blocks. A face-splitting product A⊘B is L×(k·d) — too large to
 * hold at long L — so it is produced block by block and never stored whole.
 */
export interface RowFactor {
  rows: number;
  cols: number;
  block(start: number, end: number): Matrix;
}

/** A stored matrix as a {@link RowFactor}. */
export function stored(m: Matrix): RowFactor {
  return { rows: m.rows, cols: m.cols, block: (start, end) => sliceRows(m, start, end) };
}

/** (diag(scale)·A) ⊘ B as a {@link RowFactor}: row i is scale_i·(A_i ⊗ B_i), built on demand. */
export function faceSplitFactor(a: Matrix, b: Matrix, rowScale?: Float64Array): RowFactor {
  return {
    rows: a.rows,
    cols: a.cols * b.cols,
    block: (start, end) => {
      const left = sliceRows(a, start, end);
      return faceSplit(rowScale ? scaleRows(left, rowScale.subarray(start, end)) : left, sliceRows(b, start, end));
    },
  };
}

const FULL_BLOCK = 512;
const CAUSAL_BLOCK = 64;

function maskAbove(m: Matrix, keepLower: boolean): void {
  // In-block causal mask: keep entries with column ≤ row (lower) or column ≥ row (upper).
  for (let i = 0; i < m.rows; i++) {
    for (let j = 0; j < m.cols; j++) if (keepLower ? j > i : j < i) m.data[i * m.cols + j] = 0;
  }
}

/**
 * (A·Bᵀ)·M — or, when causal, (tril(A·Bᵀ))·M — in O(L·m·n) without forming the L×L matrix.
 * Non-causal: A·(Bᵀ·M). Causal: a running prefix state Σ_{j<block} B_jᵀM_j plus the in-block
 * lower triangle, so row i sees only j ≤ i.
 */
export function lowRankApply(a: RowFactor, b: RowFactor, m: Matrix, causal: boolean): Matrix {
  const length = a.rows;
  const out = zeros(length, m.cols, { dtype: m.dtype });
  const state = zeros(b.cols, m.cols, { dtype: m.dtype });
  if (!causal) {
    for (let s = 0; s < b.rows; s += FULL_BLOCK) {
      const e = Math.min(s + FULL_BLOCK, b.rows);
      addInto(state, matmul(b.block(s, e), sliceRows(m, s, e), { transposeA: true }));
    }
    for (let s = 0; s < length; s += FULL_BLOCK) {
      const e = Math.min(s + FULL_BLOCK, length);
      addInto(sliceRows(out, s, e), matmul(a.block(s, e), state));
    }
    return out;
  }
  for (let s = 0; s < length; s += CAUSAL_BLOCK) {
    const e = Math.min(s + CAUSAL_BLOCK, length);
    const ab = a.block(s, e);
    const bb = b.block(s, e);
    const mb = sliceRows(m, s, e);
    const local = matmul(ab, bb, { transposeB: true });
    maskAbove(local, true);
    const rows = sliceRows(out, s, e);
    addInto(rows, matmul(ab, state));
    addInto(rows, matmul(local, mb));
    addInto(state, matmul(bb, mb, { transposeA: true }));
  }
  return out;
}

/**
 * (A·Bᵀ)ᵀ·M — or, when causal, (tril(A·Bᵀ))ᵀ·M — in O(L·m·n): B·(Aᵀ·M), or with a suffix state
 * Σ_{i>block} A_iᵀM_i so that row j sees only i ≥ j.
 */
export function lowRankApplyTransposed(a: RowFactor, b: RowFactor, m: Matrix, causal: boolean): Matrix {
  // Without a mask, (A·Bᵀ)ᵀ·M = (B·Aᵀ)·M.
  if (!causal) return lowRankApply(b, a, m, false);
  const length = b.rows;
  const out = zeros(length, m.cols, { dtype: m.dtype });
  const state = zeros(a.cols, m.cols, { dtype: m.dtype });
  const last = Math.floor((length - 1) / CAUSAL_BLOCK) * CAUSAL_BLOCK;
  for (let s = last; s >= 0; s -= CAUSAL_BLOCK) {
    const e = Math.min(s + CAUSAL_BLOCK, length);
    const ab = a.block(s, e);
    const bb = b.block(s, e);
    const mb = sliceRows(m, s, e);
    const local = matmul(bb, ab, { transposeB: true });
    maskAbove(local, false);
    const rows = sliceRows(out, s, e);
    addInto(rows, matmul(bb, state));
    addInto(rows, matmul(local, mb));
    addInto(state, matmul(ab, mb, { transposeA: true }));
  }
  return out;
}

/**
 * (A⊘C)·(B⊘V)ᵀ·M — or, with `transposed`, ((A⊘C)·(B⊘V)ᵀ)ᵀ·M; lower-triangular when causal — for
 * A, B of k columns and C, V of d columns. Without a mask the L×(k·d) face-splitting factors are
 * never formed: with T_l = Bᵀ·diag(V_{:,l})·M (k×n), row i is Σ_l C_il·(A·T_l)_i. All d blocks go
 * through two matmuls, Bᵀ·[diag(V_{:,l})·M]_l and A·[T_l]_l, so A and B are packed once — the same
 * O(L·k·d·n) work as the factored product. With a mask it goes block by block through
 * {@link lowRankApply}.
 */
export function faceSplitApply(left: [Matrix, Matrix], right: [Matrix, Matrix], m: Matrix, causal: boolean, transposed: boolean): Matrix {
  const [a, c] = transposed ? right : left;
  const [b, v] = transposed ? left : right;
  if (causal) {
    const factors: [RowFactor, RowFactor] = [faceSplitFactor(left[0], left[1]), faceSplitFactor(right[0], right[1])];
    return transposed ? lowRankApplyTransposed(...factors, m, true) : lowRankApply(...factors, m, true);
  }
  const d = c.cols;
  const n = m.cols;
  const at = (x: Matrix, i: number, j: number) => x.data[x.offset + i * x.stride + j];
  // [diag(V_{:,0})·M | … | diag(V_{:,d−1})·M], L×(d·n)
  const weighted = zeros(b.rows, d * n, { dtype: m.dtype });
  for (let i = 0; i < b.rows; i++) {
    for (let l = 0; l < d; l++) {
      const scaleBy = at(v, i, l);
      for (let j = 0; j < n; j++) weighted.data[i * d * n + l * n + j] = scaleBy * at(m, i, j);
    }
  }
  const blocks = matmul(a, matmul(b, weighted, { transposeA: true }));
  const out = zeros(a.rows, n, { dtype: m.dtype });
  for (let i = 0; i < a.rows; i++) {
    for (let l = 0; l < d; l++) {
      const weight = at(c, i, l);
      for (let j = 0; j < n; j++) out.data[i * n + j] += weight * blocks.data[i * d * n + l * n + j];
    }
  }
  return out;
}
