// What the explorer computes for one choice of parameters: the same function runs in the page's
// Web Worker and in the end-to-end test in Node, so the page's numbers can be checked.
import { loraGradientsAsync, relativeGradientError, syntheticProblem, type LoraOptions } from '@almora/lora';
import { cpuBackend, OutOfRegimeError } from '@almora/kernels';
import { type Backend, Rng } from '@almora/tensor';

/** The reader's choices. */
export interface ExplorerParams {
  length: number;
  d: number;
  gamma: number;
  /** A fixed degree, or undefined to let the planner choose it for ε. */
  degree: number | undefined;
  epsilon: number;
  adaptation: 'partial' | 'full';
}

/** Everything the page shows. */
export interface ExplorerResult {
  backend: string;
  gamma: number;
  threshold: number;
  exactSeconds: number;
  exactLoss: number;
  /** Undefined when the fast path refused (the polynomial is not positive on this range). */
  fast:
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
  auto: { chosen: 'exact' | 'fast' | 'mixed'; reason: string; degree: number | undefined; rank: number | undefined };
}

/** Stages, for the progress bar. */
export const STAGES = ['problem', 'exact', 'fast', 'auto'] as const;

/** Seed of every explorer problem. */
export const EXPLORER_SEED = 1;

/**
 * Runs the exact, fast and auto paths on the chosen problem, reporting each stage as it starts.
 * Asynchronous so that WebGPU, which reads back only through promises, can serve it too.
 */
export async function explore(params: ExplorerParams, backend: Backend = cpuBackend, onStage: (stage: (typeof STAGES)[number]) => void = () => {}): Promise<ExplorerResult> {
  onStage('problem');
  const problem = syntheticProblem(
    { length: params.length, d: params.d, rank: 2, targets: params.adaptation === 'full' ? ['q', 'k', 'v'] : ['q', 'v'], gamma: params.gamma },
    new Rng(EXPLORER_SEED),
  );
  const common: LoraOptions = { epsilon: params.epsilon, backend };
  onStage('exact');
  let t0 = performance.now();
  const exact = await loraGradientsAsync(problem, { ...common, method: 'exact' });
  const exactSeconds = (performance.now() - t0) / 1000;
  onStage('fast');
  let fast: ExplorerResult['fast'];
  try {
    t0 = performance.now();
    const result = await loraGradientsAsync(problem, { ...common, method: 'fast', degree: params.degree });
    const seconds = (performance.now() - t0) / 1000;
    const bounds = result.report.gradientBound;
    fast = {
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
    fast = { refused: error.message };
  }
  onStage('auto');
  const auto = (await loraGradientsAsync(problem, { ...common, method: 'auto' })).report;
  return {
    backend: backend.name,
    gamma: exact.report.gamma,
    threshold: exact.report.threshold,
    exactSeconds,
    exactLoss: exact.loss,
    fast,
    auto: { chosen: auto.chosen, reason: auto.reason, degree: auto.degree, rank: auto.rank },
  };
}
