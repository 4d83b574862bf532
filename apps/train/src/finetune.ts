import path from 'node:path';
import { linePlot, Progress, type Series } from '@almora/cli-kit';
import { generate, type Qwen3Model } from '@almora/model';
import { Rng } from '@almora/tensor';
import {
  adaptersOf,
  bitsPerChar,
  brownText,
  decodeBytes,
  encodeBytes,
  evaluationWindows,
  type LanguageModelConfig,
  type LanguageModelRun,
  loadQwen3,
  PRETRAIN_DEFAULTS,
  runSubfolder,
  savePeftAdapters,
  trainLanguageModel,
  writeFileAtomic,
} from '@almora/training';
import { movingAverage, SMOOTHING } from './report.js';

/** The context length the shipped base was pretrained at. */
const BASE_PRETRAINING_CONTEXT = PRETRAIN_DEFAULTS.contextLength;

/** What the report's sample generation uses: the prompt, length, temperature and seed. */
export interface SampleSettings {
  prompt: string;
  tokens: number;
  temperature: number;
  seed: number;
}

const SAMPLE: SampleSettings = { prompt: 'She looked at him for a long moment and then she said, "', tokens: 160, temperature: 0.7, seed: 7 };

function sample(model: Qwen3Model, settings: SampleSettings, qkNormCap: number): string {
  // As many bytes as the model's positions leave after the prompt.
  const prompt = Array.from(encodeBytes(settings.prompt));
  const tokens = Math.max(0, Math.min(settings.tokens, model.config.max_position_embeddings - prompt.length));
  const ids = generate(model, prompt, {
    maxNewTokens: tokens,
    temperature: settings.temperature,
    topK: 40,
    rng: new Rng(settings.seed),
    ...(qkNormCap > 0 ? { qkNormCap } : {}),
  }).ids;
  return decodeBytes(ids);
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

const perplexityChange = (before: number, after: number) => `${((2 ** (after - before) - 1) * 100).toFixed(1)}%`;

function pathsTable(run: LanguageModelRun): string[] {
  const rows = [
    '| layer | steps with every head exact | steps with some head fast | Γ first → last step | Γ bound (cap) | √log L | reason at the last step |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  const layers = run.records[0]?.layers.length ?? 0;
  for (let l = 0; l < layers; l++) {
    const steps = run.records.map((r) => r.layers[l]);
    const last = steps[steps.length - 1];
    rows.push(
      `| ${l} | ${steps.filter((s) => s.fastHeads === 0).length} | ${steps.filter((s) => s.fastHeads > 0).length} | ${steps[0].gamma.toFixed(2)} → ${last.gamma.toFixed(2)} | ${last.gammaBound.toFixed(2)} | ${last.threshold.toFixed(2)} | ${last.reason.replace(/\|/g, '\\|')} |`,
    );
  }
  return rows;
}

/** Every head at the run's last step: its path, Γ, certified range, the degree and rank planned, and the core's reason. */
function headsTable(run: LanguageModelRun): string[] {
  const last = run.records[run.records.length - 1];
  if (!last) return [];
  const cell = (v: number | null) => (v === null ? '—' : String(v));
  return [
    '| layer | sequence | head | path | Γ | R | degree | rank | reason |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...last.layers.flatMap((l) =>
      l.heads.map(
        (h) =>
          `| ${l.layer} | ${h.sequence} | ${h.head} | ${h.chosen} | ${h.gamma.toFixed(2)} | ${h.range.toFixed(2)} | ${cell(h.degree)} | ${cell(h.rank)} | ${h.reason.replace(/\|/g, '\\|')} |`,
      ),
    ),
  ];
}

/**
 * Held-out bits per character of the base and of each fine-tuned model at the base's pretraining
 * context and at the fine-tune's, on the same held-out bytes: how much of the gain is the longer
 * context and how much the new domain.
 */
function contextTable(base: Qwen3Model, runs: { label: string; run: LanguageModelRun }[], validation: Uint8Array, config: LanguageModelConfig): string[] {
  const short = Math.min(BASE_PRETRAINING_CONTEXT, config.contextLength);
  // The runs evaluated these long windows already; the same bytes are cut into windows of the short context.
  const longWindows = evaluationWindows(validation, config.contextLength, config.evalWindows);
  const shortWindows = longWindows.flatMap((w) => Array.from({ length: Math.floor(w.length / short) }, (_, k) => w.slice(k * short, (k + 1) * short)));
  const rows: [string, Qwen3Model, number][] = [
    ['base', base, runs[0].run.initialValidation],
    ...runs.map(({ label, run }): [string, Qwen3Model, number] => [`fine-tuned (${label})`, run.model, run.finalValidation]),
  ];
  return [
    `| model | held-out bits/char at L = ${short} | at L = ${config.contextLength} |`,
    '| --- | --- | --- |',
    ...rows.map(([name, model, long]) => `| ${name} | ${bitsPerChar(model, shortWindows, config.qkNormCap).toFixed(4)} | ${long.toFixed(4)} |`),
  ];
}

/** The fine-tune's outcome: the runs side by side and where the report is. */
export interface FinetuneOutcome {
  runs: { label: string; run: LanguageModelRun }[];
  report: string;
}

/**
 * The main job: fine-tunes LoRA adapters of the base model on held-in fiction, once with
 * `config.method` and, unless it is 'exact', once with exact gradients on the same seed, then
 * writes `report.md` (held-out bits per character and perplexity before and after, time per step,
 * every layer's path and why, Γ per layer over training, text generated before and after, the
 * curves) and each run's PEFT adapters in `<label>/adapter`.
 */
export async function finetune(
  config: LanguageModelConfig,
  runDir: string,
  options: { baseDir: string; resume: boolean; quiet: boolean; compareExact: boolean; command: string },
): Promise<FinetuneOutcome> {
  const base = await loadQwen3(options.baseDir);
  const data = brownText('imaginative');
  const labels = options.compareExact && config.method !== 'exact' ? [config.method, 'exact'] : [config.method];
  if (!options.quiet) {
    console.log(
      `almora train: LoRA r = ${config.lora.r} on ${config.lora.target_modules.join(', ')} of the base in ${options.baseDir}, on ${data.train.length.toLocaleString('en-US')} bytes of imaginative Brown text (held out: ${data.validationDocuments.join(' ')}); ${config.steps} steps of ${config.batchSize} × L = ${config.contextLength}, ${labels.join(' and ')} side by side; run dir ${runDir}`,
    );
  }
  const runs: { label: string; run: LanguageModelRun }[] = [];
  for (const label of labels) {
    const progress = new Progress(options.quiet);
    let started = false;
    const run = await trainLanguageModel(
      base,
      data,
      { ...config, method: label as LanguageModelConfig['method'] },
      await runSubfolder(path.join(runDir, label)),
      {
        resume: options.resume,
        onStep: (r) => {
          if (!started) progress.start(label, config.steps, r.step);
          started = true;
          const fast = r.layers.reduce((n, l) => n + l.fastHeads, 0);
          const heads = r.layers.reduce((n, l) => n + l.fastHeads + l.exactHeads, 0);
          progress.tick(`${r.bitsPerChar.toFixed(3)} bits/char · ${(r.seconds * 1000).toFixed(0)} ms · ${fast}/${heads} heads fast`);
        },
      },
    );
    progress.finish();
    if (run.resumedFrom !== undefined) console.log(`${label}: resumed from step ${run.resumedFrom}`);
    for (const note of run.notes) console.log(`${label}: ${note}`);
    await savePeftAdapters(await runSubfolder(path.join(runDir, label, 'adapter')), adaptersOf(run), options.baseDir);
    runs.push({ label, run });
  }
  const report = await writeFinetuneReport(runDir, config, runs, base, data.validation, options.command);
  for (const { label, run } of runs) {
    console.log(
      `${label}: held-out ${run.initialValidation.toFixed(3)} → ${run.finalValidation.toFixed(3)} bits/char (perplexity ${perplexityChange(run.initialValidation, run.finalValidation)}); median step ${median(run.records.map((r) => r.seconds)).toFixed(2)} s`,
    );
  }
  console.log(`report: ${report}`);
  return { runs, report };
}

/** The curves a run draws: its held-out score at every evaluation, and each training batch's faint behind their moving average. */
function runCurves(name: string, run: LanguageModelRun, steps: number, dashed: boolean): Series[] {
  const batches = run.records.map((r) => [r.step + 1, r.bitsPerChar] as [number, number]);
  const evaluations = run.records.flatMap((r) => (r.validationBitsPerChar === undefined ? [] : [[r.step + 1, r.validationBitsPerChar] as [number, number]]));
  return [
    { name: `${name}: train batch`, points: batches, faint: true },
    { name: `${name}: train batch, average of ${SMOOTHING} steps`, points: movingAverage(batches, SMOOTHING), dashed },
    {
      name: `${name}: held-out`,
      points: [[0, run.initialValidation], ...evaluations.filter(([step]) => step < steps), [steps, run.finalValidation]],
      dashed: true,
    },
  ];
}

/**
 * The loss plot's curves. Runs that trained bit for bit alike ('auto' that took the exact path
 * everywhere, beside exact) draw as one curve named for all of them: drawn apart, the last would
 * hide the others and the plot would not say why.
 */
export function lossCurves(steps: number, runs: { label: string; run: LanguageModelRun }[]): Series[] {
  const alike = (a: LanguageModelRun, b: LanguageModelRun) =>
    a.finalValidation === b.finalValidation &&
    a.records.length === b.records.length &&
    a.records.every((r, i) => r.bitsPerChar === b.records[i].bitsPerChar && r.validationBitsPerChar === b.records[i].validationBitsPerChar);
  const groups: { labels: string[]; run: LanguageModelRun }[] = [];
  for (const { label, run } of runs) {
    const same = groups.find((g) => alike(g.run, run));
    if (same) same.labels.push(label);
    else groups.push({ labels: [label], run });
  }
  return groups.flatMap(({ labels, run }, k) => runCurves(labels.length > 1 ? `${labels.join(' = ')} (identical)` : labels[0], run, steps, k > 0));
}

async function writeFinetuneReport(
  runDir: string,
  config: LanguageModelConfig,
  runs: { label: string; run: LanguageModelRun }[],
  base: Qwen3Model,
  validation: Uint8Array,
  command: string,
): Promise<string> {
  const curves = linePlot({
    title: `LoRA fine-tuning on fiction, L = ${config.contextLength}`,
    xLabel: 'step',
    yLabel: 'bits per character',
    series: lossCurves(config.steps, runs),
  });
  const gammas = linePlot({
    title: 'Γ per layer over training (largest over heads)',
    xLabel: 'step',
    yLabel: 'Γ',
    series: [
      ...runs.flatMap(({ label, run }) =>
        (run.records[0]?.layers ?? []).map((_, l) => ({
          name: `${label}: layer ${l}`,
          points: run.records.map((r) => [r.step + 1, r.layers[l].gamma] as [number, number]),
        })),
      ),
      ...runs[0].run.records.slice(0, 1).map((r) => ({
        name: '√log L',
        points: [
          [1, r.layers[0].threshold],
          [config.steps, r.layers[0].threshold],
        ] as [number, number][],
        dashed: true,
      })),
    ],
  });
  await writeFileAtomic(path.join(runDir, 'loss.svg'), curves);
  await writeFileAtomic(path.join(runDir, 'gamma.svg'), gammas);
  const before = sample(base, SAMPLE, config.qkNormCap);
  const lines = [
    '# LoRA fine-tuning of the Brown base model on fiction',
    '',
    `\`${command}\`: LoRA r = ${config.lora.r}, lora_alpha = ${config.lora.lora_alpha} on ${config.lora.target_modules.join(', ')} of every layer; ${config.steps} steps of ${config.batchSize} × ${config.contextLength} bytes of imaginative Brown text (fiction, mystery, science fiction, adventure, romance, humor), Adam at ${config.learningRate} (${config.decay}), clipping ${config.clipNorm}, seed ${config.seed}, q_norm/k_norm cap ${config.qkNormCap}, ε = ${config.epsilon}. Held-out: the last document of each category, ${config.evalWindows} window${config.evalWindows === 1 ? '' : 's'} of ${config.contextLength} bytes, full exact attention.`,
    '',
    '| gradients | held-out bits/char before | after | perplexity change | median step | steps total |',
    '| --- | --- | --- | --- | --- | --- |',
    ...runs.map(
      ({ label, run }) =>
        `| ${label} | ${run.initialValidation.toFixed(4)} | ${run.finalValidation.toFixed(4)} | ${perplexityChange(run.initialValidation, run.finalValidation)} | ${median(run.records.map((r) => r.seconds)).toFixed(2)} s | ${run.stepSeconds.toFixed(1)} s |`,
    ),
    '',
    '![loss](loss.svg)',
    '',
  ];
  lines.push(
    `## Context or domain?`,
    '',
    `The base was pretrained on ${BASE_PRETRAINING_CONTEXT}-byte windows; the same held-out bytes, scored in windows of ${Math.min(BASE_PRETRAINING_CONTEXT, config.contextLength)} and of ${config.contextLength}:`,
    '',
    ...contextTable(base, runs, validation, config),
    '',
  );
  for (const { label, run } of runs)
    lines.push(`## Paths of '${label}'`, '', ...pathsTable(run), '', `Every head at the last step:`, '', ...headsTable(run), '');
  lines.push(
    '![Γ per layer](gamma.svg)',
    '',
    `## Text generated from the same prompt (temperature ${SAMPLE.temperature}, top-k 40, seed ${SAMPLE.seed}, ${SAMPLE.tokens} bytes)`,
    '',
    `Prompt: \`${SAMPLE.prompt}\``,
    '',
    '**Base:**',
    '',
    '```text',
    SAMPLE.prompt + before,
    '```',
    '',
  );
  for (const { label, run } of runs)
    lines.push(`**After fine-tuning with ${label} gradients:**`, '', '```text', SAMPLE.prompt + sample(run.model, SAMPLE, config.qkNormCap), '```', '');
  lines.push(
    '## Adapters',
    '',
    ...runs.map(
      ({ label }) =>
        `- \`${label}/adapter/\`: PEFT's \`adapter_config.json\` (task_type CAUSAL_LM) and \`adapter_model.safetensors\` (\`base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight\`, …).`,
    ),
    '',
  );
  const file = path.join(runDir, 'report.md');
  await writeFileAtomic(file, lines.join('\n'));
  return file;
}
