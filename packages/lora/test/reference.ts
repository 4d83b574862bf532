// Plain, unblocked, obviously-correct references: every L×L matrix is formed.
import { add, fromFlat, matmul, type Matrix, randomNormal, Rng, scale, sliceCols, sub, zeros } from '@almora/tensor';
import type { LoraProblem, Target } from '../src/index.js';

export interface DenseHead {
  loss: number;
  output: Matrix;
  dq: Matrix;
  dk: Matrix;
  dv: Matrix;
}

/** Row-wise softmax of β·QKᵀ with causal masking, by definition. */
export function denseSoftmax(q: Matrix, k: Matrix, beta: number, causal: boolean): Matrix {
  const s = matmul(q, k, { transposeB: true });
  const f = zeros(s.rows, s.cols);
  for (let i = 0; i < s.rows; i++) {
    let max = -Infinity;
    for (let j = 0; j < s.cols; j++) if (!causal || j <= i) max = Math.max(max, beta * s.get(i, j));
    let sum = 0;
    for (let j = 0; j < s.cols; j++) if (!causal || j <= i) sum += Math.exp(beta * s.get(i, j) - max);
    for (let j = 0; j < s.cols; j++) f.set(i, j, !causal || j <= i ? Math.exp(beta * s.get(i, j) - max) / sum : 0);
  }
  return f;
}

/** Gradients of ½‖f·V − Y‖² for a given row-stochastic f (exact or approximate), by the textbook formulas. */
export function denseHeadFromSoftmax(f: Matrix, q: Matrix, k: Matrix, v: Matrix, y: Matrix, beta: number): DenseHead {
  const output = matmul(f, v);
  const c = sub(output, y);
  const dP = matmul(c, v, { transposeB: true });
  const p = zeros(f.rows, f.cols);
  for (let i = 0; i < f.rows; i++) {
    let dot = 0;
    for (let l = 0; l < c.cols; l++) dot += c.get(i, l) * output.get(i, l);
    for (let j = 0; j < f.cols; j++) p.set(i, j, f.get(i, j) * (dP.get(i, j) - dot));
  }
  let loss = 0;
  for (const x of c.data) loss += 0.5 * x * x;
  return {
    loss,
    output,
    dq: scale(matmul(p, k), beta),
    dk: scale(matmul(p, q, { transposeA: true }), beta),
    dv: matmul(f, c, { transposeA: true }),
  };
}

/** A whole problem by the dense reference: loss and adapter gradients, multi-head, batch, causal. */
export function denseProblem(problem: LoraProblem): { loss: number; grads: Partial<Record<Target, { a: Matrix; b: Matrix; w: Matrix }>> } {
  const xs = (Array.isArray(problem.x) ? problem.x : [problem.x]) as (Matrix | { q: Matrix; k: Matrix; v: Matrix })[];
  const ys = (Array.isArray(problem.target) ? problem.target : [problem.target]) as Matrix[];
  const heads = problem.heads ?? 1;
  const dOut = problem.weights.q.cols;
  const dh = dOut / heads;
  const beta = problem.beta ?? 1 / Math.sqrt(dh);
  const r = (problem.adapters.q ?? problem.adapters.k ?? problem.adapters.v)!.a.rows;
  const s = problem.alpha / r;
  const w = (t: Target) => {
    const ad = problem.adapters[t];
    return ad ? add(problem.weights[t], scale(matmul(ad.b, ad.a), s)) : problem.weights[t];
  };
  const dW: Record<Target, Matrix> = { q: zeros(problem.weights.q.rows, dOut), k: zeros(problem.weights.q.rows, dOut), v: zeros(problem.weights.q.rows, dOut) };
  let loss = 0;
  xs.forEach((x, n) => {
    const [xq, xk, xv] = 'rows' in x ? [x, x, x] : [x.q, x.k, x.v];
    const q = matmul(xq, w('q'));
    const k = matmul(xk, w('k'));
    const v = matmul(xv, w('v'));
    const dq = zeros(q.rows, dOut);
    const dk = zeros(k.rows, dOut);
    const dv = zeros(v.rows, dOut);
    for (let h = 0; h < heads; h++) {
      const cols = (m: Matrix) => sliceCols(m, h * dh, (h + 1) * dh);
      const f = denseSoftmax(cols(q), cols(k), beta, problem.causal ?? false);
      const g = denseHeadFromSoftmax(f, cols(q), cols(k), cols(v), cols(ys[n]), beta);
      loss += g.loss;
      for (const [target, source] of [
        [dq, g.dq],
        [dk, g.dk],
        [dv, g.dv],
      ] as const)
        for (let i = 0; i < source.rows; i++) for (let l = 0; l < dh; l++) target.set(i, h * dh + l, source.get(i, l));
    }
    dW.q = add(dW.q, matmul(xq, dq, { transposeA: true }));
    dW.k = add(dW.k, matmul(xk, dk, { transposeA: true }));
    dW.v = add(dW.v, matmul(xv, dv, { transposeA: true }));
  });
  const grads: Partial<Record<Target, { a: Matrix; b: Matrix; w: Matrix }>> = {};
  for (const t of ['q', 'k', 'v'] as Target[]) {
    const ad = problem.adapters[t];
    if (!ad) continue;
    grads[t] = { a: scale(matmul(ad.b, dW[t], { transposeA: true }), s), b: scale(matmul(dW[t], ad.a, { transposeB: true }), s), w: dW[t] };
  }
  return { loss, grads };
}

export interface ProblemShape {
  length: number;
  dIn: number;
  dOut: number;
  r: number;
  heads?: number;
  targets: Target[];
  causal?: boolean;
  batch?: number;
  /** Scale of X (sets Γ). */
  xScale?: number;
  cross?: boolean;
}

/** A seeded random problem of the given shape. */
export function randomProblem(shape: ProblemShape, seed: number): LoraProblem {
  const rng = new Rng(seed);
  const xs = shape.xScale ?? 0.5;
  const seq = () => scale(randomNormal(shape.length, shape.dIn, rng), xs);
  const batch = shape.batch ?? 1;
  const inputs = Array.from({ length: batch }, () => (shape.cross ? { q: seq(), k: seq(), v: seq() } : seq()));
  const targets = Array.from({ length: batch }, () => randomNormal(shape.length, shape.dOut, rng));
  const weight = () => scale(randomNormal(shape.dIn, shape.dOut, rng), 1 / Math.sqrt(shape.dIn));
  const weights = { q: weight(), k: weight(), v: weight() };
  const adapters: LoraProblem['adapters'] = {};
  for (const t of shape.targets) adapters[t] = { a: scale(randomNormal(shape.r, shape.dOut, rng), 0.3), b: scale(randomNormal(shape.dIn, shape.r, rng), 0.3) };
  return {
    x: batch === 1 ? inputs[0] : inputs,
    target: batch === 1 ? targets[0] : targets,
    weights,
    adapters,
    alpha: 2 * shape.r,
    heads: shape.heads,
    causal: shape.causal,
  };
}

/** max|a − b| / max|b|. */
export function relativeError(a: Matrix, b: Matrix): number {
  let num = 0;
  let den = 0;
  for (let t = 0; t < a.data.length; t++) {
    num = Math.max(num, Math.abs(a.data[t] - b.data[t]));
    den = Math.max(den, Math.abs(b.data[t]));
  }
  return den === 0 ? num : num / den;
}

/** max|a − b|. */
export function maxDifference(a: Matrix, b: Matrix): number {
  let d = 0;
  for (let t = 0; t < a.data.length; t++) d = Math.max(d, Math.abs(a.data[t] - b.data[t]));
  return d;
}

/** A copy of m with entry t moved by h. */
export function nudged(m: Matrix, t: number, h: number): Matrix {
  const out = fromFlat(m.rows, m.cols, Array.from(m.toFlat()));
  out.data[t] += h;
  return out;
}
