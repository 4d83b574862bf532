/**
 * gpu.js kernel sources, one per primitive. Every matrix is a flat row-major array (1-D kernel
 * output), so gpu.js packs it into a near-square texture and no matrix dimension meets the
 * texture-size limit (16,384 under headless-gl, 8,192 in headless Chromium); only rows·cols can,
 * at limit². Kept as source text: gpu.js parses kernels from their source, which a bundler must
 * not rewrite.
 *
 * No kernel loops over more than MAX_TERMS terms: GL drivers stop long loops early (headless-gl
 * under Mesa summed only ~65,536 terms of a row), so long reductions are split into chunks whose
 * partial results are combined by a second kernel.
 *
 * Flat index t becomes (i, j) by a float division that a GPU may round either way, so
 * `rowOf`/`colOf` correct it by one step; exact while t < 2²⁴, checked by the backend.
 */
const ROW_COL = `
  let i = Math.floor(t / cols);
  let j = t - i * cols;
  if (j < 0) { i = i - 1; j = j + cols; }
  if (j >= cols) { i = i + 1; j = j - cols; }`;

/** Name → kernel source. Argument order is the call order in gpu-backend.ts. */
export const KERNELS = {
  fill: `function (value) { return value; }`,
  upload: `function (a) { return a[this.thread.x]; }`,
  copy: `function (a, offset) { return a[this.thread.x + offset]; }`,
  matmul: `function (a, b, innerStart, innerCount, cols, aRowStep, aInnerStep, bInnerStep, bColStep) {
    const t = this.thread.x;${ROW_COL}
    let sum = 0;
    for (let p = 0; p < innerCount; p++) {
      const q = p + innerStart;
      sum += a[i * aRowStep + q * aInnerStep] * b[q * bInnerStep + j * bColStep];
    }
    return sum;
  }`,
  maximum: `function (a, b) { return Math.max(a[this.thread.x], b[this.thread.x]); }`,
  add: `function (a, b) { return a[this.thread.x] + b[this.thread.x]; }`,
  sub: `function (a, b) { return a[this.thread.x] - b[this.thread.x]; }`,
  hadamard: `function (a, b) { return a[this.thread.x] * b[this.thread.x]; }`,
  affine: `function (a, factor, shift) { return factor * a[this.thread.x] + shift; }`,
  abs: `function (a) { return Math.abs(a[this.thread.x]); }`,
  exp: `function (a) { return Math.exp(a[this.thread.x]); }`,
  reciprocal: `function (a) { return 1 / a[this.thread.x]; }`,
  scaleRows: `function (a, s, cols) {
    const t = this.thread.x;${ROW_COL}
    return a[t] * s[i];
  }`,
  rowSums: `function (a, cols, start, count) {
    let sum = 0;
    for (let j = 0; j < count; j++) sum += a[this.thread.x * cols + start + j];
    return sum;
  }`,
  colSums: `function (a, cols, start, count) {
    let sum = 0;
    for (let i = 0; i < count; i++) sum += a[(start + i) * cols + this.thread.x];
    return sum;
  }`,
  faceSplit: `function (a, b, aCols, bCols) {
    const t = this.thread.x;
    const cols = aCols * bCols;${ROW_COL}
    const left = Math.floor(j / bCols);
    let right = j - left * bCols;
    let l = left;
    if (right < 0) { l = l - 1; right = right + bCols; }
    if (right >= bCols) { l = l + 1; right = right - bCols; }
    return a[i * aCols + l] * b[i * bCols + right];
  }`,
  faceSplitReduce: `function (w, blocks, d, cols) {
    const t = this.thread.x;${ROW_COL}
    let sum = 0;
    for (let l = 0; l < d; l++) sum += w[i * d + l] * blocks[i * d * cols + l * cols + j];
    return sum;
  }`,
  productFeatures: `function (x, exponents, weights, d, cols) {
    const t = this.thread.x;${ROW_COL}
    let m = weights[j];
    for (let v = 0; v < d; v++) {
      const e = exponents[j * d + v];
      for (let p = 0; p < e; p++) m = m * x[i * d + v];
    }
    return m;
  }`,
  productFeaturesBackward: `function (x, g, exponents, weights, k, cols, start, count) {
    const t = this.thread.x;${ROW_COL}
    const d = cols;
    let sum = 0;
    for (let n = 0; n < count; n++) {
      const a = start + n;
      const ev = exponents[a * d + j];
      if (ev > 0) {
        let m = weights[a] * g[i * k + a] * ev;
        for (let u = 0; u < d; u++) {
          let e = exponents[a * d + u];
          if (u === j) e = e - 1;
          for (let p = 0; p < e; p++) m = m * x[i * d + u];
        }
        sum += m;
      }
    }
    return sum;
  }`,
  // Row statistics of the softmax of β·S over the columns [start, start + count) that row r may
  // see (all, or j ≤ causalStart + r when causalStart ≥ 0): the maximum, then Σ exp(β·s − max).
  // With β = 1 and causalStart = −1, rowMax is the core primitive's max_j A_rj.
  rowMax: `function (s, cols, start, count, beta, causalStart) {
    const r = this.thread.x;
    let end = start + count;
    if (causalStart >= 0) end = Math.min(end, causalStart + r + 1);
    let best = -3.0e38;
    for (let n = 0; n < count; n++) {
      if (start + n < end) best = Math.max(best, beta * s[r * cols + start + n]);
    }
    return best;
  }`,
  rowSumExp: `function (s, rowMax, cols, start, count, beta, causalStart) {
    const r = this.thread.x;
    let end = start + count;
    if (causalStart >= 0) end = Math.min(end, causalStart + r + 1);
    let sum = 0;
    for (let n = 0; n < count; n++) {
      if (start + n < end) sum += Math.exp(beta * s[r * cols + start + n] - rowMax[r]);
    }
    return sum;
  }`,
  softmaxFromStats: `function (s, rowMax, rowSum, cols, beta, causalStart) {
    const t = this.thread.x;${ROW_COL}
    if (causalStart >= 0 && j > causalStart + i) return 0;
    return Math.exp(beta * s[t] - rowMax[i]) / rowSum[i];
  }`,
  attentionScoresGradient: `function (p, c, v, dots, cols, dh) {
    const t = this.thread.x;${ROW_COL}
    let s = 0;
    for (let l = 0; l < dh; l++) s += c[i * dh + l] * v[j * dh + l];
    return p[t] * (s - dots[i]);
  }`,
  triangle: `function (a, cols, lower, offset) {
    const t = this.thread.x;${ROW_COL}
    if (lower > 0 && j > i + offset) return 0;
    if (lower === 0 && j < i + offset) return 0;
    return a[t];
  }`,
  accumulate: `function (target, source, start, end) {
    const t = this.thread.x;
    if (t >= start && t < end) return target[t] + source[t - start];
    return target[t];
  }`,
} as const;

/** A primitive's kernel name. */
export type KernelName = keyof typeof KERNELS;
