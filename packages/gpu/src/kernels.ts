/**
 * gpu.js kernel sources, one per primitive. Every matrix is a flat row-major array (1-D kernel
 * output), so gpu.js packs it into a near-square texture and no matrix dimension meets the
 * texture-size limit (16,384 under headless-gl, 8,192 in headless Chromium); only rows·cols can,
 * at limit². Kept as source text: gpu.js parses kernels from their source, which a bundler must
 * not rewrite.
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
  matmul: `function (a, b, inner, cols, aRowStep, aInnerStep, bInnerStep, bColStep) {
    const t = this.thread.x;${ROW_COL}
    let sum = 0;
    for (let p = 0; p < inner; p++) sum += a[i * aRowStep + p * aInnerStep] * b[p * bInnerStep + j * bColStep];
    return sum;
  }`,
  add: `function (a, b) { return a[this.thread.x] + b[this.thread.x]; }`,
  sub: `function (a, b) { return a[this.thread.x] - b[this.thread.x]; }`,
  hadamard: `function (a, b) { return a[this.thread.x] * b[this.thread.x]; }`,
  affine: `function (a, factor, shift) { return factor * a[this.thread.x] + shift; }`,
  abs: `function (a) { return Math.abs(a[this.thread.x]); }`,
  scaleRows: `function (a, s, cols) {
    const t = this.thread.x;${ROW_COL}
    return a[t] * s[i];
  }`,
  rowSums: `function (a, cols) {
    let sum = 0;
    for (let j = 0; j < cols; j++) sum += a[this.thread.x * cols + j];
    return sum;
  }`,
  colSums: `function (a, rows, cols) {
    let sum = 0;
    for (let i = 0; i < rows; i++) sum += a[i * cols + this.thread.x];
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
  productFeaturesBackward: `function (x, g, exponents, weights, k, cols) {
    const t = this.thread.x;${ROW_COL}
    const d = cols;
    let sum = 0;
    for (let a = 0; a < k; a++) {
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
  // (Loop variables are unique per kernel: gpu.js rejects a name declared twice in one function.)
  // Row r's maximum of β·q_r·k_j over the allowed keys (output 2r) and Σ_j exp(β·q_r·k_j − max)
  // (output 2r + 1); allowed is every key, or j ≤ causalStart + r when causalStart ≥ 0.
  attentionRowStats: `function (q, k, beta, keys, dh, causalStart) {
    const r = Math.floor(this.thread.x / 2 + 0.25);
    const which = this.thread.x - 2 * r;
    let allowed = keys;
    if (causalStart >= 0) allowed = Math.min(keys, causalStart + r + 1);
    let max = -3.0e38;
    for (let j1 = 0; j1 < allowed; j1++) {
      let s1 = 0;
      for (let l1 = 0; l1 < dh; l1++) s1 += q[r * dh + l1] * k[j1 * dh + l1];
      max = Math.max(max, beta * s1);
    }
    if (which === 0) return max;
    let sum = 0;
    for (let j2 = 0; j2 < allowed; j2++) {
      let s2 = 0;
      for (let l2 = 0; l2 < dh; l2++) s2 += q[r * dh + l2] * k[j2 * dh + l2];
      sum += Math.exp(beta * s2 - max);
    }
    return sum;
  }`,
  attentionProbabilities: `function (q, k, stats, beta, cols, dh, causalStart) {
    const t = this.thread.x;${ROW_COL}
    if (causalStart >= 0 && j > causalStart + i) return 0;
    let s = 0;
    for (let l = 0; l < dh; l++) s += q[i * dh + l] * k[j * dh + l];
    return Math.exp(beta * s - stats[2 * i]) / stats[2 * i + 1];
  }`,
  attentionScoresGradient: `function (p, c, v, dots, cols, dh) {
    const t = this.thread.x;${ROW_COL}
    let s = 0;
    for (let l = 0; l < dh; l++) s += c[i * dh + l] * v[j * dh + l];
    return p[t] * (s - dots[i]);
  }`,
  triangle: `function (a, cols, lower) {
    const t = this.thread.x;${ROW_COL}
    if (lower > 0 && j > i) return 0;
    if (lower === 0 && j < i) return 0;
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
