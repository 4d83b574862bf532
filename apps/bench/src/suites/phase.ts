import { chooseDegree, featureRank, type PolynomialMethod } from '@almora/kernels';
import { loraGradients, relativeGradientError, type LoraGradients } from '@almora/lora';
import { OutOfRegimeError, Rng } from '@almora/tensor';
import type { Row, Suite, SuiteContext, SuiteReport } from '../harness.js';
import { benchProblem } from '../problems.js';
import { linePlot } from '../svg.js';

const D = 4;
const RANK = 2;
const EPSILON = 1e-3;
const DEGREES = [2, 4, 6, 8];
const MAX_SEARCH_DEGREE = 12;

/**
 * The norm-based phase transition: error of the fast gradients vs exact as Γ sweeps, per degree;
 * the smallest degree (and rank) meeting ε as a function of Γ, measured and certified; the
 * certified bounds beside the measured errors; Taylor vs Chebyshev; with vs without key centering.
 */
export const phaseSuite: Suite = {
  name: 'phase',
  title: 'Phase transition: fast-gradient error vs the norm bound Γ',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const gammas = context.quick ? [0.25, 1, 3] : [0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 6];
    const lengths = context.quick ? [128] : [256, 1024, 4096];
    const comparisonLength = lengths[Math.min(1, lengths.length - 1)];
    const rows: Row[] = [];
    const notes: string[] = context.backend.name === 'cpu' ? [] : [`almora's methods ran on the ${context.backend.name} backend (float32; gradients compared after widening to float64).`];
    const findings: string[] = [];
    const errorSeries = new Map<string, [number, number][]>();
    const rankSeries = new Map<string, [number, number][]>();
    const variantSeries = new Map<string, [number, number][]>();
    const push = (map: Map<string, [number, number][]>, name: string, point: [number, number]) => map.set(name, [...(map.get(name) ?? []), point]);
    let boundViolations = 0;
    context.progress.start('phase', lengths.length * gammas.length);
    for (const length of lengths) {
      for (const gamma of gammas) {
        const problem = benchProblem({ length, d: D, rank: RANK, adaptation: 'full', gamma }, new Rng(context.seed + length));
        const exact = loraGradients(problem, { method: 'exact', backend: context.backend });
        const fastAt = (degree: number, polynomial: PolynomialMethod = 'taylor', centerKeys = false, target = problem, reference = exact): [LoraGradients | undefined, number] => {
          try {
            const fast = loraGradients(target, { method: 'fast', degree, polynomial, centerKeys, backend: context.backend });
            return [fast, relativeGradientError(fast.grads, reference.grads)];
          } catch (error) {
            // A polynomial that goes negative on this range is refused: past the transition.
            if (error instanceof OutOfRegimeError) return [undefined, Number.POSITIVE_INFINITY];
            throw error;
          }
        };
        for (const degree of DEGREES) {
          const [fast, error] = fastAt(degree);
          // No certified bound (refused, or float32 whose rounding it does not cover) claims nothing.
          const bounds = fast?.report.gradientBound;
          const certified = bounds ? Math.max(...Object.values(bounds).flatMap((g) => [g!.a.relative, g!.b.relative])) : Number.POSITIVE_INFINITY;
          if (certified < error) boundViolations++;
          rows.push({
            table: 'error',
            L: length,
            gamma,
            degree,
            rank: featureRank(D, degree),
            R: exact.report.range,
            measuredError: fast ? error : 'refused',
            certifiedGradientBound: certified,
            certifiedAttentionBound: fast?.report.softmaxBound ?? null,
          });
          if (fast) push(errorSeries, `L=${length} degree ${degree}`, [gamma, error]);
        }
        let measuredDegree: number | undefined;
        for (let degree = 1; degree <= MAX_SEARCH_DEGREE && measuredDegree === undefined; degree++) {
          if (fastAt(degree)[1] <= EPSILON) measuredDegree = degree;
        }
        const certifiedDegree = chooseDegree(exact.report.range, EPSILON, 'taylor')?.degree;
        rows.push({
          table: 'degree',
          L: length,
          gamma,
          sqrtLogL: Math.sqrt(Math.log(length)),
          measuredDegree: measuredDegree ?? null,
          measuredRank: measuredDegree === undefined ? null : featureRank(D, measuredDegree),
          certifiedDegree: certifiedDegree ?? null,
          certifiedRank: certifiedDegree === undefined ? null : featureRank(D, certifiedDegree),
          noSpeedupRank: length / D,
        });
        if (measuredDegree !== undefined) push(rankSeries, `measured, L=${length}`, [gamma, featureRank(D, measuredDegree)]);
        if (certifiedDegree !== undefined) push(rankSeries, `certified, L=${length}`, [gamma, featureRank(D, certifiedDegree)]);
        if (length === comparisonLength) {
          const offsetProblem = benchProblem({ length, d: D, rank: RANK, adaptation: 'full', gamma, sharedOffset: 1.5 }, new Rng(context.seed + length));
          const offsetExact = loraGradients(offsetProblem, { method: 'exact', backend: context.backend });
          for (const [name, polynomial, centerKeys, onOffset] of [
            ['taylor', 'taylor', false, false],
            ['chebyshev', 'chebyshev', false, false],
            ['taylor, shared key offset', 'taylor', false, true],
            ['taylor, shared key offset, centered', 'taylor', true, true],
          ] as const) {
            const [fast, error] = fastAt(4, polynomial, centerKeys, onOffset ? offsetProblem : problem, onOffset ? offsetExact : exact);
            rows.push({ table: 'variants', L: length, gamma, degree: 4, variant: name, R: fast?.report.range ?? null, measuredError: fast ? error : 'refused' });
            if (fast) push(variantSeries, name, [gamma, error]);
          }
        }
        context.progress.tick(`L=${length} Γ=${gamma}`);
      }
    }
    context.progress.finish();
    const errorAt = (length: number, gamma: number, degree: number) => {
      const e = rows.find((r) => r.table === 'error' && r.L === length && r.gamma === gamma && r.degree === degree)?.measuredError;
      return typeof e === 'number' ? e : undefined;
    };
    for (const length of lengths) {
      const low = errorAt(length, 0.5, 2);
      if (low !== undefined) findings.push(`L=${length}: degree 2 at Γ=0.5 has relative gradient error ${low.toExponential(2)} (target ≤ 1e-3).`);
      const high = DEGREES.map((g) => errorAt(length, 3, g)).filter((e): e is number => e !== undefined);
      if (high.length > 0) findings.push(`L=${length}: at Γ=3 the errors of degrees ${DEGREES.join(', ')} are ${high.map((e) => e.toExponential(1)).join(', ')} (theory: O(1) past the transition).`);
    }
    const bounded = rows.filter((r) => r.table === 'error' && Number.isFinite(r.certifiedGradientBound)).length;
    findings.push(
      boundViolations > 0
        ? `The certified gradient bound fell below the measured error in ${boundViolations} cases — a bug to investigate.`
        : bounded === 0
          ? `No certified gradient bound was available (${context.backend.precision === 'float32' ? 'float32 backend' : 'every case refused'}), so none was checked.`
          : `The certified gradient bound was at or above the measured error in all ${bounded} cases where it was finite.`,
    );
    notes.push(
      `Single head, d=${D} (so degree 8 has rank ${featureRank(D, 8)}), r=${RANK}, full adaptation, chained fast path, β=1/√d; X scaled so that Γ is exact. Error = max|Ĝ − G|/max|G| over every adapter gradient. "measured degree" is the smallest g ≤ ${MAX_SEARCH_DEGREE} whose measured error is ≤ ε = ${EPSILON}; "certified degree" is the smallest whose certified attention bound is ≤ ε. No speed-up is possible once rank·d ≥ L.`,
    );
    const sqrtLog = (length: number) => ({ x: Math.sqrt(Math.log(length)), label: `√log L, L=${length}` });
    return {
      suite: 'phase',
      title: phaseSuite.title,
      parameters: { gammas, lengths, degrees: DEGREES, d: D, rank: RANK, epsilon: EPSILON, seed: context.seed },
      rows,
      rawTimings: {},
      findings,
      notes,
      plots: [
        {
          name: 'error',
          svg: linePlot({
            title: 'Relative gradient error of the fast path vs Γ',
            xLabel: 'Γ = max(‖√β·Q‖∞, ‖√β·K‖∞)',
            yLabel: 'max|Ĝ − G| / max|G|',
            logY: true,
            series: [...errorSeries].map(([name, points]) => ({ name, points })),
            markers: lengths.map(sqrtLog),
          }),
        },
        {
          name: 'rank',
          svg: linePlot({
            title: `Rank needed for ε = ${EPSILON} vs Γ (dashed: rank·d = L, no speed-up)`,
            xLabel: 'Γ',
            yLabel: 'rank C(d+g, g)',
            logY: true,
            series: [
              ...[...rankSeries].map(([name, points]) => ({ name, points })),
              ...lengths.map((length) => ({ name: `L/d, L=${length}`, points: [[gammas[0], length / D], [gammas[gammas.length - 1], length / D]] as [number, number][], dashed: true })),
            ],
            markers: lengths.map(sqrtLog),
          }),
        },
        {
          name: 'variants',
          svg: linePlot({
            title: `Degree 4 at L=${comparisonLength}: Taylor vs Chebyshev, with and without key centering`,
            xLabel: 'Γ',
            yLabel: 'max|Ĝ − G| / max|G|',
            logY: true,
            series: [...variantSeries].map(([name, points]) => ({ name, points })),
          }),
        },
      ],
    };
  },
};
