import type { PolynomialChoice, PolynomialMethod } from '@almora/kernels';
import type { FastVariant, GradientMethod, ResolvedOptions } from './options.js';
import type { HeadPlan } from './plan.js';
import { fmt, type HeadBytes, type HeadCost, plannedBytes } from './regime.js';

/** What was decided for one head of one sequence, and why, in numbers. */
export interface HeadReport {
  /** Index of the sequence in the batch. */
  sequence: number;
  /** Index of the head. */
  head: number;
  /** The path it ran. */
  chosen: 'exact' | 'fast';
  /** The fast variant, when chosen is 'fast'. */
  variant: FastVariant | undefined;
  /** One sentence: why this path. */
  reason: string;
  /** Γ = max(‖√β·Q_h‖∞, ‖√β·K_h‖∞) of the queries and keys that enter this head's softmax. */
  gamma: number;
  /** Certified range R of β·q_i·k_j (after centering, if used). */
  range: number;
  /** R without centering. */
  rawRange: number;
  /** β·max‖q‖·max‖k‖, the plain Cauchy–Schwarz range, for comparison with R. */
  cauchySchwarzRange: number;
  /** Whether the keys were centered. */
  centered: boolean;
  /** Polynomial degree g, when one was planned. */
  degree: number | undefined;
  /** Feature rank k = C(d_h+g, g), when planned. */
  rank: number | undefined;
  /** Polynomial family of the degree planned. */
  polynomial: PolynomialMethod;
  /** Certified entrywise relative error of this head's softmax, when planned. */
  softmaxBound: number | undefined;
  /** Certified entrywise relative error of p′(S)/D̂ against the softmax, the factor the autodiff variant's backward uses, when planned. */
  autodiffBound: number | undefined;
  /** A-posteriori estimate (fast heads, with `sampledRows`): the largest entrywise relative attention error on the sampled query rows — a measurement, not a bound. */
  sampledSoftmaxError: number | undefined;
  /** Certified entrywise relative error of the attention matrix this head computed: the fast path's bound (rounding included), or exact attention's rounding in its precision (~1e-12 in float64; far more in float32). */
  attentionBound: number;
  /** Whether `attentionBound` ≤ ε. */
  meetsEpsilon: boolean;
  /** Predicted multiply-adds of each path. */
  predictedCost: HeadCost;
  /** Exact path: whether the forward pass kept the probabilities for the backward pass (see `probabilityBudget`). */
  keepsProbabilities: boolean;
  /** Predicted bytes this head holds from forward to backward, and at most for a moment (see `memoryBudget`). */
  predictedBytes: HeadBytes;
}

/** What was decided and why, over every head: the summary, and each head's own {@link HeadReport}. */
export interface AttentionReport {
  /** The method asked for. */
  requested: GradientMethod;
  /** The path that ran: one for every head, or 'mixed' when 'auto' chose differently per head. */
  chosen: 'exact' | 'fast' | 'mixed';
  /** Fast variant used by the fast heads, if any. */
  variant: FastVariant | undefined;
  /** One sentence: why this path. */
  reason: string;
  /** Every step worth knowing (fallbacks, per-head choices when mixed). */
  steps: string[];
  /** The ε asked for (certified attention error target). */
  epsilon: number;
  /** Γ, the largest over heads and sequences. */
  gamma: number;
  /** √(log L) for the longest sequence. */
  threshold: number;
  /** Largest certified range R over heads and sequences (after centering, if used). */
  range: number;
  /** Largest R without centering. */
  rawRange: number;
  /** Whether centering was used in any head. */
  centered: boolean;
  /** The backend the per-head work ran on, e.g. 'cpu'. */
  backend: string;
  /** Largest polynomial degree planned, if any. */
  degree: number | undefined;
  /** Largest feature rank planned, if any. */
  rank: number | undefined;
  /** Polynomial family asked for ('auto': per head; see each head's `polynomial`). */
  polynomial: PolynomialChoice;
  /** Largest certified entrywise relative error of a softmax, when planned. */
  softmaxBound: number | undefined;
  /** Largest sampled (a-posteriori, estimated) attention error over the fast heads, when `sampledRows` asked for it. */
  sampledSoftmaxError: number | undefined;
  /** Whether every head's attention matrix is certified within ε. */
  meetsEpsilon: boolean;
  /** Predicted multiply-adds of each path, summed over heads. */
  predictedCost: HeadCost;
  /** Predicted peak bytes of the call beyond its inputs and outputs: every head's kept bytes plus the largest transient; checked against `memoryBudget` before anything was allocated. */
  predictedBytes: number;
  /** The limit it was checked against. */
  memoryBudget: number;
  /** Every head of every sequence, in sequence-major order. */
  heads: HeadReport[];
}

function maxDefined(values: (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined);
  return defined.length === 0 ? undefined : Math.max(...defined);
}

function headReport(plan: HeadPlan, o: ResolvedOptions): HeadReport {
  const a = plan.approximation;
  return {
    sequence: plan.sequence,
    head: plan.head,
    chosen: plan.path,
    variant: plan.variant,
    reason: plan.reason,
    gamma: a.range.gamma,
    range: a.range.range,
    rawRange: a.range.rawRange,
    cauchySchwarzRange: a.range.cauchySchwarzRange,
    centered: a.range.centered,
    degree: a.degree,
    rank: a.rank,
    polynomial: a.method,
    softmaxBound: a.bound?.softmaxRelative,
    autodiffBound: a.bound?.autodiffRelative,
    sampledSoftmaxError: plan.sampledSoftmaxError,
    attentionBound: plan.attentionBound,
    meetsEpsilon: plan.attentionBound <= o.epsilon,
    predictedCost: plan.cost,
    keepsProbabilities: plan.keepsProbabilities,
    predictedBytes: plan.bytes,
  };
}

/** The report of a call: each head's decision, and a summary in which the widest range speaks for all. */
export function summarize(plans: HeadPlan[], steps: string[], o: ResolvedOptions, longest: number): AttentionReport {
  const heads = plans.map((plan) => headReport(plan, o));
  const fast = heads.filter((h) => h.chosen === 'fast');
  const chosen = fast.length === 0 ? 'exact' : fast.length === heads.length ? 'fast' : 'mixed';
  const worst = heads.reduce((a, b) => (b.range > a.range ? b : a));
  let reason: string;
  if (chosen === 'mixed') {
    reason = `${fast.length} of ${heads.length} heads fast, the rest exact (per head in steps)`;
    for (const h of heads) steps.push(`sequence ${h.sequence}, head ${h.head}: ${h.reason}`);
  } else {
    // The head with the widest range speaks for all: it is the one nearest the regime's edge.
    reason = worst.reason;
  }
  const totalFast = plans.every((p) => p.cost.fast !== undefined) ? plans.reduce((sum, p) => sum + p.cost.fast!, 0) : undefined;
  return {
    requested: o.method,
    chosen,
    variant: fast[0]?.variant,
    reason,
    steps: [
      `plan: R = ${fmt(worst.range)}, Γ = ${fmt(worst.gamma)} vs √log L = ${fmt(Math.sqrt(Math.log(longest)))}, degree ${worst.degree ?? '—'}, rank ${worst.rank ?? '—'}, softmax bound ${worst.softmaxBound === undefined ? '—' : fmt(worst.softmaxBound)}`,
      ...steps,
    ],
    epsilon: o.epsilon,
    gamma: Math.max(...heads.map((h) => h.gamma)),
    threshold: Math.sqrt(Math.log(longest)),
    range: Math.max(...heads.map((h) => h.range)),
    rawRange: Math.max(...heads.map((h) => h.rawRange)),
    centered: heads.some((h) => h.centered),
    backend: o.backend.name,
    degree: maxDefined(heads.map((h) => h.degree)),
    rank: maxDefined(heads.map((h) => h.rank)),
    polynomial: o.polynomial,
    softmaxBound: maxDefined(heads.map((h) => h.softmaxBound)),
    sampledSoftmaxError: maxDefined(heads.map((h) => h.sampledSoftmaxError)),
    meetsEpsilon: heads.every((h) => h.meetsEpsilon),
    predictedCost: { exact: plans.reduce((sum, p) => sum + p.cost.exact, 0), fast: totalFast },
    predictedBytes: plannedBytes(plans),
    memoryBudget: o.memoryBudget,
    heads,
  };
}
