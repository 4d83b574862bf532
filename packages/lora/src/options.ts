import { DEFAULT_MAX_DEGREE, MAX_POLYNOMIAL_DEGREE, type PolynomialChoice } from '@almora/kernels';
import { cpuBackend } from '@almora/kernels';
import { type Backend, InvalidArgumentError } from '@almora/tensor';

/** How gradients are computed: exactly, by the low-rank chain, or chosen by the regime check. */
export type GradientMethod = 'exact' | 'fast' | 'auto';

/** The two fast variants: the paper's chain, or reverse mode through the features (cheaper per rank; its backward multiplies by p′, so it certifies at one degree more). */
export type FastVariant = 'chained' | 'autodiff';

/** Default target ε on the certified entrywise relative error of the attention matrix. */
export const DEFAULT_EPSILON = 1e-3;

/** Query rows per block of the exact path: what it holds beyond O(L·d) is O(block·L) when it recomputes the probabilities. */
export const DEFAULT_BLOCK_SIZE = 128;

/** Bytes of attention probabilities the exact path keeps between forward and backward by default: 256 MiB. */
export const DEFAULT_PROBABILITY_BUDGET = 2 ** 28;

/** The most memory a call may plan to hold by default: 8 GiB. */
export const DEFAULT_MEMORY_BUDGET = 2 ** 33;

const METHODS: readonly GradientMethod[] = ['exact', 'fast', 'auto'];
const VARIANTS: readonly FastVariant[] = ['chained', 'autodiff'];
const POLYNOMIALS: readonly PolynomialChoice[] = ['auto', 'taylor', 'chebyshev'];

/** How the attention core computes; names follow PEFT where it has them. */
export interface AttentionOptions {
  /** 'auto' (default) takes 'fast' for a head only when its certified bounds meet ε and it is predicted faster. */
  method?: GradientMethod;
  /**
   * Target on the certified entrywise relative error of the attention matrix, |f̂_ij − f_ij| ≤ ε·f_ij
   * (the paper's approximation step) — and, for the autodiff variant, of the factor p′(S)/D̂ its
   * backward uses in f's place. 'auto' uses a fast path for a head only when this is certified;
   * 'fast' reports whether it is. Default {@link DEFAULT_EPSILON}.
   */
  epsilon?: number;
  /** Force the polynomial degree of the fast path instead of choosing it (0 to 100). */
  degree?: number;
  /** Largest degree the chooser may pick; default 24, at most 100. */
  maxDegree?: number;
  /** Polynomial family of the fast path: 'taylor' (the paper's), 'chebyshev', or 'auto' (default): per head, Chebyshev only where it certifies ε at a lower degree than Taylor. */
  polynomial?: PolynomialChoice;
  /** Fast variant: method 'fast' runs it (default 'chained'); method 'auto' considers only it (default: both, the cheaper certified one per head). */
  variant?: FastVariant;
  /** Subtract the mean key inside the approximation when that shrinks the certified range (softmax is unchanged by it); default true. */
  centerKeys?: boolean;
  /**
   * A-posteriori check: for each fast head, this many query rows (seeded, deterministic) are
   * compared entry by entry against exact attention, in O(rows·L·d), and the largest relative
   * error is reported as `sampledSoftmaxError` — a statistical estimate beside the certificate,
   * never a certificate. Default 0 (off).
   */
  sampledRows?: number;
  /** Query rows per block of the exact path; default {@link DEFAULT_BLOCK_SIZE}. */
  blockSize?: number;
  /** Where the per-head work runs; default the CPU. */
  backend?: Backend;
  /**
   * Bytes of attention probabilities the exact path may keep from the forward pass for the
   * backward pass, over all heads, instead of recomputing them (memory for time: the backward then
   * skips Q·Kᵀ and exp). Default {@link DEFAULT_PROBABILITY_BUDGET}; 0 always recomputes (flash
   * style). Kept probabilities count against `memoryBudget` too.
   */
  probabilityBudget?: number;
  /**
   * The most memory, in bytes, the call may plan to hold beyond its inputs and outputs (the
   * attention core's buffers, estimated from the shapes, degree and rank before anything is
   * allocated). 'auto' skips a fast path that would exceed it; a call whose cheapest path still
   * exceeds it — or a forced 'fast' path that does — is refused with a `ResourceLimitError` naming
   * the estimate and the limit. Default {@link DEFAULT_MEMORY_BUDGET}.
   */
  memoryBudget?: number;
}

/** {@link AttentionOptions} checked, with every default filled in. */
export interface ResolvedOptions {
  /** The method asked for. */
  method: GradientMethod;
  /** ε. */
  epsilon: number;
  /** A forced degree, if any. */
  degree: number | undefined;
  /** Largest degree the chooser may pick. */
  maxDegree: number;
  /** Polynomial family, or 'auto'. */
  polynomial: PolynomialChoice;
  /** The variant asked for, if any. */
  variant: FastVariant | undefined;
  /** Center keys when that shrinks the range. */
  centerKeys: boolean;
  /** Query rows per fast head checked against exact attention. */
  sampledRows: number;
  /** Query rows per exact block. */
  blockSize: number;
  /** Where the per-head work runs. */
  backend: Backend;
  /** Bytes of probabilities the exact path may keep between forward and backward. */
  probabilityBudget: number;
  /** The most memory the call may plan to hold. */
  memoryBudget: number;
}

function oneOf<V extends string>(value: V | undefined, allowed: readonly V[], fallback: V, name: string): V {
  const chosen = value ?? fallback;
  if (!allowed.includes(chosen)) throw new InvalidArgumentError(`${name} must be ${allowed.map((a) => `'${a}'`).join(', ')}; got "${String(chosen)}"`);
  return chosen;
}

function positiveInteger(value: number | undefined, fallback: number, name: string, allowZero = false): number {
  const chosen = value ?? fallback;
  if (!Number.isInteger(chosen) || chosen < (allowZero ? 0 : 1))
    throw new InvalidArgumentError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${chosen}`);
  return chosen;
}

function degreeOption(value: number, name: string, least: number): number {
  if (!Number.isInteger(value) || value < least || value > MAX_POLYNOMIAL_DEGREE)
    throw new InvalidArgumentError(`${name} must be an integer from ${least} to ${MAX_POLYNOMIAL_DEGREE}, got ${value}`);
  return value;
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  const chosen = value ?? fallback;
  if (!(chosen >= 0)) throw new InvalidArgumentError(`${name} must be a number ≥ 0, got ${chosen}`);
  return chosen;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  const chosen = value ?? fallback;
  if (!(chosen > 0)) throw new InvalidArgumentError(`${name} must be a number > 0, got ${chosen}`);
  return chosen;
}

/** Checks every option once, naming the bad one, and fills in the defaults. */
export function resolveOptions(options: AttentionOptions): ResolvedOptions {
  const epsilon = options.epsilon ?? DEFAULT_EPSILON;
  if (!Number.isFinite(epsilon) || epsilon <= 0) throw new InvalidArgumentError(`epsilon must be finite and > 0, got ${epsilon}`);
  return {
    method: oneOf(options.method, METHODS, 'auto', 'method'),
    epsilon,
    degree: options.degree === undefined ? undefined : degreeOption(options.degree, 'degree', 0),
    maxDegree: degreeOption(options.maxDegree ?? DEFAULT_MAX_DEGREE, 'maxDegree', 1),
    polynomial: oneOf(options.polynomial, POLYNOMIALS, 'auto', 'polynomial'),
    variant: options.variant === undefined ? undefined : oneOf(options.variant, VARIANTS, 'chained', 'variant'),
    centerKeys: options.centerKeys ?? true,
    sampledRows: positiveInteger(options.sampledRows, 0, 'sampledRows', true),
    blockSize: positiveInteger(options.blockSize, DEFAULT_BLOCK_SIZE, 'blockSize'),
    backend: options.backend ?? cpuBackend,
    probabilityBudget: nonNegative(options.probabilityBudget, DEFAULT_PROBABILITY_BUDGET, 'probabilityBudget'),
    memoryBudget: positive(options.memoryBudget, DEFAULT_MEMORY_BUDGET, 'memoryBudget'),
  };
}

/** The softmax temperature when none is given: β = 1/√d_head. */
export function defaultBeta(headDim: number): number {
  return 1 / Math.sqrt(headDim);
}

/** Checks a given β, or derives the default from the head dimension. */
export function resolveBeta(beta: number | undefined, headDim: number): number {
  const chosen = beta ?? defaultBeta(headDim);
  if (!Number.isFinite(chosen) || chosen <= 0) throw new InvalidArgumentError(`beta must be finite and > 0, got ${chosen}`);
  return chosen;
}

/** LoRA's scaling α/r, the factor on lora_B·lora_A (PEFT's `scaling`). */
export function loraScaling(alpha: number, rank: number): number {
  if (!Number.isFinite(alpha) || alpha <= 0) throw new InvalidArgumentError(`alpha must be finite and > 0, got ${alpha}`);
  return alpha / rank;
}
