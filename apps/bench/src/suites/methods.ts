import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { linePlot, type Series } from '@almora/cli-kit';
import { LORA_METHODS, type LoraMethodName } from '@almora/lora-methods';
import { type Qwen3Config, type Qwen3Lora, type Qwen3LoraConfig, qwen3ModulePath, qwen3StateDictShapes } from '@almora/model';
import {
  brownText,
  FINETUNE_DEFAULTS,
  type LanguageModelConfig,
  type LanguageModelRun,
  loadQwen3,
  methodFor,
  RANK_ALLOCATIONS,
  type RankAllocation,
  SHIPPED_BASE_DIR,
  trainableParameterCount,
  trainLanguageModel,
} from '@almora/training';
import type { Plot, Recorded, Row, Suite, SuiteContext, SuiteReport } from '../harness.js';
import { seriesFrom } from '../series.js';
import { perplexity, perplexityChange } from './model.js';

/** One way of training the adapters: a LoRA method and how its ranks are spread over the modules. */
export interface Variant {
  /** The method's name, or the rank allocator's for plain LoRA with an allocation. */
  name: string;
  method: LoraMethodName;
  rankAllocation: RankAllocation;
}

/** The methods of @almora/lora-methods, plain LoRA (the reference) first. */
const METHODS: readonly LoraMethodName[] = ['lora', 'lora-one', 'lora-sb', 'sbora', 'cora', 'lora-pro', 'rac-lora', 'xgblora'];

/** Every compared variant: each method at one r, then plain LoRA with each rank allocator (the same total rank, spread by it). */
export const VARIANTS: readonly Variant[] = [
  ...METHODS.map((method): Variant => ({ name: method, method, rankAllocation: 'none' })),
  ...RANK_ALLOCATIONS.filter((a) => a !== 'none').map((allocation): Variant => ({ name: allocation, method: 'lora', rankAllocation: allocation })),
];

/** How far a method's trainable-parameter count may be from plain LoRA's and still count as the same budget: ±10%. */
export const BUDGET_TOLERANCE = 0.1;

/** One method's adapters at the budget: its r (lora_alpha = 2·r) and what it trains. */
export interface MethodBudget {
  variant: Variant;
  lora: Qwen3LoraConfig;
  trainableParameters: number;
  /** trainableParameters / plain LoRA's − 1. */
  budgetGap: number;
  /** Whether r is the largest the adapted weights allow (the budget may be out of reach above it). */
  atLimit: boolean;
}

/** The smallest side of the adapted weights: the largest r every target module allows. */
export function rankLimit(base: Qwen3Config, lora: Qwen3LoraConfig): number {
  const shapes = qwen3StateDictShapes(base);
  return Math.min(...lora.target_modules.map((module) => Math.min(...shapes[`${qwen3ModulePath(0, module)}.weight`])));
}

/**
 * The budget rule: for each method the r in [1, `limit`] whose trainable-parameter count is
 * closest to `budget` (the smaller r on a tie), with lora_alpha = 2·r as in the defaults. Every
 * method's count grows with r, so the search stops at the first r whose count reaches the budget.
 */
export function matchBudget(count: (r: number) => number, budget: number, limit: number): { r: number; count: number } {
  let best = { r: 1, count: count(1) };
  for (let r = 2; r <= limit && best.count < budget; r++) {
    const c = count(r);
    if (Math.abs(c - budget) < Math.abs(best.count - budget)) best = { r, count: c };
    if (c >= budget) break;
  }
  return best;
}

/**
 * Every compared variant at plain LoRA's budget (FINETUNE_DEFAULTS' r on its target modules). An
 * allocator keeps plain LoRA's r as the mean rank (the same total rank); what it trains depends on
 * the ranks it picks, so its count here is the uniform one and each run reports its own.
 */
export function methodBudgets(base: Qwen3Config, reference: Qwen3LoraConfig): MethodBudget[] {
  const budget = trainableParameterCount(base, reference, 'lora');
  const limit = rankLimit(base, reference);
  return VARIANTS.map((variant) => {
    const at = (r: number): Qwen3LoraConfig => ({ ...reference, r, lora_alpha: 2 * r });
    const { r, count } =
      variant.method === 'lora'
        ? { r: reference.r, count: budget }
        : matchBudget((rank) => trainableParameterCount(base, at(rank), variant.method), budget, limit);
    return { variant, lora: variant.method === 'lora' ? reference : at(r), trainableParameters: count, budgetGap: count / budget - 1, atLimit: r === limit };
  });
}

/** What one fine-tune (one method, one seed) measured. */
export interface MethodRun {
  /** The variant's name. */
  method: string;
  seed: number;
  /** Held-out bits per character of the base and after the last step. */
  bitsBefore: number;
  bitsAfter: number;
  /** Wall time of the steps (evaluations excluded). */
  stepSeconds: number;
  /** Share of (step, layer, sequence, head) decisions that took the fast path. */
  fastShare: number;
  trainableParameters: number;
  /** Training-batch bits per character at each step. */
  curve: number[];
  /** Each adapted module's rank in the adapter the run exports (a chain's: its stages side by side), layer by layer. */
  ranks: string;
}

/** A fine-tune's ranks by layer and module, as the rows show them. */
export function ranksOf(lora: Qwen3Lora): string {
  const layers = new Map<string, string[]>();
  for (const [path, adapter] of Object.entries(lora.adapters)) {
    const [, layer, , module] = /^model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)$/.exec(path) ?? [];
    layers.set(layer, [...(layers.get(layer) ?? []), `${module} ${adapter.lora_A.rows}`]);
  }
  return [...layers].map(([layer, modules]) => `layer ${layer}: ${modules.join(', ')}`).join('; ');
}

/** The share of head decisions of a run that took the fast path. */
export function fastShareOf(run: Pick<LanguageModelRun, 'records'>): number {
  const heads = run.records.flatMap((record) => record.layers.flatMap((layer) => layer.heads));
  return heads.length === 0 ? 0 : heads.filter((h) => h.chosen === 'fast').length / heads.length;
}

const mean = (values: readonly number[]) => values.reduce((s, v) => s + v, 0) / values.length;
/** Sample standard deviation (n − 1); undefined for fewer than two values. */
const spread = (values: readonly number[]) =>
  values.length < 2 ? undefined : Math.sqrt(values.reduce((s, v) => s + (v - mean(values)) ** 2, 0) / (values.length - 1));

/** One method over its seeds, paired seed by seed with plain LoRA. */
export interface MethodSummary {
  method: string;
  seeds: number[];
  /** Relative perplexity change vs plain LoRA on the same seed: 2^(bpc − bpc_lora) − 1, per seed. */
  vsLora: number[];
  /** Seeds on which the method's held-out perplexity is below plain LoRA's. */
  lowerOn: number;
  /** Lower than plain LoRA on every seed (never for plain LoRA itself). */
  beatsLora: boolean;
  meanPerplexity: number;
  perplexitySpread: number | undefined;
  meanVsLora: number;
  meanVsBase: number;
  meanStepSeconds: number;
  stepSecondsSpread: number | undefined;
  meanFastShare: number;
  /** What it trained, averaged over seeds (an allocator's ranks can differ by seed). */
  meanTrainableParameters: number;
}

/** Summaries per variant from its runs, in {@link VARIANTS}' order; plain LoRA's runs are the reference. */
export function summarize(runs: readonly MethodRun[]): MethodSummary[] {
  const reference = new Map(runs.filter((r) => r.method === 'lora').map((r) => [r.seed, r.bitsAfter]));
  return VARIANTS.map((v) => v.name)
    .filter((method) => runs.some((r) => r.method === method))
    .map((method) => {
      const own = runs.filter((r) => r.method === method);
      const vsLora = own.map((r) => perplexityChange(reference.get(r.seed)!, r.bitsAfter));
      const lowerOn = vsLora.filter((v) => v < 0).length;
      return {
        method,
        seeds: own.map((r) => r.seed),
        vsLora,
        lowerOn,
        beatsLora: method !== 'lora' && lowerOn === own.length,
        meanPerplexity: mean(own.map((r) => perplexity(r.bitsAfter))),
        perplexitySpread: spread(own.map((r) => perplexity(r.bitsAfter))),
        meanVsLora: mean(vsLora),
        meanVsBase: mean(own.map((r) => perplexityChange(r.bitsBefore, r.bitsAfter))),
        meanStepSeconds: mean(own.map((r) => r.stepSeconds)),
        stepSecondsSpread: spread(own.map((r) => r.stepSeconds)),
        meanFastShare: mean(own.map((r) => r.fastShare)),
        meanTrainableParameters: mean(own.map((r) => r.trainableParameters)),
      };
    });
}

const percent = (fraction: number, digits = 2) => `${fraction >= 0 ? '+' : ''}${(100 * fraction).toFixed(digits)}%`;
const plusMinus = (value: number, sd: number | undefined, digits: number) => `${value.toFixed(digits)}${sd === undefined ? '' : ` ± ${sd.toFixed(digits)}`}`;
const perSeed = (s: MethodSummary) => s.vsLora.map((v, i) => `seed ${s.seeds[i]} ${percent(v)}`).join(', ');

/** The findings, every one computed from the budgets and summaries; each method is named in them. */
export function methodsFindings(budgets: readonly MethodBudget[], summaries: readonly MethodSummary[], steps: number, stageSteps: number): string[] {
  const reference = budgets.find((b) => b.variant.name === 'lora')!;
  const lora = summaries.find((s) => s.method === 'lora')!;
  const others = summaries.filter((s) => s.method !== 'lora');
  const seeds = lora.seeds.length;
  const matched = budgets.filter((b) => b.variant.name !== 'lora' && b.variant.rankAllocation === 'none');
  const allocated = summaries.filter((s) => VARIANTS.find((v) => v.name === s.method)!.rankAllocation !== 'none');
  const off = matched.filter((b) => Math.abs(b.budgetGap) > BUDGET_TOLERANCE);
  const lines = [
    `Budget rule: every method gets the r in [1, smallest side of the adapted weights] whose trainable-parameter count is closest to plain LoRA's at r = ${reference.lora.r} on ${reference.lora.target_modules.join(', ')} (${reference.trainableParameters.toLocaleString('en-US')} numbers), with lora_alpha = 2·r: ` +
      matched.map((b) => `${b.variant.name} r = ${b.lora.r}, ${b.trainableParameters.toLocaleString('en-US')} (${percent(b.budgetGap, 1)})`).join('; ') +
      `. ${
        off.length === 0
          ? `All are within ±${100 * BUDGET_TOLERANCE}% of plain LoRA's.`
          : `Outside ±${100 * BUDGET_TOLERANCE}%: ${off
              .map(
                (b) =>
                  `${b.variant.name} (${percent(b.budgetGap, 1)}${b.atLimit ? `; r = ${b.lora.r} is the largest the adapted weights allow, so the budget is out of its reach` : ''})`,
              )
              .join(', ')} — its comparison is not at an equal budget.`
      }`,
    ...(allocated.length === 0
      ? []
      : [
          `Rank allocation: ${allocated.map((s) => s.method).join(', ')} are plain LoRA with plain LoRA's trainable budget spread over the modules as ranks by the allocator (PEFT's rank_pattern; lora_alpha ${reference.lora.lora_alpha}, scaling lora_alpha / r_m per module; whole ranks of modules of different widths, so the count lands near the budget, not on it): ${allocated
            .map(
              (s) =>
                `${s.method} ${Math.round(s.meanTrainableParameters).toLocaleString('en-US')} (${percent(s.meanTrainableParameters / reference.trainableParameters - 1, 1)})`,
            )
            .join(', ')}, mean over seeds.`,
        ]),
    `Equal steps: ${steps} for every method and seed; the chains (${METHODS.filter((m) => LORA_METHODS[m].chain).join(', ')}) merge their adapter into W and start a fresh one every ${stageSteps} steps (stageSteps = max(1, ⌊steps/4⌋) = ${stageSteps}: ${Math.ceil(steps / stageSteps)} stages); their count is what trains in one stage.`,
    `Plain LoRA (the reference): held-out perplexity ${plusMinus(lora.meanPerplexity, lora.perplexitySpread, 3)} after training (mean${seeds > 1 ? ' ± sample standard deviation' : ''} over ${seeds} seed(s)), ${percent(lora.meanVsBase)} vs the base.`,
  ];
  const winners = others.filter((s) => s.beatsLora).sort((a, b) => a.meanVsLora - b.meanVsLora);
  const losers = others.filter((s) => !s.beatsLora).sort((a, b) => a.meanVsLora - b.meanVsLora);
  lines.push(
    winners.length === 0
      ? `Beat plain LoRA (lower held-out perplexity on every one of the ${seeds} seed(s)): none of ${others.map((s) => s.method).join(', ')}.`
      : `Beat plain LoRA (lower held-out perplexity on every one of the ${seeds} seed(s)): ${winners
          .map((s) => `${s.method} by ${(-100 * s.meanVsLora).toFixed(2)}% in perplexity (mean of the paired changes: ${perSeed(s)})`)
          .join('; ')}.`,
  );
  if (losers.length > 0)
    lines.push(
      `Did not beat plain LoRA: ${losers
        .map(
          (s) =>
            `${s.method} (perplexity ${percent(s.meanVsLora)} vs plain LoRA's, mean of the paired changes; lower on ${s.lowerOn} of ${s.seeds.length} seed(s): ${perSeed(s)})`,
        )
        .join('; ')}.`,
    );
  lines.push(
    `What "beats" can mean here: lower on every seed, paired by seed (same data order and held-out windows); with ${seeds} seed(s) that is all that can be claimed — no significance test, and a gap smaller than plain LoRA's own spread over seeds${lora.perplexitySpread === undefined ? ' (not measured with one seed)' : ` (± ${lora.perplexitySpread.toFixed(3)} in perplexity, ${(100 * (lora.perplexitySpread / lora.meanPerplexity)).toFixed(2)}% of its mean)`} is within noise.`,
    `Wall time of the ${steps} steps (mean${seeds > 1 ? ' ± sample standard deviation' : ''}): ${summaries
      .map(
        (s) => `${s.method} ${plusMinus(s.meanStepSeconds, s.stepSecondsSpread, 2)} s (${(s.meanStepSeconds / lora.meanStepSeconds).toFixed(2)}× plain LoRA's)`,
      )
      .join(', ')}.`,
    `Share of (head, step) decisions on the fast path ('auto'): ${summaries.map((s) => `${s.method} ${(100 * s.meanFastShare).toFixed(0)}%`).join(', ')}.`,
  );
  return lines;
}

/**
 * Each variant's held-out perplexity per seed (from the "run" rows), and the training curves of
 * the first seed (from the "step" rows); plain LoRA, the reference, dashed.
 */
function drawMethodsPlots({ rows }: Recorded): Plot[] {
  const table = (name: string) => rows.filter((r) => r.table === name);
  const firstSeed = Math.min(...table('run').map((r) => r.seed as number));
  const referenceDashed = (series: Series[]) => series.map((s) => ({ ...s, dashed: s.name === 'lora' }));
  return [
    {
      name: 'perplexity',
      svg: linePlot({
        title: 'Held-out perplexity after fine-tuning, per seed (below plain LoRA on every seed: beats it)',
        xLabel: 'seed',
        yLabel: 'perplexity (2^bits per character)',
        series: referenceDashed(seriesFrom(table('run').map((r) => [String(r.method), [r.seed as number, r.perplexityAfter as number]]))),
      }),
    },
    {
      name: 'curves',
      svg: linePlot({
        title: `Training bits per character by step (seed ${firstSeed}, one sequence a step)`,
        xLabel: 'step',
        yLabel: 'bits per character (training batch)',
        series: referenceDashed(
          seriesFrom(
            table('step')
              .filter((r) => r.seed === firstSeed)
              .map((r) => [String(r.method), [r.step as number, r.trainingBitsPerChar as number]]),
          ),
        ),
      }),
    },
  ];
}

/** The fine-tune every method runs: FINETUNE_DEFAULTS (quick: 3 steps at L = 256, 2 held-out windows), 'auto' attention, no checkpoints along the way. */
function baseConfig(quick: boolean): LanguageModelConfig {
  const config: LanguageModelConfig = quick
    ? { ...FINETUNE_DEFAULTS, contextLength: 256, steps: 3, warmupSteps: 1, evalWindows: 2, checkpointEvery: 0 }
    : { ...FINETUNE_DEFAULTS, checkpointEvery: 0 };
  return { ...config, method: 'auto' };
}

/** The chains' stage length: a quarter of the steps (4 stages), at least 1. */
const chainStageSteps = (steps: number) => Math.max(1, Math.floor(steps / 4));

/** The config of one variant's run: its r and lora_alpha, its rank allocation, and the stage length where it is a chain (the others take none). */
const runConfig = (config: LanguageModelConfig, budget: MethodBudget, seed: number): LanguageModelConfig => ({
  ...config,
  seed,
  lora: budget.lora,
  loraMethod: budget.variant.method,
  rankAllocation: budget.variant.rankAllocation,
  stageSteps: LORA_METHODS[budget.variant.method].chain ? chainStageSteps(config.steps) : 0,
});

/**
 * LoRA training methods against plain LoRA (#14): the shipped base fine-tuned on held-out fiction
 * (the imaginative half of the Brown corpus) with plain LoRA and every method of
 * @almora/lora-methods, at equal steps and an equal trainable-parameter budget, over three seeds:
 * held-out perplexity, wall time of the steps, and the share of head decisions on the fast path.
 */
export const methodsSuite: Suite = {
  name: 'methods',
  title: 'LoRA training methods vs plain LoRA: equal steps, equal trainable-parameter budget',
  async run(context: SuiteContext): Promise<SuiteReport> {
    if (!existsSync(path.join(SHIPPED_BASE_DIR, 'config.json')))
      throw new Error(`the shipped base model is missing from ${SHIPPED_BASE_DIR}: make it with \`almora pretrain\` (see apps/train/README.md) first`);
    const base = await loadQwen3(SHIPPED_BASE_DIR);
    const data = brownText('imaginative');
    const config = baseConfig(context.quick);
    const seeds = context.quick ? [context.seed] : [context.seed, context.seed + 1, context.seed + 2];
    const budgets = methodBudgets(base.config, config.lora);
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'almora-bench-methods-'));
    const runs: MethodRun[] = [];
    const rawTimings: Record<string, number[]> = {};
    context.progress.start('methods', budgets.length * seeds.length);
    try {
      // One untimed step of plain LoRA first, so that no method's wall time carries the process's warm-up (JIT, first allocations).
      await trainLanguageModel(base, data, { ...config, steps: 1, warmupSteps: 0, evalWindows: 1 }, path.join(scratch, 'warm-up'));
      await rm(path.join(scratch, 'warm-up'), { recursive: true, force: true });
      for (const seed of seeds) {
        for (const budget of budgets) {
          const name = budget.variant.name;
          const runDir = path.join(scratch, `${name}-seed-${seed}`);
          const run = await trainLanguageModel(base, data, runConfig(config, budget, seed), runDir);
          await rm(runDir, { recursive: true, force: true });
          const expected = trainableParameterCount(base.config, { ...budget.lora, rank_pattern: run.model.lora?.rank_pattern }, budget.variant.method);
          if (run.trainableParameters !== expected)
            throw new Error(`${name} trained ${run.trainableParameters} numbers; trainableParameterCount said ${expected}`);
          runs.push({
            method: name,
            seed,
            bitsBefore: run.initialValidation,
            bitsAfter: run.finalValidation,
            stepSeconds: run.stepSeconds,
            fastShare: fastShareOf(run),
            trainableParameters: run.trainableParameters,
            curve: run.records.map((r) => r.bitsPerChar),
            ranks: ranksOf(run.model.lora!),
          });
          rawTimings[`${name} seed ${seed}`] = run.records.map((r) => r.seconds);
          context.progress.tick(`${name}, seed ${seed}`);
        }
      }
      context.progress.finish();
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    const summaries = summarize(runs);
    const budgetOf = (name: string) => budgets.find((b) => b.variant.name === name)!;
    const referenceCount = budgetOf('lora').trainableParameters;
    const referenceBits = new Map(runs.filter((r) => r.method === 'lora').map((r) => [r.seed, r.bitsAfter]));
    const rows: Row[] = [
      ...runs.map((r) => ({
        table: 'run',
        method: r.method,
        seed: r.seed,
        r: budgetOf(r.method).lora.r,
        lora_alpha: budgetOf(r.method).lora.lora_alpha,
        rankAllocation: budgetOf(r.method).variant.rankAllocation,
        ranks: r.ranks,
        trainableParameters: r.trainableParameters,
        budgetVsLora: r.trainableParameters / referenceCount - 1,
        steps: config.steps,
        L: config.contextLength,
        bitsPerCharBefore: r.bitsBefore,
        bitsPerCharAfter: r.bitsAfter,
        perplexityAfter: perplexity(r.bitsAfter),
        perplexityChangeVsBase: perplexityChange(r.bitsBefore, r.bitsAfter),
        perplexityVsLora: perplexityChange(referenceBits.get(r.seed)!, r.bitsAfter),
        stepSeconds: r.stepSeconds,
        fastShare: r.fastShare,
      })),
      ...summaries.map((s) => ({
        table: 'summary',
        method: s.method,
        seeds: s.seeds.length,
        r: budgetOf(s.method).lora.r,
        lora_alpha: budgetOf(s.method).lora.lora_alpha,
        rankAllocation: budgetOf(s.method).variant.rankAllocation,
        trainableParameters: s.meanTrainableParameters,
        budgetVsLora: s.meanTrainableParameters / referenceCount - 1,
        meanPerplexityAfter: s.meanPerplexity,
        perplexitySpread: s.perplexitySpread ?? null,
        meanPerplexityChangeVsBase: s.meanVsBase,
        meanPerplexityVsLora: s.meanVsLora,
        lowerThanLoraOnSeeds: s.lowerOn,
        beatsLora: s.beatsLora,
        meanStepSeconds: s.meanStepSeconds,
        stepSecondsSpread: s.stepSecondsSpread ?? null,
        meanFastShare: s.meanFastShare,
      })),
      ...runs.flatMap((r) => r.curve.map((bits, step) => ({ table: 'step', method: r.method, seed: r.seed, step: step + 1, trainingBitsPerChar: bits }))),
    ];
    const notes: string[] = [];
    if (context.quick) notes.push('Quick mode: 3 steps at L = 256, one seed — a smoke check of the suite; these numbers are not the results.');
    notes.push(
      `Setup: the shipped base (${SHIPPED_BASE_DIR}) fine-tuned on the imaginative half of the Brown corpus with FINETUNE_DEFAULTS — ${config.steps} steps of ${config.batchSize} × L = ${config.contextLength} bytes, Adam at ${config.learningRate} (warm-up ${config.warmupSteps}, ${config.decay} decay), clip ${config.clipNorm}, q_norm/k_norm cap ${config.qkNormCap}, attention method 'auto' with ε = ${config.epsilon} — seeds ${seeds.join(', ')} (each seed gives every method the same data order and the same held-out windows). Held-out: ${config.evalWindows} windows of ${config.contextLength} bytes of the validation text, full exact attention; perplexity = 2^(bits per character). "spread" columns are sample standard deviations over seeds (— with one seed). Each run trains in its own temporary folder, removed afterwards.`,
    );
    notes.push(
      `Methods, as @almora/training runs them (methodFor: the chains with the stage length above; LoRA-One and LoRA-SB with γ = η·r/lora_alpha, so their first adapter is one step of the learning rate on the rank-r part of ∂W): ${budgets
        .filter((b) => b.variant.rankAllocation === 'none')
        .map(
          (b) =>
            `${b.variant.name} — ${methodFor(b.variant.method, LORA_METHODS[b.variant.method].chain ? chainStageSteps(config.steps) : 0, config.learningRate, b.lora).description}`,
        )
        .join(
          '; ',
        )}. Rank allocators (plain LoRA, ranks from a probe batch of the seed where they need one): sr-lora — stable rank ‖W‖²_F/‖W‖²₂ of each base weight; gelora — the rise in TwoNN intrinsic dimension of the hidden states across each layer; sublora — the greedy second-order gain of each rank unit of the full-weight gradient.`,
      `Order: seed by seed, the methods in the order above, after one untimed warm-up step of plain LoRA; wall time is the steps only (a chain's merges included; the evaluations and each method's initialisation excluded — for ${METHODS.filter((m) => LORA_METHODS[m].needsInitialGradient).join(', ')}, sublora and gelora that is one extra forward + backward of the full weights' gradient), on one machine.`,
      'Table "step": every run\'s training-batch bits per character at each step (the curves plot draws the first seed\'s).',
    );
    const recorded: Recorded = {
      parameters: {
        methods: VARIANTS.map((v) => v.name),
        steps: config.steps,
        stageSteps: chainStageSteps(config.steps),
        contextLength: config.contextLength,
        seeds,
        referenceR: config.lora.r,
        targetModules: [...config.lora.target_modules],
        rLimit: rankLimit(base.config, config.lora),
        budgetTolerance: BUDGET_TOLERANCE,
      },
      rows,
      rawTimings,
    };
    return {
      suite: 'methods',
      title: methodsSuite.title,
      ...recorded,
      findings: methodsFindings(budgets, summaries, config.steps, chainStageSteps(config.steps)),
      notes,
      plots: drawMethodsPlots(recorded),
    };
  },
  drawPlots: drawMethodsPlots,
};
