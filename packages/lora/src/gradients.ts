import { DEFAULT_MAX_DEGREE, featureRank, type ApproximationPlan, type PolynomialMethod } from '@almora/kernels';
import {
  addInto,
  assertFinite,
  type Backend,
  cpuBackend,
  type DeviceMatrix,
  InvalidArgumentError,
  map,
  matmul,
  type Matrix,
  maxAbs,
  scale,
  sliceCols,
  sub,
  zeros,
} from '@almora/tensor';
import { autodiffHead } from './autodiff.js';
import { gradientBound as headGradientBound, type HeadBound } from './bound.js';
import { chainedHead } from './chained.js';
import { DEFAULT_BLOCK_SIZE, exactHead } from './exact.js';
import { type HeadInput, type HeadResult, readBack, type Reading, runLater, runNow } from './head.js';
import { normalizeProblem, type LoraProblem, type NormalizedProblem, type Target } from './problem.js';
import { fmt, type HeadCost, normQuantities, predictedHeadCost, type NormQuantity } from './regime.js';
import { disposeSoftmax, planHead, softmaxFactors } from './softmax-factors.js';

/** How gradients are computed: exactly, by the low-rank chain, or chosen by the regime check. */
export type GradientMethod = 'exact' | 'fast' | 'auto';

/** The two fast variants: the paper's chain (certified) or reverse mode through the features. */
export type FastVariant = 'chained' | 'autodiff';

/** Options of {@link loraGradients}; names follow PEFT where it has them. */
export interface LoraOptions {
  /** 'auto' (default) picks 'fast' only when its certified bound meets ε and it is predicted faster. */
  method?: GradientMethod;
  /**
   * Target on the certified entrywise relative error of the attention matrix, |f̂_ij − f_ij| ≤ ε·f_ij
   * (the paper's approximation step). 'auto' uses the fast path only when this is certified; 'fast'
   * reports whether it is. The gradients' own certified bound is in `report.gradientBound`.
   * Default 1e-3.
   */
  epsilon?: number;
  /** Force the polynomial degree of the fast path instead of choosing it. */
  degree?: number;
  /** Largest degree the chooser may pick; default 24. */
  maxDegree?: number;
  /** Polynomial family of the fast path; default 'taylor' (the paper's). */
  polynomial?: PolynomialMethod;
  /** Fast variant; default 'chained'. Only 'chained' is certified, so 'auto' always uses it. */
  variant?: FastVariant;
  /** Subtract the mean key inside the approximation when that shrinks the range; default false. */
  centerKeys?: boolean;
  /** Also return ∂loss/∂W_μ for each adapted μ; default false. */
  weightGradients?: boolean;
  /** Query rows per block of the exact path; default 128. */
  blockSize?: number;
  /**
   * Where the per-head work (softmax factors, the chain, the exact blocks) runs; default the CPU.
   * Projections, planning and the adapter chain rule stay on the host: they are O(L·d²).
   */
  backend?: Backend;
}

/** Gradients of one adapter. */
export interface AdapterGradient {
  /** ∂loss/∂A (r×d_out). */
  a: Matrix;
  /** ∂loss/∂B (d_in×r). */
  b: Matrix;
  /** ∂loss/∂W (d_in×d_out), when asked for. */
  w?: Matrix;
}

/** A certified bound on a gradient's error. */
export interface GradientErrorBound {
  /** Upper bound on max|Ĝ − G|. */
  absolute: number;
  /** Upper bound on max|Ĝ − G| / max|G| (Infinity when the gradient may be 0). */
  relative: number;
}

/** Certified bounds on one adapter's gradient errors. */
export interface AdapterErrorBound {
  /** Bound on ∂A's error. */
  a: GradientErrorBound;
  /** Bound on ∂B's error. */
  b: GradientErrorBound;
  /** Bound on ∂W's error, when weight gradients were asked for. */
  w?: GradientErrorBound;
}

/** What was decided and why, in numbers. */
export interface GradientReport {
  /** The method asked for. */
  requested: GradientMethod;
  /** The path that ran. */
  chosen: 'exact' | 'fast';
  /** Fast variant used, when chosen is 'fast'. */
  variant: FastVariant | undefined;
  /** One sentence: why this path. */
  reason: string;
  /** Every step 'auto' took (plans, retries, fallbacks). */
  steps: string[];
  /** The ε asked for (certified attention error target). */
  epsilon: number;
  /** Γ = max over heads and sequences of max(‖√β·Q‖∞, ‖√β·K‖∞). */
  gamma: number;
  /** √(log L) for the longest sequence. */
  threshold: number;
  /** The paper's norm quantities (Remark 5.2). */
  norms: NormQuantity[];
  /** Largest certified range R over heads and sequences (after centering, if used). */
  range: number;
  /** Largest R without centering. */
  rawRange: number;
  /** Whether centering was used in any head. */
  centered: boolean;
  /** The backend the per-head work ran on, e.g. 'cpu'. */
  backend: string;
  /** Polynomial degree g of the fast path, when it was planned. */
  degree: number | undefined;
  /** Its rank k = C(d_h+g, g). */
  rank: number | undefined;
  /** Polynomial family of the fast path. */
  polynomial: PolynomialMethod;
  /** Certified entrywise relative error of the softmax (largest over heads), when planned. */
  softmaxBound: number | undefined;
  /**
   * Certified bounds on each adapter gradient's error (chained fast path only). Rigorous but
   * worst-case: on random problems the measured error sits 10³–10⁶× below it.
   */
  gradientBound: Partial<Record<Target, AdapterErrorBound>> | undefined;
  /** Whether the attention matrix is certified within ε (always true for exact). */
  meetsEpsilon: boolean;
  /** Predicted multiply-adds of each path. */
  predictedCost: HeadCost;
}

/** Result of {@link loraGradients}. */
export interface LoraGradients {
  /** ½‖O − Y‖²_F, summed over the batch. */
  loss: number;
  /** O per sequence (an array for a batch, a matrix for a single sequence). */
  output: Matrix | Matrix[];
  /** Gradients of every adapter given. */
  grads: Partial<Record<Target, AdapterGradient>>;
  /** What was decided and why, in numbers. */
  report: GradientReport;
}

interface Projected {
  q: Matrix;
  k: Matrix;
  v: Matrix;
  y: Matrix;
}

interface PathResult {
  loss: number;
  outputs: Matrix[];
  dq: Matrix[];
  dk: Matrix[];
  dv: Matrix[];
  bound: { dq: Matrix[]; dk: Matrix[]; dv: Matrix[] } | undefined;
}

function headInput(p: NormalizedProblem, s: Projected, h: number): HeadInput {
  const from = h * p.headDim;
  const to = from + p.headDim;
  return {
    q: sliceCols(s.q, from, to),
    k: sliceCols(s.k, from, to),
    v: sliceCols(s.v, from, to),
    y: sliceCols(s.y, from, to),
    beta: p.beta,
    causal: p.causal,
  };
}

/** Runs `perHead` on every head of every sequence and assembles full-width results. */
function* runHeads(
  p: NormalizedProblem,
  projected: Projected[],
  perHead: (input: HeadInput, sequence: number, head: number) => Reading<HeadResult & { bound?: HeadBound }>,
): Reading<PathResult> {
  let loss = 0;
  const outputs: Matrix[] = [];
  const dq: Matrix[] = [];
  const dk: Matrix[] = [];
  const dv: Matrix[] = [];
  const bounds: PathResult['bound'] = { dq: [], dk: [], dv: [] };
  let bounded = true;
  for (const [n, s] of projected.entries()) {
    const dtype = s.q.dtype;
    const full = (rows: number) => zeros(rows, p.outputDim, { dtype });
    const [o, gq, gk, gv] = [full(s.q.rows), full(s.q.rows), full(s.k.rows), full(s.k.rows)];
    // Bound matrices only when the path provides bounds (the chained fast path).
    let bq: Matrix | undefined;
    let bk: Matrix | undefined;
    let bv: Matrix | undefined;
    for (let h = 0; h < p.heads; h++) {
      const from = h * p.headDim;
      const to = from + p.headDim;
      const input = headInput(p, s, h);
      const r = yield* perHead(input, n, h);
      loss += 0.5 * squaredNorm(sub(r.output, input.y));
      addInto(sliceCols(o, from, to), r.output);
      addInto(sliceCols(gq, from, to), r.dq);
      addInto(sliceCols(gk, from, to), r.dk);
      addInto(sliceCols(gv, from, to), r.dv);
      if (r.bound) {
        bq ??= full(s.q.rows);
        bk ??= full(s.k.rows);
        bv ??= full(s.k.rows);
        addInto(sliceCols(bq, from, to), r.bound.dq);
        addInto(sliceCols(bk, from, to), r.bound.dk);
        addInto(sliceCols(bv, from, to), r.bound.dv);
      } else bounded = false;
    }
    outputs.push(o);
    dq.push(gq);
    dk.push(gk);
    dv.push(gv);
    if (bq && bk && bv) {
      bounds.dq.push(bq);
      bounds.dk.push(bk);
      bounds.dv.push(bv);
    }
  }
  return { loss, outputs, dq, dk, dv, bound: bounded ? bounds : undefined };
}

function squaredNorm(m: Matrix): number {
  let s = 0;
  for (let t = 0; t < m.data.length; t++) s += m.data[t] * m.data[t];
  return s;
}

/**
 * Runs one head's computation on `backend`: uploads the host inputs, reads back the output and
 * gradients (checked finite: a float32 device can overflow where float64 does not) and releases
 * everything else.
 */
function* onBackend<T extends DeviceMatrix>(backend: Backend<T>, input: HeadInput, compute: (device: HeadInput<T>) => HeadResult<T>): Reading<HeadResult> {
  const device: HeadInput<T> = { ...input, q: backend.upload(input.q), k: backend.upload(input.k), v: backend.upload(input.v), y: backend.upload(input.y) };
  const result = compute(device);
  const dtype = input.q.dtype;
  const host: HeadResult = {
    output: yield* readBack(backend, result.output, dtype),
    dq: yield* readBack(backend, result.dq, dtype),
    dk: yield* readBack(backend, result.dk, dtype),
    dv: yield* readBack(backend, result.dv, dtype),
  };
  for (const handle of [device.q, device.k, device.v, device.y, result.output, result.dq, result.dk, result.dv]) backend.dispose(handle);
  for (const [name, m] of Object.entries(host)) assertFinite(m, `the ${backend.name} backend's ${name}`);
  return host;
}

/** ∂loss/∂W_μ = Σ_sequences X_μᵀ·∂μ. */
function weightGradient(p: NormalizedProblem, target: Target, per: Matrix[], absolute = false): Matrix {
  const total = zeros(p.inputDim, p.outputDim, { dtype: per[0].dtype });
  p.sequences.forEach((s, n) => {
    const x = target === 'q' ? s.xq : target === 'k' ? s.xk : s.xv;
    addInto(total, matmul(absolute ? map(x, Math.abs) : x, per[n], { transposeA: true }));
  });
  return total;
}

function relativeBound(absolute: number, estimate: Matrix): GradientErrorBound {
  if (absolute === 0) return { absolute, relative: 0 };
  const floor = maxAbs(estimate) - absolute;
  return { absolute, relative: floor > 0 ? absolute / floor : Number.POSITIVE_INFINITY };
}

function checkOptions(options: LoraOptions): Required<Pick<LoraOptions, 'method' | 'epsilon' | 'polynomial' | 'variant' | 'centerKeys' | 'weightGradients' | 'blockSize' | 'maxDegree' | 'backend'>> {
  const method = options.method ?? 'auto';
  if (!['exact', 'fast', 'auto'].includes(method)) throw new InvalidArgumentError(`method must be 'exact', 'fast' or 'auto', got "${String(method)}"`);
  const epsilon = options.epsilon ?? 1e-3;
  if (!Number.isFinite(epsilon) || epsilon <= 0) throw new InvalidArgumentError(`epsilon must be finite and > 0, got ${epsilon}`);
  const variant = options.variant ?? 'chained';
  if (!['chained', 'autodiff'].includes(variant)) throw new InvalidArgumentError(`variant must be 'chained' or 'autodiff', got "${String(variant)}"`);
  const polynomial = options.polynomial ?? 'taylor';
  if (!['taylor', 'chebyshev'].includes(polynomial)) throw new InvalidArgumentError(`polynomial must be 'taylor' or 'chebyshev', got "${String(polynomial)}"`);
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new InvalidArgumentError(`blockSize must be a positive integer, got ${blockSize}`);
  const maxDegree = options.maxDegree ?? DEFAULT_MAX_DEGREE;
  if (options.degree !== undefined && (!Number.isInteger(options.degree) || options.degree < 0)) {
    throw new InvalidArgumentError(`degree must be a non-negative integer, got ${options.degree}`);
  }
  const backend = options.backend ?? cpuBackend;
  return { method, epsilon, variant, polynomial, blockSize, maxDegree, backend, centerKeys: options.centerKeys ?? false, weightGradients: options.weightGradients ?? false };
}

/**
 * Loss, outputs and the gradients of every LoRA adapter of an attention layer — the paper's
 * Problem 1 (ALoRAGC) — exactly (Θ(L²·d), Theorem F.1) or by the almost-linear chain
 * (Theorems 3.1 / A.1), with 'auto' choosing by the regime check and reporting why.
 *
 * 'auto' plans every head (R, Γ, degree, rank, certified attention bound) in O(L·d); if any head is
 * out of the efficient regime (no degree certifies ε, rank·d_h ≥ L, or memory), or the fast path is
 * not predicted cheaper, it computes exactly; otherwise it runs the chained fast path, whose result
 * then carries a certified attention error ≤ ε and a certified (worst-case) gradient error bound.
 */
export function loraGradients(problem: LoraProblem, options: LoraOptions = {}): LoraGradients {
  return runNow(gradients(problem, options));
}

/**
 * {@link loraGradients} for any backend, asynchronous devices (WebGPU) included: the same
 * algorithm, with every read-back awaited instead of taken at once.
 */
export function loraGradientsAsync(problem: LoraProblem, options: LoraOptions = {}): Promise<LoraGradients> {
  return runLater(gradients(problem, options));
}

function* gradients(problem: LoraProblem, options: LoraOptions): Reading<LoraGradients> {
  const p = normalizeProblem(problem);
  const o = checkOptions(options);
  const projected: Projected[] = p.sequences.map((s) => ({
    q: matmul(s.xq, p.effective.q),
    k: matmul(s.xk, p.effective.k),
    v: matmul(s.xv, p.effective.v),
    y: s.y,
  }));
  const norms = normQuantities(p);
  const steps: string[] = [];
  const longest = Math.max(...projected.map((s) => s.k.rows));

  const plansFor = (degree: number | undefined): ApproximationPlan[][] =>
    projected.map((s) =>
      Array.from({ length: p.heads }, (_, h) => {
        const input = headInput(p, s, h);
        return planHead(input.q, input.k, {
          beta: p.beta,
          epsilon: o.epsilon,
          method: o.polynomial,
          degree,
          maxDegree: o.maxDegree,
          centerKeys: o.centerKeys,
        });
      }),
    );
  let plans = plansFor(options.degree);
  const flat = () => plans.flat();
  const costs = (variant: FastVariant) => {
    let exact = 0;
    let fast: number | undefined = 0;
    projected.forEach((s, n) =>
      plans[n].forEach((plan) => {
        const c = predictedHeadCost(s.q.rows, s.k.rows, p.headDim, plan.rank, variant, p.causal);
        exact += c.exact;
        fast = fast === undefined || c.fast === undefined ? undefined : fast + c.fast;
      }),
    );
    return { exact, fast };
  };

  const backend = o.backend;
  // A float32 computation's rounding (~1e-7 relative) is not in the certified bound, which would
  // then claim more than it can.
  const certifiable = backend.precision !== 'float32' && projected.every((s) => s.q.dtype === 'float64');
  const runExact = () => runHeads(p, projected, (input) => onBackend(backend, input, (device) => exactHead(backend, device, o.blockSize)));
  const runFast = (variant: FastVariant) =>
    runHeads(p, projected, function* (input, n, h) {
      const f = yield* softmaxFactors(backend, input.q, input.k, plans[n][h], p.beta, p.causal);
      try {
        const r = yield* onBackend(backend, input, (device) => (variant === 'autodiff' ? autodiffHead : chainedHead)(backend, device, f));
        if (variant === 'autodiff' || !certifiable) return r;
        return { ...r, bound: yield* headGradientBound(backend, input, f, sub(r.output, input.y), plans[n][h].bound!.softmaxRelative) };
      } finally {
        disposeSoftmax(backend, f);
      }
    });

  const certify = (result: PathResult, grads: Partial<Record<Target, AdapterGradient>>) => {
    if (!result.bound) return undefined;
    const bound: NonNullable<GradientReport['gradientBound']> = {};
    for (const t of p.adapted) {
      const per = t === 'q' ? result.bound.dq : t === 'k' ? result.bound.dk : result.bound.dv;
      const w = weightGradient(p, t, per, true);
      const { a, b } = p.adapters[t]!;
      const absA = scale(matmul(map(b, Math.abs), w, { transposeA: true }), p.scaling);
      const absB = scale(matmul(w, map(a, Math.abs), { transposeB: true }), p.scaling);
      bound[t] = {
        a: relativeBound(maxAbs(absA), grads[t]!.a),
        b: relativeBound(maxAbs(absB), grads[t]!.b),
        ...(o.weightGradients ? { w: relativeBound(maxAbs(w), grads[t]!.w!) } : {}),
      };
    }
    return bound;
  };

  let chosen: 'exact' | 'fast' = 'exact';
  let variant: FastVariant | undefined;
  let reason: string;
  let result: PathResult | undefined;
  let gradientBound: GradientReport['gradientBound'];
  const describePlan = () => {
    const worst = flat().reduce((a, b) => (b.range.range > a.range.range ? b : a));
    return `R = ${fmt(worst.range.range)}, Γ = ${fmt(worst.range.gamma)} vs √log L = ${fmt(worst.range.threshold)}, degree ${worst.degree ?? '—'}, rank ${worst.rank ?? '—'}, softmax bound ${worst.bound ? fmt(worst.bound.softmaxRelative) : '—'}`;
  };

  if (o.method === 'exact') {
    reason = 'exact gradients were requested';
  } else if (o.method === 'fast') {
    if (flat().some((plan) => plan.degree === undefined)) {
      const fallbackDegree = largestUsefulDegree(p.headDim, longest, o.maxDegree);
      steps.push(`no degree ≤ ${o.maxDegree} meets ε = ${o.epsilon}; using degree ${fallbackDegree}, the largest whose rank·d_h < L`);
      plans = plansFor(fallbackDegree);
    }
    steps.push(`plan: ${describePlan()}`);
    variant = o.variant;
    result = yield* runFast(variant);
    chosen = 'fast';
    const worst = Math.max(...flat().map((plan) => plan.bound!.softmaxRelative));
    reason = `fast gradients were requested (${variant}); certified attention error ${fmt(worst)} ${worst <= o.epsilon ? '≤' : '>'} ε = ${o.epsilon}`;
  } else {
    steps.push(`plan: ${describePlan()}`);
    const blocked = flat().find((plan) => plan.outOfRegime);
    const cost = costs('chained');
    if (blocked) {
      reason = `exact: ${blocked.outOfRegime!.message}`;
    } else if (cost.fast === undefined || cost.fast >= cost.exact) {
      reason = `exact: the fast path is predicted to cost ${fmt(cost.fast ?? Number.NaN)} multiply-adds vs ${fmt(cost.exact)} exact`;
    } else {
      chosen = 'fast';
      variant = 'chained';
      result = yield* runFast(variant);
      const worst = Math.max(...flat().map((plan) => plan.bound!.softmaxRelative));
      reason = `fast: certified attention error ${fmt(worst)} ≤ ε = ${o.epsilon} and predicted ${fmt(cost.exact / cost.fast)}× cheaper than exact`;
    }
  }
  if (chosen === 'exact') result = yield* runExact();
  const final = result!;
  const grads = assemble(p, final, o.weightGradients);
  if (chosen === 'fast' && variant === 'chained') {
    gradientBound = certify(final, grads);
    if (!certifiable) steps.push('no certified gradient bound: the computation ran in float32, whose rounding the bound does not cover');
  }
  const planned = flat();
  const report: GradientReport = {
    requested: o.method,
    chosen,
    variant,
    reason,
    steps,
    epsilon: o.epsilon,
    gamma: Math.max(...planned.map((plan) => plan.range.gamma)),
    threshold: Math.sqrt(Math.log(longest)),
    norms,
    range: Math.max(...planned.map((plan) => plan.range.range)),
    rawRange: Math.max(...planned.map((plan) => plan.range.rawRange)),
    centered: planned.some((plan) => plan.range.centered),
    degree: maxDefined(planned.map((plan) => plan.degree)),
    rank: maxDefined(planned.map((plan) => plan.rank)),
    backend: backend.name,
    polynomial: o.polynomial,
    softmaxBound: maxDefined(planned.map((plan) => plan.bound?.softmaxRelative)),
    gradientBound,
    meetsEpsilon: chosen === 'exact' || planned.every((plan) => plan.meetsEpsilon),
    predictedCost: costs(variant ?? 'chained'),
  };
  return { loss: final.loss, output: p.single ? final.outputs[0] : final.outputs, grads, report };
}

function maxDefined(values: (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined);
  return defined.length === 0 ? undefined : Math.max(...defined);
}

/** The largest degree whose rank·d_h stays below L: the most accurate fast path that still saves work. */
function largestUsefulDegree(headDim: number, length: number, maxDegree: number): number {
  let degree = 1;
  while (degree < maxDegree && featureRank(headDim, degree + 1) * headDim < length) degree++;
  return degree;
}

/** ∂W_μ, then the LoRA chain rule ∂A = (α/r)·Bᵀ·∂W and ∂B = (α/r)·∂W·Aᵀ. */
function assemble(p: NormalizedProblem, result: PathResult, withWeights: boolean): Partial<Record<Target, AdapterGradient>> {
  const grads: Partial<Record<Target, AdapterGradient>> = {};
  for (const t of p.adapted) {
    const per = t === 'q' ? result.dq : t === 'k' ? result.dk : result.dv;
    const w = weightGradient(p, t, per);
    const { a, b } = p.adapters[t]!;
    grads[t] = {
      a: scale(matmul(b, w, { transposeA: true }), p.scaling),
      b: scale(matmul(w, a, { transposeB: true }), p.scaling),
      ...(withWeights ? { w } : {}),
    };
  }
  return grads;
}
