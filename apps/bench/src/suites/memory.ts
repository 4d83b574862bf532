import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LayerOptions } from '@almora/lora';
import type { Row, Suite, SuiteContext, SuiteReport } from '../harness.js';

const D_MODEL = 16;
const HEADS = 2;
const GiB = 2 ** 30;

interface Case {
  method: string;
  options: LayerOptions;
}

/** The long case: one head of d = 16 at a length where exact attention is out of reach, with its goal (#11). */
const LONG = { length: 1_048_576, dModel: 16, heads: 1, seconds: 60, bytes: 8e9 };
const LONG_CASE: Case = { method: 'layer fast autodiff g2, 1 head of d=16', options: { method: 'fast', degree: 2, variant: 'autodiff' } };

const CASES: Case[] = [
  { method: 'layer exact (probabilities kept within 256 MiB)', options: { method: 'exact' } },
  { method: 'layer exact (recompute: probabilityBudget 0)', options: { method: 'exact', probabilityBudget: 0 } },
  { method: 'layer fast autodiff g2', options: { method: 'fast', degree: 2, variant: 'autodiff' } },
  { method: 'layer fast chained g2', options: { method: 'fast', degree: 2, variant: 'chained' } },
];

interface Measured {
  seconds: number;
  peakRssBytes: number;
  startRssBytes: number;
  chosen: string;
  keepsProbabilities: boolean;
}

/** The built child script: beside this bundle in dist/, or in dist/ above the sources when run from them (tests). */
function childScript(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (dir !== path.dirname(dir)) {
    for (const candidate of [path.join(dir, 'memory-child.js'), path.join(dir, 'dist', 'memory-child.js')]) if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  return undefined;
}

/** Runs one measurement in a fresh Node process (the bench's own dist/memory-child.js), so its peak RSS is its own. */
function measure(shape: { length: number; dModel: number; heads: number }, options: LayerOptions, seed: number, backend: string): Measured | { error: string } {
  const child = childScript();
  if (!child) return { error: 'dist/memory-child.js is missing: build @almora/bench first' };
  const run = spawnSync(process.execPath, [child, JSON.stringify({ ...shape, options, seed, backend })], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (run.status !== 0) return { error: (run.stderr.trim().split('\n').pop() ?? `exit ${run.status}`).slice(0, 200) };
  return JSON.parse(run.stdout) as Measured;
}

/** Peak resident memory of the layer's forward + backward, each measurement in its own process. */
export const memorySuite: Suite = {
  name: 'memory',
  title: 'Memory: peak RSS of the LoRA attention layer, forward + backward',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const lengths = context.lengths ?? (context.quick ? [512, 2048] : [4096, 16384, 65536]);
    const long = !context.quick && context.lengths === undefined;
    const rows: Row[] = [];
    const rawTimings: Record<string, number[]> = {};
    const notes: string[] = [];
    context.progress.start('memory', lengths.length * CASES.length + (long ? 1 : 0));
    for (const length of lengths) {
      for (const c of CASES) {
        // Recomputing is what the default does past the budget; measured separately only where the two differ.
        const redundant = c.options.probabilityBudget === 0 && length * length * HEADS * 8 > 2 ** 28;
        if (!redundant) {
          const m = measure({ length, dModel: D_MODEL, heads: HEADS }, c.options, context.seed + length, context.backendName);
          if ('error' in m) notes.push(`${c.method} failed at L=${length}: ${m.error}`);
          else {
            rows.push({
              L: length,
              dModel: D_MODEL,
              heads: HEADS,
              method: c.method,
              path: m.chosen,
              keptProbabilities: m.keepsProbabilities,
              seconds: m.seconds,
              peakRssMiB: m.peakRssBytes / 2 ** 20,
            });
            rawTimings[`${c.method} L=${length}`] = [m.seconds];
          }
        }
        context.progress.tick(`${c.method} L=${length}`);
      }
    }
    const findings: string[] = [];
    if (long) {
      const m = measure(LONG, LONG_CASE.options, context.seed + LONG.length, context.backendName);
      if ('error' in m) findings.push(`Goal: ${LONG_CASE.method} at L=${LONG.length.toLocaleString('en-US')} failed: ${m.error}.`);
      else {
        rows.push({
          L: LONG.length,
          dModel: LONG.dModel,
          heads: LONG.heads,
          method: LONG_CASE.method,
          path: m.chosen,
          keptProbabilities: m.keepsProbabilities,
          seconds: m.seconds,
          peakRssMiB: m.peakRssBytes / 2 ** 20,
        });
        rawTimings[`${LONG_CASE.method} L=${LONG.length}`] = [m.seconds];
        const met = m.seconds < LONG.seconds && m.peakRssBytes < LONG.bytes;
        findings.push(
          `Goal: ${LONG_CASE.method} at L=${LONG.length.toLocaleString('en-US')} ran forward + backward in ${m.seconds.toFixed(1)} s with peak RSS ${(m.peakRssBytes / 1e9).toFixed(2)} GB (targets < ${LONG.seconds} s and < ${LONG.bytes / 1e9} GB): ${met ? 'met' : 'NOT met'}.`,
        );
      }
      context.progress.tick(`${LONG_CASE.method} L=${LONG.length}`);
    }
    context.progress.finish();
    const exactAt = (length: number) => rows.find((r) => r.L === length && String(r.method).startsWith('layer exact (probabilities'));
    const longest = lengths[lengths.length - 1];
    const goal = exactAt(longest);
    if (goal) {
      const peak = (goal.peakRssMiB as number) * 2 ** 20;
      findings.push(
        `Goal: the exact path at L=${longest.toLocaleString('en-US')}, d_model=${D_MODEL}, ${HEADS} heads ran forward + backward in ${(goal.seconds as number).toFixed(1)} s with peak RSS ${(peak / GiB).toFixed(2)} GiB (target < 1 GB = ${(1e9 / GiB).toFixed(2)} GiB): ${peak < 1e9 ? 'met' : 'NOT met'}.`,
      );
    }
    for (const length of lengths) {
      for (const r of rows.filter((row) => row.L === length)) {
        findings.push(`L=${length}: ${r.method}: peak RSS ${(r.peakRssMiB as number).toFixed(0)} MiB, ${(r.seconds as number).toFixed(2)} s.`);
      }
    }
    return {
      suite: 'memory',
      title: memorySuite.title,
      parameters: { backend: context.backend.name, lengths, dModel: D_MODEL, heads: HEADS, seed: context.seed },
      rows,
      rawTimings,
      findings,
      notes: [
        `\`loraAttention\` with q_proj and v_proj adapted (r = 4), not causal, float64 on the ${context.backend.name} backend (${context.backendThreads} thread${context.backendThreads === 1 ? '' : 's'}), upstream gradient random; each measurement alone in a fresh Node process, peak RSS from process.resourceUsage().maxRSS (it includes Node itself, ~50 MiB). One run each: these are memory measurements, the times are indicative.`,
        `The exact path keeps each head's attention probabilities between forward and backward while all heads' fit probabilityBudget (default 256 MiB), and recomputes them block by block (128 query rows at a time) beyond it: its memory is O(L·d + 128·L) then, never L×L.`,
        ...notes,
      ],
      plots: [],
    };
  },
};
