import type { LoraWeights } from '@almora/lora';
import { assertFinite, assertShape, InvalidArgumentError, type Matrix, type Rng, toDType } from '@almora/tensor';

/** The names of the per-module LoRA training methods in {@link LORA_METHODS}. */
export type LoraMethodName = 'lora' | 'lora-one' | 'lora-sb' | 'sbora' | 'cora' | 'lora-pro' | 'rac-lora' | 'xgblora';

/** What a method's `init` receives for one adapted module. */
export interface MethodInit {
  /** The module's base weight W (out×in, PEFT's orientation: the module computes x·Wᵀ). */
  weight: Matrix;
  /**
   * ∂loss/∂W (out×in) at the base weight on a batch (the training loop draws a probe batch): the one-step full gradient the
   * gradient-initialised methods (LoRA-One, LoRA-SB) start from. Required where
   * {@link LoraMethod.needsInitialGradient} is true, ignored elsewhere.
   */
  weightGradient?: Matrix;
  /** LoRA rank r (rows of lora_A, columns of lora_B), 1 ≤ r ≤ min(out, in). */
  r: number;
  /** PEFT's lora_alpha; the adapter's scaling is s = lora_alpha / r. */
  lora_alpha: number;
  /** The seeded generator every random draw of the method takes from. */
  rng: Rng;
}

/**
 * One adapted module under a method: its trainable tensors and how they make the adapter the
 * model runs with. An optimizer updates `parameters` in place with what `gradients` returns;
 * `adapter()` always reflects the current parameters.
 */
export interface ModuleMethodState {
  /** The trainable tensors, in a fixed order (float64). */
  readonly parameters: readonly Matrix[];
  /** The PEFT scaling s = lora_alpha / r the adapter runs with: W_eff = W + s·lora_B·lora_A. */
  readonly scaling: number;
  /** The adapter (lora_A r×in, lora_B out×r) made from the current parameters. */
  adapter(): LoraWeights;
  /**
   * The update directions of `parameters`, in their order and shapes, from the loss gradients of
   * the adapter the model ran with (∂lora_A = s·Bᵀ·∂W and ∂lora_B = s·∂W·Aᵀ, as the model's
   * backward returns them) and, for a method with {@link LoraMethod.needsWeightGradient}, ∂W. For a
   * re-parameterising method these are the exact gradients ∂loss/∂parameter; for a gradient
   * transform (LoRA-One's preconditioner, LoRA-Pro) they are the transformed directions the
   * optimizer uses in their place.
   */
  gradients(adapterGradients: LoraWeights, weightGradient?: Matrix): Matrix[];
}

/** A chain method's schedule: after every `stepsPerStage` optimizer steps, {@link nextStage}. */
export interface ChainSchedule {
  /** Optimizer steps per stage before the adapter is merged into W and a fresh one starts. */
  stepsPerStage: number;
}

/** A named LoRA training method, as the fine-tuning loop chooses it. */
export interface LoraMethod {
  /** Its name in {@link LORA_METHODS}. */
  readonly name: LoraMethodName;
  /** One line: what it changes relative to plain LoRA. */
  readonly description: string;
  /** Whether `init` needs {@link MethodInit.weightGradient}, the one-step full gradient ∂W. */
  readonly needsInitialGradient: boolean;
  /** Whether `gradients` needs ∂W at every step (none of the methods here does). */
  readonly needsWeightGradient: boolean;
  /** Set for chain methods (RAC-LoRA, XGBLoRA): when to merge and restart. */
  readonly chain?: ChainSchedule;
  /** The module's initial state. */
  init(options: MethodInit): ModuleMethodState;
}

/**
 * Checks a method's init options and returns W (and ∂W when given) as float64, with the scaling.
 * Bad r, lora_alpha or shapes are typed errors naming `method`.
 */
export function checkInit(method: string, options: MethodInit): { weight: Matrix; weightGradient?: Matrix; scaling: number } {
  const { weight, weightGradient, r, lora_alpha } = options;
  assertFinite(weight, `${method}: weight`);
  const limit = Math.min(weight.rows, weight.cols);
  if (!Number.isInteger(r) || r < 1 || r > limit) {
    throw new InvalidArgumentError(`${method}: r must be an integer in [1, ${limit}] for a ${weight.rows}×${weight.cols} weight, got ${r}`);
  }
  if (!Number.isFinite(lora_alpha) || lora_alpha <= 0) throw new InvalidArgumentError(`${method}: lora_alpha must be finite and > 0, got ${lora_alpha}`);
  let gradient: Matrix | undefined;
  if (weightGradient) {
    assertShape(weightGradient, weight.rows, weight.cols, `${method}: weightGradient`);
    assertFinite(weightGradient, `${method}: weightGradient`);
    gradient = toDType(weightGradient, 'float64');
  }
  return { weight: toDType(weight, 'float64'), weightGradient: gradient, scaling: lora_alpha / r };
}

/** ∂W of the init options, or an {@link InvalidArgumentError} saying `method` needs it. */
export function requireInitialGradient(method: string, gradient: Matrix | undefined): Matrix {
  if (!gradient) throw new InvalidArgumentError(`${method}: needs weightGradient, the one-step full gradient ∂W at the base weight`);
  return gradient;
}

/** Checks that `grads` has the shapes of `adapter` and finite entries; returns them as float64. */
export function checkAdapterGradients(method: string, grads: LoraWeights, adapter: LoraWeights): LoraWeights {
  assertShape(grads.lora_A, adapter.lora_A.rows, adapter.lora_A.cols, `${method}: ∂lora_A`);
  assertShape(grads.lora_B, adapter.lora_B.rows, adapter.lora_B.cols, `${method}: ∂lora_B`);
  assertFinite(grads.lora_A, `${method}: ∂lora_A`);
  assertFinite(grads.lora_B, `${method}: ∂lora_B`);
  return { lora_A: toDType(grads.lora_A, 'float64'), lora_B: toDType(grads.lora_B, 'float64') };
}

/** r distinct indices in [0, n), drawn from `rng` by a partial Fisher–Yates shuffle, sorted. */
export function distinctIndices(n: number, r: number, rng: Rng): number[] {
  const pool = [...Array(n).keys()];
  for (let i = 0; i < r; i++) {
    const j = i + rng.int(n - i);
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, r).sort((a, b) => a - b);
}
