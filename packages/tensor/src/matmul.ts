import { ShapeError } from './errors.js';
import { zeros } from './create.js';
import type { Matrix } from './matrix.js';
import { assertSameDType } from './validate.js';

/** Which operands {@link matmul} reads transposed. */
export interface MatmulOptions {
  /** Use Aᵀ in place of A (read transposed, never materialised). */
  transposeA?: boolean;
  /** Use Bᵀ in place of B (read transposed, never materialised). */
  transposeB?: boolean;
  /**
   * Write the result into this contiguous matrix of the result's shape and dtype (overwriting it)
   * instead of allocating one: loops that multiply many same-sized blocks reuse one buffer.
   */
  out?: Matrix;
}

// Cache blocking: a KC×4 panel of B (8 KiB) stays in L1 while the MC×KC block of A (128 KiB)
// streams from L2; NC bounds the packed B block to ~1 MiB. Tuned on the 2-core dev machine.
const KC = 256;
const MC = 64;
const NC = 512;
const MR = 4;
const NR = 4;

let packedA = new Float64Array(MC * KC);
let packedB = new Float64Array(KC * NC);

/** Whether two matrices' elements can share memory (same buffer, intersecting spans). */
function overlaps(x: Matrix, y: Matrix): boolean {
  if (x.size === 0 || y.size === 0 || x.data.buffer !== y.data.buffer) return false;
  const span = (m: Matrix) => {
    const start = m.data.byteOffset + m.offset * m.data.BYTES_PER_ELEMENT;
    return [start, start + ((m.rows - 1) * m.stride + m.cols) * m.data.BYTES_PER_ELEMENT] as const;
  };
  const [xs, xe] = span(x);
  const [ys, ye] = span(y);
  return xs < ye && ys < xe;
}

/**
 * op(A)·op(B), where op transposes when asked: all four forms A·B, Aᵀ·B, A·Bᵀ and Aᵀ·Bᵀ without
 * forming a transpose. Packed, cache-blocked, with a 4×4 register-tiled inner kernel (plain i-j-k
 * loops run ~4× slower in V8). Inputs may be strided views; the result is a fresh contiguous matrix
 * of the operands' dtype. Float32 operands are accumulated in float64 within each 256-deep block of the inner dimension.
 */
export function matmul(a: Matrix, b: Matrix, options: MatmulOptions = {}): Matrix {
  const transposeA = options.transposeA ?? false;
  const transposeB = options.transposeB ?? false;
  assertSameDType(a, b, 'matmul');
  const m = transposeA ? a.cols : a.rows;
  const k = transposeA ? a.rows : a.cols;
  const kB = transposeB ? b.cols : b.rows;
  const n = transposeB ? b.rows : b.cols;
  if (k !== kB) {
    const nameA = transposeA ? 'Aᵀ' : 'A';
    const nameB = transposeB ? 'Bᵀ' : 'B';
    throw new ShapeError(`matmul: ${nameA} is ${m}×${k} and ${nameB} is ${kB}×${n}; inner dimensions ${k} and ${kB} differ`);
  }
  const out = options.out ?? zeros(m, n, { dtype: a.dtype });
  if (options.out) {
    if (out.rows !== m || out.cols !== n || out.dtype !== a.dtype || !out.isContiguous) {
      throw new ShapeError(`matmul: out is ${out.describe()}${out.isContiguous ? '' : ' (strided)'} but the result is a contiguous ${m}×${n} ${a.dtype}`);
    }
    // Zeroing out first would erase an input it shares memory with: compute aside, then copy.
    if (overlaps(out, a) || overlaps(out, b)) {
      out.data.set(matmul(a, b, { transposeA, transposeB }).data, out.offset);
      return out;
    }
    out.data.fill(0, out.offset, out.offset + m * n);
  }
  if (m === 0 || n === 0 || k === 0) return out;

  // Element (i, p) of op(A) is at a.offset + i·aRowStep + p·aColStep; likewise for op(B).
  const aRowStep = transposeA ? 1 : a.stride;
  const aColStep = transposeA ? a.stride : 1;
  const bRowStep = transposeB ? 1 : b.stride;
  const bColStep = transposeB ? b.stride : 1;
  if (packedB.length < KC * roundUp(Math.min(n, NC), NR)) packedB = new Float64Array(KC * roundUp(NC, NR));
  if (packedA.length < MC * KC) packedA = new Float64Array(MC * KC);
  const c = out.data;

  for (let jc = 0; jc < n; jc += NC) {
    const nc = Math.min(NC, n - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = Math.min(KC, k - pc);
      packPanels(b.data, b.offset + pc * bRowStep + jc * bColStep, bRowStep, bColStep, kc, nc, NR, packedB);
      for (let ic = 0; ic < m; ic += MC) {
        const mc = Math.min(MC, m - ic);
        packPanels(a.data, a.offset + ic * aRowStep + pc * aColStep, aColStep, aRowStep, kc, mc, MR, packedA);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = Math.min(NR, nc - jr);
          const bPanel = jr * kc;
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = Math.min(MR, mc - ir);
            microKernel(packedA, ir * kc, packedB, bPanel, kc, c, out.offset + (ic + ir) * n + jc + jr, n, mr, nr);
          }
        }
      }
    }
  }
  return out;
}

function roundUp(x: number, multiple: number): number {
  return Math.ceil(x / multiple) * multiple;
}

/**
 * Packs a `depth`×`width` block (element (p, j) at base + p·depthStep + j·widthStep) into panels of
 * `panel` columns, each panel depth×panel contiguous, zero-padded at the right edge.
 */
function packPanels(
  src: ArrayLike<number>,
  base: number,
  depthStep: number,
  widthStep: number,
  depth: number,
  width: number,
  panel: number,
  dst: Float64Array,
): void {
  let w = 0;
  for (let j0 = 0; j0 < width; j0 += panel) {
    const count = Math.min(panel, width - j0);
    for (let p = 0; p < depth; p++) {
      const rowBase = base + p * depthStep + j0 * widthStep;
      let jj = 0;
      for (; jj < count; jj++) dst[w++] = src[rowBase + jj * widthStep];
      for (; jj < panel; jj++) dst[w++] = 0;
    }
  }
}

function microKernel(
  ap: Float64Array,
  aStart: number,
  bp: Float64Array,
  bStart: number,
  kc: number,
  c: Float64Array | Float32Array,
  cStart: number,
  ldc: number,
  mr: number,
  nr: number,
): void {
  let c00 = 0,
    c01 = 0,
    c02 = 0,
    c03 = 0;
  let c10 = 0,
    c11 = 0,
    c12 = 0,
    c13 = 0;
  let c20 = 0,
    c21 = 0,
    c22 = 0,
    c23 = 0;
  let c30 = 0,
    c31 = 0,
    c32 = 0,
    c33 = 0;
  let ai = aStart;
  let bi = bStart;
  for (let p = 0; p < kc; p++) {
    const a0 = ap[ai],
      a1 = ap[ai + 1],
      a2 = ap[ai + 2],
      a3 = ap[ai + 3];
    const b0 = bp[bi],
      b1 = bp[bi + 1],
      b2 = bp[bi + 2],
      b3 = bp[bi + 3];
    c00 += a0 * b0;
    c01 += a0 * b1;
    c02 += a0 * b2;
    c03 += a0 * b3;
    c10 += a1 * b0;
    c11 += a1 * b1;
    c12 += a1 * b2;
    c13 += a1 * b3;
    c20 += a2 * b0;
    c21 += a2 * b1;
    c22 += a2 * b2;
    c23 += a2 * b3;
    c30 += a3 * b0;
    c31 += a3 * b1;
    c32 += a3 * b2;
    c33 += a3 * b3;
    ai += 4;
    bi += 4;
  }
  if (mr === MR && nr === NR) {
    let r = cStart;
    c[r] += c00;
    c[r + 1] += c01;
    c[r + 2] += c02;
    c[r + 3] += c03;
    r += ldc;
    c[r] += c10;
    c[r + 1] += c11;
    c[r + 2] += c12;
    c[r + 3] += c13;
    r += ldc;
    c[r] += c20;
    c[r + 1] += c21;
    c[r + 2] += c22;
    c[r + 3] += c23;
    r += ldc;
    c[r] += c30;
    c[r + 1] += c31;
    c[r + 2] += c32;
    c[r + 3] += c33;
    return;
  }
  const tile = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
  for (let i = 0; i < mr; i++) {
    for (let j = 0; j < nr; j++) c[cStart + i * ldc + j] += tile[i * 4 + j];
  }
}
