import path from 'node:path';
import { linePlot } from '@almora/cli-kit';
import { writeFileAtomic } from '@almora/training';
import type { TrainConfig } from './config.js';
import type { RunResult } from './trainer.js';

/** Steps in a loss plot's moving average. */
export const SMOOTHING = 5;

/** The trailing mean of up to `window` points' y at each point (the first points average what there is). */
export function movingAverage(points: readonly [number, number][], window: number): [number, number][] {
  return points.map(([x], i) => {
    const span = points.slice(Math.max(0, i - window + 1), i + 1);
    return [x, span.reduce((sum, [, y]) => sum + y, 0) / span.length];
  });
}

function pathCounts(run: RunResult): string {
  const fast = run.records.filter((r) => r.method === 'fast').length;
  return `${fast} fast, ${run.records.length - fast} exact`;
}

function gammaRange(run: RunResult): string {
  const g = run.records.map((r) => r.gamma);
  return g.length === 0 ? '—' : `${Math.min(...g).toFixed(3)} … ${Math.max(...g).toFixed(3)}`;
}

function summaryRow(name: string, run: RunResult): string {
  const last = run.records[run.records.length - 1];
  const errors =
    Object.entries(run.deltaErrors)
      .map(([t, e]) => `${t}: ${e!.toFixed(3)}`)
      .join(', ') || '— (ΔW unknown)';
  const stepTime = run.records.reduce((s, r) => s + r.seconds, 0) / Math.max(1, run.records.length);
  return `| ${name} | ${run.initialLoss.toPrecision(4)} → ${last ? last.loss.toPrecision(4) : '—'} | ${errors} | ${stepTime.toFixed(3)} s | ${pathCounts(run)} | ${gammaRange(run)} |`;
}

/**
 * Writes the run folder's `loss.svg` (every run's loss per step) and `report.md`: config, final
 * loss, the relative error of each learned (α/r)·BA against the hidden ΔW, time per step, the path
 * each step took and why, Γ, and — with a side-by-side exact run — how the two compare. Both are
 * replaced atomically and never written through a symlink.
 */
export async function writeReport(runDir: string, config: TrainConfig, main: RunResult, reference: RunResult | undefined): Promise<string> {
  const runs: [string, RunResult][] = [[`${main.method}${config.gammaBound > 0 ? ` + norm control (Γ ≤ ${config.gammaBound})` : ''}`, main]];
  if (reference) runs.push(['exact (side by side)', reference]);
  await writeFileAtomic(
    path.join(runDir, 'loss.svg'),
    linePlot({
      title: 'Training loss per step',
      xLabel: 'step',
      yLabel: '½‖O − Y‖² per sequence',
      logY: true,
      // Each run's raw loss faint behind its moving average: steps of different sequences differ more than the trend.
      series: runs.flatMap(([name, run], k) => {
        const raw = run.records.map((r) => [r.step + 1, r.loss] as [number, number]);
        return [
          { name: `${name} (per step)`, points: raw, faint: true },
          { name: `${name} (average of ${SMOOTHING} steps)`, points: movingAverage(raw, SMOOTHING), dashed: k > 0 },
        ];
      }),
    }),
  );
  // Reasons differ only in their numbers from step to step: group by the wording, show the extremes.
  const reasons = new Map<string, string[]>();
  for (const r of main.records) {
    const wording = r.reason.replace(/[\d.]+(e-?\d+)?/g, '#');
    reasons.set(wording, [...(reasons.get(wording) ?? []), r.reason]);
  }
  const lines = [
    '# almora training report',
    '',
    main.records.length > 0 && Object.keys(main.deltaErrors).length === 0
      ? `Task: a user dataset; d = ${config.dim}, ${config.heads} head(s)${config.causal ? ', causal' : ''}, adapting ${config.targets.join(', ')} at rank ${config.rank}.`
      : `Task: the paper's setting (Definition 1.2) — a teacher head with frozen W* plus a hidden rank-${config.rank} ΔW on ${config.targets.join(', ')}; ${config.sequences} sequences of L = ${config.length}, d = ${config.dim}, ${config.heads} head(s)${config.causal ? ', causal' : ''}. The student starts from W* and learns A, B.`,
    '',
    '| run | loss (first → last step) | ‖(α/r)BA − ΔW‖/‖ΔW‖ | time per step | paths | Γ per step |',
    '| --- | --- | --- | --- | --- | --- |',
    ...runs.map(([name, run]) => summaryRow(name, run)),
    '',
  ];
  if (reference) {
    const mainStep = main.records.reduce((s, r) => s + r.seconds, 0) / Math.max(1, main.records.length);
    const refStep = reference.records.reduce((s, r) => s + r.seconds, 0) / Math.max(1, reference.records.length);
    const targets = Object.keys(main.deltaErrors) as (keyof RunResult['deltaErrors'])[];
    const quality =
      targets.length > 0
        ? `the learned updates' relative errors differ by at most ${Math.max(...targets.map((t) => Math.abs(main.deltaErrors[t]! - reference.deltaErrors[t]!))).toFixed(4)}`
        : `the final losses are ${main.records[main.records.length - 1].loss.toPrecision(4)} and ${reference.records[reference.records.length - 1].loss.toPrecision(4)}`;
    lines.push(
      `Side by side on the same seed: ${main.method} took ${mainStep.toFixed(3)} s per step and exact ${refStep.toFixed(3)} s (${(refStep / mainStep).toFixed(2)}× ${refStep >= mainStep ? 'faster' : 'slower'}); ${quality}.`,
      '',
    );
  }
  lines.push(
    '## Why each step took its path',
    '',
    ...[...reasons.values()].map(
      (all) =>
        `- ${all.length} step(s), e.g. step ${main.records.findIndex((r) => r.reason === all[0]) + 1}: ${all[0]}${all.length > 1 ? `; last: ${all[all.length - 1]}` : ''}`,
    ),
    '',
  );
  if (config.gammaBound > 0) {
    const rescaled = main.records.filter((r) => r.rescaled).length;
    lines.push(
      '## Norm control',
      '',
      `Γ of the adapted Q and K was kept ≤ ${config.gammaBound} by rescaling B after a step: it fired on ${rescaled} of ${main.records.length} steps. Γ over the data after each step: ${Math.min(...main.records.map((r) => r.gammaAfter)).toFixed(3)} … ${Math.max(...main.records.map((r) => r.gammaAfter)).toFixed(3)}.${main.records.some((r) => r.gammaAfter > config.gammaBound * (1 + 1e-12)) ? ' Where Γ stayed above the bound, the frozen W* part alone exceeds it: the control can only shrink the adapters; pre-normalise X (normalizeInputs) to lower it.' : ''}${reference ? ' The exact run beside it has no norm control, so the table above shows what the constraint cost in quality.' : ''}`,
      '',
    );
  }
  lines.push(
    '## Config',
    '',
    '```json',
    JSON.stringify(config, null, 2),
    '```',
    '',
    '![loss](loss.svg)',
    '',
    'Adapters (PEFT format): `adapters/` of each run, beside the frozen head they adapt in `base/`; metrics: `metrics.jsonl`.',
    '',
  );
  const file = path.join(runDir, 'report.md');
  await writeFileAtomic(file, lines.join('\n'));
  return file;
}
