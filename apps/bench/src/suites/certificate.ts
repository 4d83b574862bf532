import {
  centeredKeys,
  featureRank,
  OutOfRegimeError,
  planSoftmaxApproximation,
  relativeErrorBound,
  sampledSoftmaxError,
  taylorExp,
  type PolynomialMethod,
} from '@almora/kernels';
import { loraGradients, predictedHeadCost, relativeGradientError, type LoraGradients, type LoraProblem, type Target } from '@almora/lora';
import { add, matmul, type Matrix, maxAbs, Rng, scale, sub } from '@almora/tensor';
import type { Row } from '../harness.js';
import { benchProblem } from '../problems.js';

/** Q and K of a single-sequence bench problem, through the effective (adapted) weights. */
export function queriesAndKeys(problem: LoraProblem): { q: Matrix; k: Matrix; beta: number } {
  const x = problem.x as Matrix;
  const effective = (t: 'q' | 'k') => {
    const adapter = problem.adapters[t];
    const w = problem.weights[t];
    return adapter ? add(w, scale(matmul(adapter.b, adapter.a), problem.alpha / adapter.a.rows)) : w;
  };
  const q = matmul(x, effective('q'));
  return { q, k: matmul(x, effective('k')), beta: problem.beta ?? 1 / Math.sqrt(q.cols) };
}

/**
 * The largest entrywise relative error of the degree-g softmax against exact attention, over every
 * query row (or `rows` evenly spaced ones), for whichever family does better: measured, not certified.
 */
export function measuredAttentionError(q: Matrix, k: Matrix, beta: number, degree: number, rows?: number): number {
  const picked =
    rows === undefined || rows >= q.rows
      ? Array.from({ length: q.rows }, (_, i) => i)
      : Array.from({ length: rows }, (_, i) => Math.floor((i * q.rows) / rows));
  let best = Number.POSITIVE_INFINITY;
  for (const method of ['taylor', 'chebyshev'] as PolynomialMethod[]) {
    const plan = planSoftmaxApproximation(q, k, { beta, degree, method, centerKeys: true });
    if (plan.polynomial?.coefficients.every(Number.isFinite)) {
      best = Math.min(best, sampledSoftmaxError(q, centeredKeys(k, plan.range), plan.polynomial.coefficients, beta, picked));
    }
  }
  return best;
}

/** The degree the certificate this work replaced would have asked for: Taylor, 2δ/(1−δ) ≤ ε on β·max‖q‖·max‖k‖. */
export function formerCertifiedDegree(cauchySchwarzRange: number, epsilon: number, maxDegree: number): number | undefined {
  for (let g = 0; g <= maxDegree; g++) {
    const delta = relativeErrorBound(taylorExp(g).coefficients, cauchySchwarzRange);
    if (delta < 1 && (2 * delta) / (1 - delta) <= epsilon) return g;
  }
  return undefined;
}

/** For one (L, Γ) cell: the oracle degree, the certified degrees (now and before), and what 'auto' did. */
export function certificateCell(problem: LoraProblem, d: number, epsilon: number, maxDegree: number, exact: LoraGradients): Row {
  const { q, k, beta } = queriesAndKeys(problem);
  const length = q.rows;
  let oracleDegree: number | undefined;
  for (let g = 0; g <= maxDegree && oracleDegree === undefined; g++) if (measuredAttentionError(q, k, beta, g) <= epsilon) oracleDegree = g;
  const plan = planSoftmaxApproximation(q, k, { beta, epsilon, centerKeys: true, maxDegree });
  const certifiedDegree = plan.meetsEpsilon ? plan.degree : undefined;
  const former = formerCertifiedDegree(plan.range.cauchySchwarzRange, epsilon, maxDegree);
  const oracleCost = oracleDegree === undefined ? undefined : predictedHeadCost(length, length, d, featureRank(d, oracleDegree), 'chained', false);
  const oracleCheaper = oracleCost !== undefined && oracleCost.fast! < oracleCost.exact;
  const auto = loraGradients(problem, { method: 'auto', epsilon });
  return {
    table: 'certificate',
    L: length,
    gamma: plan.range.gamma,
    R: plan.range.range,
    cauchySchwarzR: plan.range.cauchySchwarzRange,
    oracleDegree: oracleDegree ?? null,
    certifiedDegree: certifiedDegree ?? null,
    formerCertifiedDegree: former ?? null,
    withinOne: oracleDegree === undefined ? null : certifiedDegree !== undefined && certifiedDegree <= oracleDegree + 1,
    oracleFastCheaper: oracleCheaper,
    autoChose: auto.report.chosen,
    autoVariant: auto.report.variant ?? null,
    autoDegree: auto.report.chosen === 'fast' ? (auto.report.degree ?? null) : null,
    autoGradientError: auto.report.chosen === 'fast' ? relativeGradientError(auto.grads, exact.grads) : 0,
  };
}

/** max over adapters of max|Ĝ − G|, and of the certified absolute bound (Infinity when none). */
function gradientErrorAndBound(fast: LoraGradients, exact: LoraGradients): { measured: number; bound: number } {
  let measured = 0;
  let bound = 0;
  for (const t of Object.keys(exact.grads) as Target[]) {
    for (const which of ['a', 'b'] as const) {
      measured = Math.max(measured, maxAbs(sub(fast.grads[t]![which], exact.grads[t]![which])));
      bound = Math.max(bound, fast.report.gradientBound?.[t]?.[which].absolute ?? Number.POSITIVE_INFINITY);
    }
  }
  return { measured, bound };
}

/**
 * Random problems across the regime — widths, lengths, Γ, masks, variants, families, degrees,
 * centering, a shared key offset — each checked against exact: the measured attention error (every
 * row) against the certified softmax bound, and the measured gradient error against the certified
 * gradient bound. Returns one row per case.
 */
export function fuzzSweep(cases: number, seed: number): Row[] {
  const rows: Row[] = [];
  const rng = new Rng(seed);
  for (let n = 0; n < cases; n++) {
    const d = [2, 3, 4, 6, 8][Math.floor(rng.next() * 5)];
    const length = 32 + Math.floor(rng.next() * 480);
    const gamma = 0.05 + 2.2 * rng.next();
    const adaptation = rng.next() < 0.5 ? 'partial' : 'full';
    const problem = {
      ...benchProblem({ length, d, rank: 2, adaptation, gamma, sharedOffset: rng.next() < 0.3 ? 1.5 : undefined }, new Rng(seed * 7919 + n)),
      causal: rng.next() < 0.3,
    };
    const variant = rng.next() < 0.5 ? 'chained' : 'autodiff';
    const polynomial = rng.next() < 0.5 ? 'taylor' : 'chebyshev';
    const degree = 1 + Math.floor(rng.next() * 6);
    const centerKeys = rng.next() < 0.5;
    const exact = loraGradients(problem, { method: 'exact' });
    let fast: LoraGradients;
    try {
      fast = loraGradients(problem, { method: 'fast', variant, polynomial, degree, centerKeys, sampledRows: length });
    } catch (error) {
      // A polynomial that goes negative on this range is refused: nothing ran, nothing to check.
      if (error instanceof OutOfRegimeError) continue;
      throw error;
    }
    const { measured, bound } = gradientErrorAndBound(fast, exact);
    const attentionBound = fast.report.softmaxBound ?? Number.POSITIVE_INFINITY;
    const attentionError = fast.report.sampledSoftmaxError ?? Number.POSITIVE_INFINITY;
    rows.push({
      table: 'fuzz',
      L: length,
      d,
      gamma,
      causal: problem.causal,
      variant,
      polynomial,
      degree,
      centered: fast.report.centered,
      measuredAttentionError: attentionError,
      certifiedAttentionBound: attentionBound,
      measuredGradientError: measured,
      certifiedGradientBound: bound,
      violation: attentionError > attentionBound || measured > bound * (1 + 1e-9) + 1e-13,
    });
  }
  return rows;
}

/**
 * The scaling suite's headline problem (d = 16, Γ = 0.5, r = 4, partial adaptation): what 'auto'
 * picks and how long it takes beside exact, in one run — with the default ε, and with the ε at
 * which degree 2 is certified (by either family, and by Taylor) — and the measured
 * attention error of degrees 2 and 3 over every query row.
 */
export function headlineRows(lengths: readonly number[], seed: number): Row[] {
  const rows: Row[] = [];
  const timed = (run: () => LoraGradients): [LoraGradients, number] => {
    const t0 = performance.now();
    const result = run();
    return [result, (performance.now() - t0) / 1000];
  };
  // Warm every path up first, so the first timed run does not pay for compilation.
  const warmUp = benchProblem({ length: 512, d: 16, rank: 4, adaptation: 'partial', gamma: 0.5 }, new Rng(seed));
  for (const options of [{ method: 'exact' }, { method: 'fast', degree: 2 }, { method: 'fast', degree: 3 }] as const) loraGradients(warmUp, options);
  for (const length of lengths) {
    const problem = benchProblem({ length, d: 16, rank: 4, adaptation: 'partial', gamma: 0.5 }, new Rng(seed + length));
    const { q, k, beta } = queriesAndKeys(problem);
    const [taylor2, chebyshev2] = (['taylor', 'chebyshev'] as const).map(
      (method) => planSoftmaxApproximation(q, k, { beta, degree: 2, method, centerKeys: true }).bound!.softmaxRelative,
    );
    const degree2 = Math.min(taylor2, chebyshev2);
    const [exact, exactSeconds] = timed(() => loraGradients(problem, { method: 'exact' }));
    const above = (bound: number) => Number((bound * 1.001).toPrecision(3));
    for (const [setting, epsilon] of [
      ['default ε', undefined],
      ['ε at which degree 2 is certified', above(degree2)],
      ['ε at which Taylor degree 2 is certified', above(taylor2)],
    ] as const) {
      const [auto, autoSeconds] = timed(() => loraGradients(problem, epsilon === undefined ? {} : { epsilon }));
      const head = auto.report.heads[0];
      rows.push({
        table: 'headline',
        L: length,
        setting,
        epsilon: auto.report.epsilon,
        exactSeconds,
        autoSeconds,
        speedup: exactSeconds / autoSeconds,
        autoChose: auto.report.chosen,
        autoVariant: auto.report.variant ?? null,
        degree: head.degree ?? null,
        rank: head.rank ?? null,
        R: head.range,
        cauchySchwarzR: head.cauchySchwarzRange,
        certifiedAttentionBound: head.softmaxBound ?? null,
        autoGradientError: relativeGradientError(auto.grads, exact.grads),
        reason: auto.report.reason,
      });
    }
    rows.push({
      table: 'headline-accuracy',
      L: length,
      degree2AttentionError: measuredAttentionError(q, k, beta, 2),
      degree2CertifiedBound: degree2,
      taylorDegree2CertifiedBound: taylor2,
      chebyshevDegree2CertifiedBound: chebyshev2,
      degree3AttentionError: measuredAttentionError(q, k, beta, 3),
    });
  }
  return rows;
}
