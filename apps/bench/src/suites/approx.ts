import { applySoftmax, approximateSoftmaxKernel, exactSoftmax, featureRank, positiveRandomFeatures, type KernelApproximation } from '@almora/kernels';
import { matmul, maxAbs, randomNormal, Rng, scale, sub, type Matrix } from '@almora/tensor';
import type { Plot, Recorded, Row, Suite, SuiteContext, SuiteReport } from '../harness.js';
import { seriesFrom } from '../series.js';
import { median } from '../stats.js';
import { linePlot } from '@almora/cli-kit';

const D = 4;

function relativeMaxError(approx: Matrix, exact: Matrix): number {
  return maxAbs(sub(approx, exact)) / maxAbs(exact);
}

/** Error against time per method and Γ, one point per degree (rank). */
function drawApproxPlots({ rows }: Recorded): Plot[] {
  const series = seriesFrom(rows.map((r) => [`${String(r.method)}, Γ=${String(r.gamma)}`, [r.seconds as number, r.outputError as number]]));
  return [
    {
      name: 'accuracy-per-time',
      svg: linePlot({
        title: 'Attention-output error vs time, equal rank',
        xLabel: 'seconds',
        yLabel: 'max|f̂V − fV| / max|fV|',
        logX: true,
        logY: true,
        series: series.map(({ name, points }) => ({ name, points: [...points].sort((a, b) => a[0] - b[0]), dashed: name.startsWith('FAVOR') })),
      }),
    },
  ];
}

/** Accuracy per unit of time: certified polynomial features vs FAVOR+ random features at equal rank. */
export const approxSuite: Suite = {
  name: 'approx',
  title: 'Approximation: polynomial features vs positive random features (FAVOR+) at equal rank',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const length = context.quick ? 256 : 2048;
    const gammas = context.quick ? [0.5] : [0.5, 1, 2];
    const degrees = context.quick ? [1, 2, 3] : [1, 2, 3, 4, 5, 6];
    const beta = 1 / Math.sqrt(D);
    const rows: Row[] = [];
    const rawTimings: Record<string, number[]> = {};
    context.progress.start('approx', gammas.length * degrees.length);
    for (const gamma of gammas) {
      const rng = new Rng(context.seed);
      const q0 = randomNormal(length, D, rng);
      const k0 = randomNormal(length, D, rng);
      const v = randomNormal(length, D, rng);
      const s = gamma / (Math.sqrt(beta) * Math.max(maxAbs(q0), maxAbs(k0)));
      const q = scale(q0, s);
      const k = scale(k0, s);
      const exact = matmul(exactSoftmax(q, k, beta), v);
      for (const degree of degrees) {
        const rank = featureRank(D, degree);
        const methods: [string, () => KernelApproximation][] = [
          [
            'polynomial (Taylor)',
            () => {
              const r = approximateSoftmaxKernel(q, k, { beta, degree });
              if (r.status !== 'approximated') throw new Error(r.message);
              return r.approximation;
            },
          ],
          ['FAVOR+', () => positiveRandomFeatures(q, k, { beta, rank, rng: new Rng(context.seed + degree) })],
        ];
        for (const [name, build] of methods) {
          const times: number[] = [];
          let error = 0;
          for (let r = 0; r < context.repeats; r++) {
            const t0 = performance.now();
            const approximation = build();
            const output = applySoftmax(approximation, v);
            times.push((performance.now() - t0) / 1000);
            error = relativeMaxError(output, exact);
          }
          const seconds = median(times);
          rows.push({ gamma, method: name, degree: name === 'FAVOR+' ? null : degree, rank, seconds, outputError: error, certified: name !== 'FAVOR+' });
          rawTimings[`${name} Γ=${gamma} rank=${rank}`] = times;
        }
        context.progress.tick(`Γ=${gamma} degree ${degree}`);
      }
    }
    context.progress.finish();
    const findings: string[] = [];
    for (const gamma of gammas) {
      for (const degree of degrees) {
        const poly = rows.find((r) => r.gamma === gamma && r.degree === degree)!;
        const favor = rows.find((r) => r.gamma === gamma && r.method === 'FAVOR+' && r.rank === poly.rank)!;
        if (degree === degrees[degrees.length - 1] || degree === 2) {
          findings.push(
            `Γ=${gamma}, rank ${poly.rank}: polynomial error ${(poly.outputError as number).toExponential(2)} in ${((poly.seconds as number) * 1000).toFixed(1)} ms vs FAVOR+ ${(favor.outputError as number).toExponential(2)} in ${((favor.seconds as number) * 1000).toFixed(1)} ms.`,
          );
        }
      }
    }
    const recorded: Recorded = { parameters: { length, d: D, gammas, degrees, repeats: context.repeats, seed: context.seed }, rows, rawTimings };
    return {
      suite: 'approx',
      title: approxSuite.title,
      ...recorded,
      findings,
      notes: [
        `L=${length}, d=${D}, β=1/√d; time = building U, V and applying f̂ to V (O(L·k·d)); error = max|f̂V − fV|/max|fV| against the exact softmax. FAVOR+ uses rank = C(d+g, g) features for the matching degree.`,
      ],
      plots: drawApproxPlots(recorded),
    };
  },
  drawPlots: drawApproxPlots,
};
