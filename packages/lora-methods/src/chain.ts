import { loraConfig, mergeAdapter } from '@almora/peft';
import type { LoraWeights } from '@almora/lora';
import { InvalidArgumentError, type Matrix, randomNormal, zeros } from '@almora/tensor';
import { loraState } from './lora.js';
import { checkAdapterGradients, checkInit, type LoraMethod, type MethodInit, type ModuleMethodState } from './method.js';

/** One adapted module of a chain: its current (merged) base weight and the stage's state. */
export interface ChainModule {
  /** W with every earlier stage merged in (out×in). */
  weight: Matrix;
  /** The current stage's adapter state. */
  state: ModuleMethodState;
}

/**
 * W + s·lora_B·lora_A by `@almora/peft`'s mergeAdapter (PEFT's merge_and_unload), for one module:
 * the merged weight, in W's dtype.
 */
export function mergeIntoWeight(weight: Matrix, adapter: LoraWeights, scaling: number): Matrix {
  const r = adapter.lora_A.rows;
  const config = loraConfig({ r, lora_alpha: scaling * r, target_modules: ['module'] });
  return mergeAdapter({ 'module.weight': weight }, { config, modules: { module: adapter } })['module.weight'];
}

/**
 * A chain's stage boundary: merges the current stage's adapter into the weight (via
 * {@link mergeIntoWeight}) and starts the next stage with `method.init` on the merged weight.
 * Every chain method starts a stage with a zero update (one factor zero), so the module's output
 * x·W_effᵀ is unchanged across the boundary; the total update after k stages is a sum of k
 * rank-≤r terms, so rank ≤ k·r.
 */
export function nextStage(method: LoraMethod, current: ChainModule, init: Omit<MethodInit, 'weight'>): ChainModule {
  const weight = mergeIntoWeight(current.weight, current.state.adapter(), current.state.scaling);
  return { weight, state: method.init({ ...init, weight }) };
}

/** Checks a chain's stepsPerStage. */
function checkSteps(method: string, stepsPerStage: number): void {
  if (!Number.isInteger(stepsPerStage) || stepsPerStage < 1)
    throw new InvalidArgumentError(`${method}: stepsPerStage must be a positive integer, got ${stepsPerStage}`);
}

/** Options of {@link racLora}. */
export interface RacLoraOptions {
  /** Optimizer steps per stage; default 100 (this package's default, not the paper's). */
  stepsPerStage?: number;
  /** Which factor trains; the other is drawn at random and fixed. Default 'B' (A random). */
  trained?: 'A' | 'B';
  /** Standard deviation of the random factor's Gaussian entries; default 1/√in for A, 1/√r for B. */
  std?: number;
}

/**
 * RAC-LoRA, the randomized asymmetric chain of LoRA (Malinovsky et al., "Randomized Asymmetric Chain of LoRA: The First Meaningful
 * Theoretical Framework for Low-Rank Adaptation", 2024, arXiv 2410.08305). Stage t:
 *
 *   A_t ~ N(0, σ²) drawn fresh and fixed,  B_t = 0 trained  (or the mirror: B_t random, A_t = 0),
 *   at the stage's end W_{t+1} = W_t + s·B_t·A_t (merge), then the next stage,
 *
 * so W_T = W_0 + s·Σ_t B_t·A_t with rank ≤ T·r. The gradient of the trained factor is the exact
 * one (∂B = ∂lora_B, or ∂A = ∂lora_A). The Gaussian's scale is our choice (the paper's analysis
 * takes any distribution meeting its sketch condition).
 */
export function racLora(options: RacLoraOptions = {}): LoraMethod {
  const { stepsPerStage = 100, trained = 'B' } = options;
  checkSteps('rac-lora', stepsPerStage);
  if (trained !== 'A' && trained !== 'B') throw new InvalidArgumentError(`rac-lora: trained must be 'A' or 'B', got ${String(trained)}`);
  if (options.std !== undefined && !(Number.isFinite(options.std) && options.std > 0)) {
    throw new InvalidArgumentError(`rac-lora: std must be finite and > 0, got ${options.std}`);
  }
  return {
    name: 'rac-lora',
    description: `RAC-LoRA: per stage a fresh random ${trained === 'B' ? 'A' : 'B'} fixed, ${trained} trained from 0, merged after ${stepsPerStage} steps`,
    needsInitialGradient: false,
    needsWeightGradient: false,
    chain: { stepsPerStage },
    init(init) {
      const { weight, scaling } = checkInit('rac-lora', init);
      const { rows: out, cols: inn } = weight;
      const lora_A = trained === 'B' ? randomNormal(init.r, inn, init.rng, { std: options.std ?? 1 / Math.sqrt(inn) }) : zeros(init.r, inn);
      const lora_B = trained === 'B' ? zeros(out, init.r) : randomNormal(out, init.r, init.rng, { std: options.std ?? 1 / Math.sqrt(init.r) });
      const adapter = () => ({ lora_A, lora_B });
      return {
        parameters: [trained === 'B' ? lora_B : lora_A],
        scaling,
        adapter,
        gradients(g) {
          const d = checkAdapterGradients('rac-lora', g, adapter());
          return [trained === 'B' ? d.lora_B : d.lora_A];
        },
      };
    },
  };
}

/** Options of {@link xgbLora}. */
export interface XgbLoraOptions {
  /** Optimizer steps per stage (boosting round); default 100 (this package's default). */
  stepsPerStage?: number;
}

/**
 * XGBLoRA (Zhang et al., "Less is More: Extreme Gradient Boost Rank-1
 * Adaption for Efficient Finetuning of LLMs", 2024, arXiv 2410.19694): gradient boosting with
 * LoRA weak learners. Stage t trains a fresh plain LoRA adapter (PEFT init, both factors) on the
 * current weight, then merges it:
 *
 *   W_{t+1} = W_t + s·B_t·A_t,   W_T = W_0 + s·Σ_t B_t·A_t,  rank(W_T − W_0) ≤ T·r.
 *
 * The paper's learners are rank 1: pass r = 1 (the rank is the caller's, as for every method).
 */
export function xgbLora(options: XgbLoraOptions = {}): LoraMethod {
  const { stepsPerStage = 100 } = options;
  checkSteps('xgblora', stepsPerStage);
  return {
    name: 'xgblora',
    description: `XGBLoRA: a fresh plain LoRA adapter (rank 1 in the paper) per boosting round, merged after ${stepsPerStage} steps`,
    needsInitialGradient: false,
    needsWeightGradient: false,
    chain: { stepsPerStage },
    init: (init) => loraState(init, 'xgblora'),
  };
}
