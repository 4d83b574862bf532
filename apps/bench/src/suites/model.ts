import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { linePlot } from '@almora/cli-kit';
import type { GradientMethod } from '@almora/lora';
import { initQwen3Adapters, qwen3Config, type Qwen3Config, qwen3ForCausalLM, type Qwen3LayerReport, type Qwen3Model } from '@almora/model';
import { Rng } from '@almora/tensor';
import {
  BROWN_BASE_SHAPE,
  bitsPerChar,
  brownText,
  evaluationWindows,
  FINETUNE_DEFAULTS,
  freshQwen3,
  type LanguageModelConfig,
  type LanguageModelRun,
  loadQwen3,
  PRETRAIN_DEFAULTS,
  SHIPPED_BASE_DIR,
  trainLanguageModel,
} from '@almora/training';
import { timeInterleaved, type Plot, type Recorded, type Row, type Suite, type SuiteContext, type SuiteReport } from '../harness.js';
import { median } from '../stats.js';

/** Perplexity of a byte-level model from its bits per character: 2^bpc. */
export const perplexity = (bitsPerCharacter: number): number => 2 ** bitsPerCharacter;

/** Relative perplexity change from `before` to `after` (both in bits per character): 2^(after − before) − 1. */
export const perplexityChange = (before: number, after: number): number => 2 ** (after - before) - 1;

const percent = (fraction: number, digits = 1) => `${fraction >= 0 ? '+' : ''}${(100 * fraction).toFixed(digits)}%`;
const met = (ok: boolean) => (ok ? 'met' : 'NOT met');

// ─── Part A: the main job's fine-tune, four ways ──────────────────────────────────────────────────

/** One way of fine-tuning in part A: the gradient path and LongLoRA's group size (0: full attention). */
interface FinetuneVariant {
  label: string;
  method: GradientMethod;
  shiftedSparseGroup: number;
}

/** What part A measured of one fine-tune. */
export interface FinetuneMeasurement {
  label: string;
  /** Held-out bits per character after fine-tuning (full exact attention). */
  bitsPerChar: number;
  /** Median seconds of one training step. */
  medianStepSeconds: number;
  /** Share of (step, layer, head) triples that ran the fast path. */
  fastHeadShare: number;
}

/** The fine-tune's three variants: exact, 'auto', and LongLoRA's S²-Attn (groups of L/4, exact inside groups). */
function finetuneVariants(contextLength: number): FinetuneVariant[] {
  const group = contextLength / 4;
  return [
    { label: 'exact', method: 'exact', shiftedSparseGroup: 0 },
    { label: 'auto', method: 'auto', shiftedSparseGroup: 0 },
    { label: `S²-Attn (groups of ${group}, exact)`, method: 'exact', shiftedSparseGroup: group },
  ];
}

/**
 * The findings of part A from its numbers: the two checks (exact's perplexity ≥ 10% below the
 * base's; auto's within 1% of exact's) and which variant wins where.
 */
export function finetuneFindings(baseBitsPerChar: number, outcomes: readonly FinetuneMeasurement[]): string[] {
  const [exact, auto, s2] = outcomes;
  const exactGain = -perplexityChange(baseBitsPerChar, exact.bitsPerChar);
  const autoGap = perplexityChange(exact.bitsPerChar, auto.bitsPerChar);
  const lines = [
    `Check (fine-tune): exact's held-out perplexity ${perplexity(exact.bitsPerChar).toFixed(3)} is ${percent(-exactGain)} vs the base's ${perplexity(baseBitsPerChar).toFixed(3)} (target: at least 10% below): ${met(exactGain >= 0.1)}.`,
    `Check (fine-tune): auto's perplexity ${perplexity(auto.bitsPerChar).toFixed(3)} is ${percent(autoGap, 2)} vs exact's (target: within 1%): ${met(Math.abs(autoGap) <= 0.01)}; auto ran the fast path in ${(100 * auto.fastHeadShare).toFixed(0)}% of head-steps, median step ${auto.medianStepSeconds.toFixed(2)} s vs exact's ${exact.medianStepSeconds.toFixed(2)} s (${(exact.medianStepSeconds / auto.medianStepSeconds).toFixed(2)}×).`,
  ];
  if (s2) {
    const speed = exact.medianStepSeconds / s2.medianStepSeconds;
    const gap = perplexityChange(exact.bitsPerChar, s2.bitsPerChar);
    const faster = speed >= 1 ? `${speed.toFixed(2)}× as fast as exact's` : `${(1 / speed).toFixed(2)}× as slow as exact's`;
    const verdict =
      speed > 1 && gap > 0
        ? `S²-Attn buys step time with perplexity: it wins on speed, full exact attention on quality`
        : speed > 1 && gap <= 0
          ? `S²-Attn wins on both here`
          : gap > 0
            ? `S²-Attn loses on both here`
            : `S²-Attn wins on perplexity but not on step time here`;
    lines.push(
      `${s2.label}: median step ${s2.medianStepSeconds.toFixed(2)} s, ${faster}; held-out perplexity ${perplexity(s2.bitsPerChar).toFixed(3)}, ${percent(gap, 2)} vs exact's (evaluated with full attention). ${verdict}.`,
    );
  }
  return lines;
}

/** The shipped base (packages/training/base-model/); in quick mode, when it is not there yet, a stand-in pretrained for a few steps. */
async function fineTuneBase(context: SuiteContext, scratch: string): Promise<{ base: Qwen3Model; name: string }> {
  if (existsSync(path.join(SHIPPED_BASE_DIR, 'config.json')))
    return { base: await loadQwen3(SHIPPED_BASE_DIR), name: `the shipped base (${SHIPPED_BASE_DIR})` };
  if (!context.quick)
    throw new Error(`the shipped base model is missing from ${SHIPPED_BASE_DIR}: make it with \`almora pretrain\` (see apps/train/README.md) first`);
  const config = { ...PRETRAIN_DEFAULTS, steps: 5, warmupSteps: 1, evalWindows: 1, checkpointEvery: 0 };
  const run = await trainLanguageModel(freshQwen3(BROWN_BASE_SHAPE, config.seed), brownText('informative'), config, path.join(scratch, 'stand-in-base'));
  return { base: run.model, name: `a stand-in base pretrained for ${config.steps} steps (the shipped base is not in ${SHIPPED_BASE_DIR} yet)` };
}

/** Part A: the main job's recipe on the shipped base, fine-tuned once per variant with the same steps and seed. */
async function compareFinetunes(
  context: SuiteContext,
  scratch: string,
): Promise<{ rows: Row[]; findings: string[]; config: LanguageModelConfig; baseName: string; stepTimes: Record<string, number[]> }> {
  const { base, name: baseName } = await fineTuneBase(context, scratch);
  const data = brownText('imaginative');
  const config: LanguageModelConfig = context.quick
    ? { ...FINETUNE_DEFAULTS, contextLength: 256, steps: 3, warmupSteps: 1, evalWindows: 2, checkpointEvery: 0 }
    : { ...FINETUNE_DEFAULTS, checkpointEvery: 0 };
  const runs: { variant: FinetuneVariant; run: LanguageModelRun }[] = [];
  for (const variant of finetuneVariants(config.contextLength)) {
    const run = await trainLanguageModel(
      base,
      data,
      { ...config, method: variant.method, shiftedSparseGroup: variant.shiftedSparseGroup },
      path.join(scratch, `finetune-${runs.length}`),
    );
    runs.push({ variant, run });
    context.progress.tick(`fine-tune ${variant.label}`);
  }
  const baseBitsPerChar = runs[0].run.initialValidation;
  const outcomes: FinetuneMeasurement[] = runs.map(({ variant, run }) => {
    const heads = run.records.flatMap((r) => r.layers);
    const fast = heads.reduce((n, l) => n + l.fastHeads, 0);
    const all = heads.reduce((n, l) => n + l.fastHeads + l.exactHeads, 0);
    return {
      label: variant.label,
      bitsPerChar: run.finalValidation,
      medianStepSeconds: median(run.records.map((r) => r.seconds)),
      fastHeadShare: all === 0 ? 0 : fast / all,
    };
  });
  const rows: Row[] = [
    {
      table: 'finetune',
      run: 'base',
      L: config.contextLength,
      steps: 0,
      heldOutBitsPerChar: baseBitsPerChar,
      perplexity: perplexity(baseBitsPerChar),
      perplexityChangeVsBase: 0,
      medianStepSeconds: null,
      fastHeadShare: null,
    },
    ...outcomes.map((o) => ({
      table: 'finetune',
      run: o.label,
      L: config.contextLength,
      steps: config.steps,
      heldOutBitsPerChar: o.bitsPerChar,
      perplexity: perplexity(o.bitsPerChar),
      perplexityChangeVsBase: perplexityChange(baseBitsPerChar, o.bitsPerChar),
      medianStepSeconds: o.medianStepSeconds,
      fastHeadShare: o.fastHeadShare,
    })),
  ];
  const stepTimes = Object.fromEntries(runs.map(({ variant, run }) => [`finetune ${variant.label}`, run.records.map((r) => r.seconds)]));
  return { rows, findings: finetuneFindings(baseBitsPerChar, outcomes), config, baseName, stepTimes };
}

// ─── Part B: the real-text phase diagram ──────────────────────────────────────────────────────────

/** One measured cell of the phase diagram: a pretrained configuration at one context length. */
export interface PhaseCell {
  headDim: number;
  /** The q_norm/k_norm cap; undefined: none. */
  cap: number | undefined;
  L: number;
  /** Held-out bits per character on the imaginative validation text at the first (shorter) length. */
  bitsPerChar: number;
  /** Relative perplexity gap to the uncapped model of the same head_dim. */
  perplexityGap: number;
  /** Γ, the largest over layers, on a validation window of length L. */
  gamma: number;
  /** The path 'auto' took: 'exact', 'fast', 'mixed' or one per layer. */
  path: string;
  /** Degree and feature rank 'auto' planned where it took a fast path. */
  degree: number | undefined;
  rank: number | undefined;
  exactSeconds: number;
  autoSeconds: number;
}

const capLabel = (cap: number | undefined) => (cap === undefined ? 'none' : String(cap));
const speedupOf = (cell: PhaseCell) => cell.exactSeconds / cell.autoSeconds;
const describeCell = (cell: PhaseCell) => `head_dim ${cell.headDim}, cap ${capLabel(cell.cap)}, L = ${cell.L}`;

/** The Qwen3 shape of part B: hidden 64, head_dim `headDim`, 64/head_dim query heads sharing half as many key/value heads, the rest as the Brown base. */
export function phaseShape(headDim: number): Qwen3Config {
  const heads = BROWN_BASE_SHAPE.hidden_size / headDim;
  return qwen3Config({ ...BROWN_BASE_SHAPE, head_dim: headDim, num_attention_heads: heads, num_key_value_heads: heads / 2 });
}

/** The path 'auto' took over a model's layers, with the degree and rank of the fast layers ('—' when every layer is exact). */
export function autoPlan(layers: readonly Pick<Qwen3LayerReport, 'attention'>[]): {
  path: string;
  degree: number | undefined;
  rank: number | undefined;
  gamma: number;
  reason: string;
} {
  const chosen = layers.map((l) => l.attention.chosen);
  const fast = layers.filter((l) => l.attention.chosen !== 'exact');
  const highest = layers.reduce((a, b) => (b.attention.gamma > a.attention.gamma ? b : a));
  const defined = (values: (number | undefined)[]) => {
    const known = values.filter((v): v is number => v !== undefined);
    return known.length === 0 ? undefined : Math.max(...known);
  };
  return {
    path: new Set(chosen).size === 1 ? chosen[0] : chosen.map((c, l) => `layer ${l} ${c}`).join(', '),
    degree: defined(fast.map((l) => l.attention.degree)),
    rank: defined(fast.map((l) => l.attention.rank)),
    gamma: highest.attention.gamma,
    reason: highest.attention.reason,
  };
}

/**
 * The goal of part B from its cells: a configuration where 'auto' took a fast path and ran at
 * least 2× as fast as exact end to end, with perplexity within 5% of the uncapped model of the
 * same head_dim; if none, how far off (the best speedup within 5%, and the perplexity gap of the
 * fastest configuration). A ratio where 'auto' ran exact in every layer is timing noise plus its
 * planning, never a win.
 */
export function phaseGoal(cells: readonly PhaseCell[]): string {
  const bySpeedup = (list: readonly PhaseCell[]) => [...list].sort((a, b) => speedupOf(b) - speedupOf(a));
  const within = cells.filter((c) => c.perplexityGap <= 0.05);
  const winners = bySpeedup(within.filter((c) => c.path !== 'exact' && speedupOf(c) >= 2));
  if (winners.length > 0) {
    const best = winners[0];
    return `Goal (phase diagram): met — ${describeCell(best)}: 'auto' (${best.path}${best.degree === undefined ? '' : `, degree ${best.degree}, rank ${best.rank}`}) ran forward + backward ${speedupOf(best).toFixed(2)}× as fast as exact with perplexity ${percent(best.perplexityGap)} vs the uncapped model (${winners.length} such cell(s) of ${cells.length}).`;
  }
  const [bestWithin] = bySpeedup(within);
  const [fastest] = bySpeedup(cells);
  const withinText = bestWithin
    ? `the best speedup within 5% of the uncapped perplexity is ${speedupOf(bestWithin).toFixed(2)}× (${describeCell(bestWithin)}, 'auto' ran ${bestWithin.path}), ${(2 / speedupOf(bestWithin)).toFixed(2)}× short of 2×`
    : 'no configuration is within 5% of the uncapped perplexity';
  const fastestText =
    !fastest || fastest === bestWithin
      ? ', and it is also the fastest cell'
      : `; the fastest cell, ${describeCell(fastest)} at ${speedupOf(fastest).toFixed(2)}× ('auto' ran ${fastest.path}), is ${percent(fastest.perplexityGap)} in perplexity vs the uncapped model`;
  const fastCount = cells.filter((c) => c.path !== 'exact').length;
  return `Goal (phase diagram): NOT met — no configuration has 'auto' on a fast path ≥ 2× as fast as exact with perplexity within 5% of the uncapped model (a fast path in ${fastCount} of ${cells.length} cells): ${withinText}${fastestText}.`;
}

/** What the phase diagram sweeps: full or quick. */
interface PhaseGrid {
  headDims: number[];
  caps: (number | undefined)[];
  lengths: number[];
  pretrainSteps: number;
  evalWindows: number;
  repeats: number;
}

function phaseGrid(quick: boolean): PhaseGrid {
  return quick
    ? { headDims: [16], caps: [undefined, 0.5], lengths: [256, 512], pretrainSteps: 5, evalWindows: 2, repeats: 1 }
    : { headDims: [8, 16], caps: [undefined, 1.5, 0.5, 0.25], lengths: [2048, 4096], pretrainSteps: 300, evalWindows: 4, repeats: 3 };
}

/** PRETRAIN_DEFAULTS with fewer steps (warm-up scaled alike), the cap, and no evaluation or checkpoint along the way. */
function pretrainConfig(grid: PhaseGrid, cap: number | undefined): LanguageModelConfig {
  const warmupSteps = Math.round((PRETRAIN_DEFAULTS.warmupSteps * grid.pretrainSteps) / PRETRAIN_DEFAULTS.steps);
  return { ...PRETRAIN_DEFAULTS, steps: grid.pretrainSteps, warmupSteps, qkNormCap: cap ?? 0, evalEvery: 0, evalWindows: 2, checkpointEvery: 0 };
}

/**
 * Times one LoRA fine-tuning step's work — forward and backward of one sequence with the main
 * job's adapters — with exact and with 'auto', interleaved after a warm-up; keeps 'auto''s report.
 */
function timeLoraStep(
  model: Qwen3Model,
  ids: number[],
  cap: number | undefined,
  repeats: number,
): { exact: number[]; auto: number[]; autoLayers: Qwen3LayerReport[] } {
  const withCap = cap === undefined ? {} : { qkNormCap: cap };
  let autoLayers: Qwen3LayerReport[] = [];
  const step = (method: GradientMethod) => () => {
    const result = qwen3ForCausalLM(model, ids, { method, epsilon: FINETUNE_DEFAULTS.epsilon, ...withCap });
    result.backward();
    if (method === 'auto') autoLayers = result.layers;
  };
  const times = timeInterleaved(
    [
      { name: 'exact', run: step('exact') },
      { name: 'auto', run: step('auto') },
    ],
    repeats,
  );
  return { exact: times.get('exact')!, auto: times.get('auto')!, autoLayers };
}

/** Part B: per head_dim and cap, a base pretrained on informative text, then its perplexity, Γ, 'auto''s plan and the step times. */
async function phaseDiagram(
  context: SuiteContext,
  scratch: string,
): Promise<{ rows: Row[]; cells: PhaseCell[]; rawTimings: Record<string, number[]>; grid: PhaseGrid }> {
  const grid = phaseGrid(context.quick);
  const informative = brownText('informative');
  const validation = brownText('imaginative').validation;
  const windows = evaluationWindows(validation, grid.lengths[0], grid.evalWindows);
  const rows: Row[] = [];
  const cells: PhaseCell[] = [];
  const rawTimings: Record<string, number[]> = {};
  for (const headDim of grid.headDims) {
    let uncapped: number | undefined;
    for (const cap of grid.caps) {
      const shape = phaseShape(headDim);
      const config = pretrainConfig(grid, cap);
      const run = await trainLanguageModel(freshQwen3(shape, config.seed), informative, config, path.join(scratch, `phase-${headDim}-${capLabel(cap)}`));
      const heldOut = bitsPerChar(run.model, windows, cap ?? 0);
      uncapped ??= heldOut;
      const model: Qwen3Model = { ...run.model, lora: initQwen3Adapters(shape, FINETUNE_DEFAULTS.lora, new Rng(context.seed + 1)) };
      for (const L of grid.lengths) {
        const times = timeLoraStep(model, evaluationWindows(validation, L, 1)[0], cap, grid.repeats);
        const plan = autoPlan(times.autoLayers);
        const cell: PhaseCell = {
          headDim,
          cap,
          L,
          bitsPerChar: heldOut,
          perplexityGap: perplexityChange(uncapped, heldOut),
          gamma: plan.gamma,
          path: plan.path,
          degree: plan.degree,
          rank: plan.rank,
          exactSeconds: median(times.exact),
          autoSeconds: median(times.auto),
        };
        cells.push(cell);
        const key = `head_dim ${headDim} cap ${capLabel(cap)} L=${L}`;
        rawTimings[`${key} exact`] = times.exact;
        rawTimings[`${key} auto`] = times.auto;
        rows.push({
          table: 'phase',
          headDim,
          heads: shape.num_attention_heads,
          kvHeads: shape.num_key_value_heads,
          cap: capLabel(cap),
          pretrainSteps: grid.pretrainSteps,
          L,
          heldOutBitsPerChar: heldOut,
          perplexity: perplexity(heldOut),
          perplexityVsUncapped: cell.perplexityGap,
          gamma: cell.gamma,
          gammaBound: Math.max(...times.autoLayers.map((l) => l.gammaBound)),
          autoPath: cell.path,
          degree: cell.degree ?? null,
          rank: cell.rank ?? null,
          exactSeconds: cell.exactSeconds,
          autoSeconds: cell.autoSeconds,
          speedup: speedupOf(cell),
          autoReason: plan.reason,
        });
      }
      context.progress.tick(`head_dim ${headDim}, cap ${capLabel(cap)}`);
    }
  }
  return { rows, cells, rawTimings, grid };
}

/** Per head_dim: how Γ, perplexity and the speedup move with the cap. */
function phaseFindings(cells: readonly PhaseCell[], grid: PhaseGrid): string[] {
  const lines: string[] = [phaseGoal(cells)];
  for (const headDim of grid.headDims) {
    const at = (L: number) => cells.filter((c) => c.headDim === headDim && c.L === L);
    const first = at(grid.lengths[0]);
    const fastCells = cells.filter((c) => c.headDim === headDim && c.path !== 'exact');
    lines.push(
      `head_dim ${headDim}: by cap (${first.map((c) => capLabel(c.cap)).join(', ')}) Γ at L = ${grid.lengths[0]} is ${first.map((c) => c.gamma.toFixed(2)).join(', ')} and perplexity ${first.map((c) => perplexity(c.bitsPerChar).toFixed(2)).join(', ')}; ` +
        grid.lengths
          .map(
            (L) =>
              `auto/exact speedup at L = ${L}: ${at(L)
                .map((c) => `${speedupOf(c).toFixed(2)}×`)
                .join(', ')}`,
          )
          .join('; ') +
        `; 'auto' took a fast path in ${fastCells.length} of ${cells.filter((c) => c.headDim === headDim).length} cells.`,
    );
  }
  return lines;
}

/** Part B's plots from its table: per head_dim and L, the speedup against Γ (one point per cap), and per head_dim the perplexity against Γ. */
function drawModelPlots({ parameters, rows }: Recorded): Plot[] {
  const [headDims, lengths] = [parameters.headDims as number[], parameters.lengths as number[]];
  const cells = rows.filter((r) => r.table === 'phase');
  const byGamma = (points: [number, number][]) => points.sort((a, b) => a[0] - b[0]);
  const gammas = cells.map((c) => c.gamma as number);
  const [lo, hi] = [Math.min(...gammas), Math.max(...gammas)];
  const pointsAt = (headDim: number, L: number, y: 'speedup' | 'perplexity') =>
    byGamma(cells.filter((c) => c.headDim === headDim && c.L === L).map((c) => [c.gamma as number, c[y] as number]));
  return [
    {
      name: 'speedup',
      svg: linePlot({
        title: "'auto' vs exact: LoRA step speedup against Γ (one point per cap)",
        xLabel: 'Γ (largest over layers, on a validation window)',
        yLabel: 'exact seconds / auto seconds',
        series: [
          ...headDims.flatMap((headDim) => lengths.map((L) => ({ name: `head_dim ${headDim}, L=${L}`, points: pointsAt(headDim, L, 'speedup') }))),
          {
            name: 'goal: 2×',
            points: [
              [lo, 2],
              [hi, 2],
            ],
            dashed: true,
          },
        ],
      }),
    },
    {
      name: 'perplexity',
      svg: linePlot({
        title: `Held-out perplexity (imaginative text, L=${lengths[0]}) against Γ`,
        xLabel: `Γ at L=${lengths[0]}`,
        yLabel: 'perplexity (2^bits per character)',
        series: headDims.map((headDim) => ({ name: `head_dim ${headDim}`, points: pointsAt(headDim, lengths[0], 'perplexity') })),
      }),
    },
  ];
}

/**
 * The language model end to end (#18): (A) the main job's LoRA fine-tune of the shipped base on
 * fiction with exact gradients, 'auto' and LongLoRA's S²-Attn, side by side; (B) the real-text
 * phase diagram — per head_dim and q_norm/k_norm cap a base pretrained on informative text, its
 * perplexity, the Γ it reaches, what 'auto' plans and how much faster its fine-tuning step is.
 */
export const modelSuite: Suite = {
  name: 'model',
  title: 'The model: LoRA fine-tuning on real text, and the real-text phase diagram',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const grid = phaseGrid(context.quick);
    const notes: string[] = [];
    if (context.quick)
      notes.push('Quick mode: short contexts, a few steps, one head_dim and two caps — a smoke check of the suite; these numbers are not the results.');
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'almora-bench-model-'));
    context.progress.start('model', 3 + grid.headDims.length * grid.caps.length);
    try {
      const finetune = await compareFinetunes(context, scratch);
      const phase = await phaseDiagram(context, scratch);
      context.progress.finish();
      const [f, baseName] = [finetune.config, finetune.baseName];
      notes.push(
        `Part A (table "finetune"): FINETUNE_DEFAULTS — LoRA r = ${f.lora.r}, lora_alpha = ${f.lora.lora_alpha} on ${f.lora.target_modules.join(', ')}; ${f.steps} steps of ${f.batchSize} × L = ${f.contextLength} bytes of imaginative Brown text, Adam at ${f.learningRate}, seed ${f.seed}, q_norm/k_norm cap ${f.qkNormCap}, ε = ${f.epsilon} — on ${baseName}, the same steps and seed for every variant. Held-out: ${f.evalWindows} windows of ${f.contextLength} bytes, full exact attention. S²-Attn: LongLoRA's shifted sparse attention (Chen et al., ICLR 2024) during training only, groups of L/4.`,
        `Part B (table "phase"): hidden 64, head_dim ∈ {${grid.headDims.join(', ')}} with 64/head_dim query heads and half as many key/value heads, the rest as the Brown base; q_norm/k_norm cap ∈ {${grid.caps.map(capLabel).join(', ')}}; each pretrained with PRETRAIN_DEFAULTS for ${grid.pretrainSteps} steps (warm-up scaled alike) on informative Brown text. Perplexity: ${grid.evalWindows} windows of L = ${grid.lengths[0]} of the imaginative validation text, full exact attention. Γ, path, degree and rank: the report of a method 'auto' forward on a validation window at each L (degree and rank '—' where every layer ran exact). Step time: forward + backward of that window with the fine-tune's adapters, exact and 'auto' interleaved after a warm-up, median of ${grid.repeats}. Where 'auto' ran exact in every layer its ratio to exact is timing noise plus its planning (Γ, range, certificate), not a speedup, and the goal does not count it.`,
      );
      const recorded: Recorded = {
        parameters: {
          finetuneContextLength: f.contextLength,
          finetuneSteps: f.steps,
          headDims: grid.headDims,
          caps: grid.caps.map(capLabel),
          lengths: grid.lengths,
          pretrainSteps: grid.pretrainSteps,
          repeats: grid.repeats,
          seed: f.seed,
        },
        rows: [...finetune.rows, ...phase.rows],
        rawTimings: { ...finetune.stepTimes, ...phase.rawTimings },
      };
      return {
        suite: 'model',
        title: modelSuite.title,
        ...recorded,
        findings: [...finetune.findings, ...phaseFindings(phase.cells, grid)],
        notes,
        plots: drawModelPlots(recorded),
      };
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  },
  drawPlots: drawModelPlots,
};
