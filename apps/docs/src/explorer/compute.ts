// What the explorer computes: one point, or a phase diagram of many. The same functions run in the
// page's Web Worker and in the end-to-end test in Node, so the page's numbers can be checked.
import { type LoraGradients, loraGradientsAsync, type LoraProblem, relativeGradientError, syntheticProblem, type LoraOptions } from '@almora/lora';
import { cpuBackend, OutOfRegimeError } from '@almora/kernels';
import { type Backend, Rng } from '@almora/tensor';

/** The reader's choices for one point. */
export interface ExplorerParams {
  length: number;
  d: number;
  gamma: number;
  /** A fixed degree, or undefined to let the planner choose it for ε. */
  degree: number | undefined;
  epsilon: number;
  adaptation: 'partial' | 'full';
}

/** The fast path at one degree, or why it refused. */
export type FastOutcome =
  | {
      seconds: number;
      loss: number;
      degree: number;
      rank: number;
      relativeError: number;
      softmaxBound: number;
      gradientBound: number | undefined;
    }
  | { refused: string };

/** What 'auto' chose on a problem. */
export interface AutoChoice {
  chosen: 'exact' | 'fast' | 'mixed';
  reason: string;
  degree: number | undefined;
  rank: number | undefined;
}

/** Everything the page shows about one point. */
export interface ExplorerResult {
  backend: string;
  gamma: number;
  threshold: number;
  exactSeconds: number;
  exactLoss: number;
  /** The fast path's numbers, or why it refused (the polynomial is not positive on this range). */
  fast: FastOutcome;
  auto: AutoChoice;
}

/** Stages of one point, for the progress bar. */
export const STAGES = ['problem', 'exact', 'fast', 'auto'] as const;

/** Seed of every explorer problem. */
export const EXPLORER_SEED = 1;

/** The exact and 'auto' runs of one problem: what every fast degree on it is compared with. */
interface Baseline {
  problem: LoraProblem;
  common: LoraOptions;
  exact: LoraGradients;
  exactSeconds: number;
}

/** The seeded problem at (L, d, Γ) and its exact gradients, timed. */
async function baseline(params: Omit<ExplorerParams, 'degree'>, backend: Backend): Promise<Baseline> {
  const problem = syntheticProblem(
    { length: params.length, d: params.d, rank: 2, targets: params.adaptation === 'full' ? ['q', 'k', 'v'] : ['q', 'v'], gamma: params.gamma },
    new Rng(EXPLORER_SEED),
  );
  const common: LoraOptions = { epsilon: params.epsilon, backend };
  const t0 = performance.now();
  const exact = await loraGradientsAsync(problem, { ...common, method: 'exact' });
  return { problem, common, exact, exactSeconds: (performance.now() - t0) / 1000 };
}

/** The fast path at `degree` (undefined: the planner's choice for ε) against the exact gradients. */
async function fastAt({ problem, common, exact }: Baseline, degree: number | undefined): Promise<FastOutcome> {
  try {
    const t0 = performance.now();
    const result = await loraGradientsAsync(problem, { ...common, method: 'fast', degree });
    const seconds = (performance.now() - t0) / 1000;
    const bounds = result.report.gradientBound;
    return {
      seconds,
      loss: result.loss,
      degree: result.report.degree!,
      rank: result.report.rank!,
      relativeError: relativeGradientError(result.grads, exact.grads),
      softmaxBound: result.report.softmaxBound!,
      gradientBound: bounds ? Math.max(...Object.values(bounds).flatMap((g) => [g!.a.relative, g!.b.relative])) : undefined,
    };
  } catch (error) {
    if (!(error instanceof OutOfRegimeError)) throw error;
    return { refused: error.message };
  }
}

async function autoOf({ problem, common }: Baseline): Promise<AutoChoice> {
  const { report } = await loraGradientsAsync(problem, { ...common, method: 'auto' });
  return { chosen: report.chosen, reason: report.reason, degree: report.degree, rank: report.rank };
}

function resultOf(base: Baseline, fast: FastOutcome, auto: AutoChoice, backend: Backend): ExplorerResult {
  return {
    backend: backend.name,
    gamma: base.exact.report.gamma,
    threshold: base.exact.report.threshold,
    exactSeconds: base.exactSeconds,
    exactLoss: base.exact.loss,
    fast,
    auto,
  };
}

/**
 * Runs the exact, fast and auto paths on the chosen problem, reporting each stage as it starts.
 * Asynchronous so that WebGPU, which reads back only through promises, can serve it too.
 */
export async function explore(
  params: ExplorerParams,
  backend: Backend = cpuBackend,
  onStage: (stage: (typeof STAGES)[number]) => void = () => {},
): Promise<ExplorerResult> {
  onStage('problem');
  onStage('exact');
  const base = await baseline(params, backend);
  onStage('fast');
  const fast = await fastAt(base, params.degree);
  onStage('auto');
  return resultOf(base, fast, await autoOf(base), backend);
}

/** One row of a phase diagram: a sequence length and a fixed degree. */
export interface DiagramRow {
  length: number;
  degree: number;
}

/** A phase diagram: Γ across, rows down (degrees at one L, or lengths at one degree). */
export interface DiagramSpec {
  d: number;
  epsilon: number;
  adaptation: 'partial' | 'full';
  /** The columns, ascending. */
  gammas: number[];
  /** What the rows vary: the degree (at one L) or the length (at one degree). */
  axis: 'degree' | 'length';
  rows: DiagramRow[];
}

/** One cell: the point (its row's L and degree at its column's Γ) as the single-point explorer shows it. */
export interface DiagramCell extends ExplorerResult {
  row: number;
  column: number;
  length: number;
  degree: number;
}

/** Named diagrams that show the paper's claims. */
export const PRESETS: Record<string, { label: string; spec: DiagramSpec }> = {
  crossing: {
    label: 'Γ crosses √log L: error against degree (L = 1,024, d = 8)',
    spec: {
      d: 8,
      epsilon: 1e-3,
      adaptation: 'partial',
      gammas: [0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4],
      axis: 'degree',
      rows: [1, 2, 3, 4, 6].map((degree) => ({ length: 1024, degree })),
    },
  },
  lengths: {
    label: 'Longer sequences: the fast path pays off more, the threshold √log L moves right (degree 3, d = 8)',
    spec: {
      d: 8,
      epsilon: 1e-3,
      adaptation: 'partial',
      gammas: [0.25, 0.5, 1, 1.5, 2, 3],
      axis: 'length',
      rows: [256, 1024, 4096].map((length) => ({ length, degree: 3 })),
    },
  },
  quick: {
    label: 'Quick look (L = 256, d = 4)',
    spec: { d: 4, epsilon: 1e-3, adaptation: 'partial', gammas: [0.5, 1.5, 3], axis: 'degree', rows: [1, 2].map((degree) => ({ length: 256, degree })) },
  },
};

/** Cells a diagram will compute (for progress). */
export function cellCount(spec: DiagramSpec): number {
  return spec.gammas.length * spec.rows.length;
}

/**
 * Computes every cell of `spec`, column by column: the exact and 'auto' runs once per (L, Γ), then
 * the fast path at each row's degree. Hands each cell to `onCell` as it is done and stops between
 * cells once `cancelled()` says so, returning what it has.
 */
export async function phaseDiagram(
  spec: DiagramSpec,
  backend: Backend = cpuBackend,
  onCell: (cell: DiagramCell) => void = () => {},
  cancelled: () => boolean = () => false,
): Promise<DiagramCell[]> {
  const cells: DiagramCell[] = [];
  for (const [column, gamma] of spec.gammas.entries()) {
    for (const length of [...new Set(spec.rows.map((r) => r.length))]) {
      if (cancelled()) return cells;
      const base = await baseline({ length, d: spec.d, gamma, epsilon: spec.epsilon, adaptation: spec.adaptation }, backend);
      const auto = await autoOf(base);
      for (const [row, r] of spec.rows.entries()) {
        if (r.length !== length) continue;
        // Between cells the worker takes its messages (a cancel among them).
        await new Promise((resolve) => setTimeout(resolve, 0));
        if (cancelled()) return cells;
        const cell = { ...resultOf(base, await fastAt(base, r.degree), auto, backend), row, column, length, degree: r.degree };
        cells.push(cell);
        onCell(cell);
      }
    }
  }
  return cells;
}
