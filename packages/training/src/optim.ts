import type { Matrix } from '@almora/tensor';

/** Optimizer state, plain numbers so a checkpoint stores it exactly. */
export interface OptimizerState {
  kind: 'adam' | 'sgd';
  /** Updates applied so far. */
  t: number;
  /** Adam's first and second moments per parameter (empty for SGD). */
  m: number[][];
  v: number[][];
}

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPS = 1e-8;

/** A fresh optimizer for parameters of the given sizes. */
export function createOptimizer(kind: 'adam' | 'sgd', sizes: number[]): OptimizerState {
  const zeros = () => sizes.map((n) => new Array<number>(kind === 'adam' ? n : 0).fill(0));
  return { kind, t: 0, m: zeros(), v: zeros() };
}

/** A learning-rate schedule: the peak rate, its warm-up steps, how it decays and over how many steps. */
export interface LearningRateSchedule {
  learningRate: number;
  warmupSteps: number;
  decay: 'cosine' | 'linear' | 'none';
  steps: number;
}

/** Learning rate at 0-based `step`: linear warm-up to the peak, then cosine or linear decay to 10% of it. */
export function learningRate(config: LearningRateSchedule, step: number): number {
  const peak = config.learningRate;
  if (step < config.warmupSteps) return (peak * (step + 1)) / config.warmupSteps;
  const span = Math.max(1, config.steps - config.warmupSteps - 1);
  const progress = Math.min(1, (step - config.warmupSteps) / span);
  const floor = 0.1 * peak;
  if (config.decay === 'cosine') return floor + (peak - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
  if (config.decay === 'linear') return peak - (peak - floor) * progress;
  return peak;
}

/** √(Σ g²) over every gradient. */
export function globalNorm(grads: Matrix[]): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.data.length; i++) s += g.data[i] * g.data[i];
  return Math.sqrt(s);
}

/**
 * Applies one update in place: gradients are first scaled by `gradScale` (mean over the batch and
 * clipping), then Adam (bias-corrected, β₁ = 0.9, β₂ = 0.999, ε = 1e-8) or plain SGD.
 */
export function applyUpdate(state: OptimizerState, params: Matrix[], grads: Matrix[], rate: number, gradScale: number): void {
  state.t += 1;
  const correction1 = 1 - BETA1 ** state.t;
  const correction2 = 1 - BETA2 ** state.t;
  params.forEach((p, n) => {
    const g = grads[n];
    const m = state.m[n];
    const v = state.v[n];
    for (let i = 0; i < p.data.length; i++) {
      const gi = g.data[i] * gradScale;
      if (state.kind === 'sgd') {
        p.data[i] -= rate * gi;
        continue;
      }
      m[i] = BETA1 * m[i] + (1 - BETA1) * gi;
      v[i] = BETA2 * v[i] + (1 - BETA2) * gi * gi;
      p.data[i] -= (rate * (m[i] / correction1)) / (Math.sqrt(v[i] / correction2) + EPS);
    }
  });
}
