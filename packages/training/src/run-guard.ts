import { createHash } from 'node:crypto';
import { AlmoraError } from '@almora/tensor';
import { CheckpointError } from './checkpoint.js';

/** The training run diverged: the loss or a gradient stopped being finite, or the loss rose past its divergence factor. */
export class TrainingDivergedError extends AlmoraError {
  constructor(message: string) {
    super('NON_FINITE', message);
  }
}

/**
 * Why the loss says the run diverged, or undefined: past `factor` × the run's first loss (a finite
 * loss that grows that much is not noise; factor 0 leaves only non-finite values to stop a run).
 */
export function divergence(loss: number, firstLoss: number, factor: number): string | undefined {
  if (!(factor > 0) || !Number.isFinite(firstLoss) || !(loss > factor * firstLoss)) return undefined;
  return `the loss ${loss.toPrecision(4)} rose past ${factor}× its first value ${firstLoss.toPrecision(4)} (the divergence factor)`;
}

/**
 * The hash a run's checkpoints carry: of everything but the step count, so a resume with a larger
 * --steps extends the run (its learning-rate schedule then runs to the new end).
 */
export function resumableHash(config: object): ReturnType<typeof createHash> {
  const sorted = Object.fromEntries(
    Object.entries(config)
      .filter(([key]) => key !== 'steps')
      .sort(([a], [b]) => a.localeCompare(b)),
  );
  return createHash('sha256').update(JSON.stringify(sorted));
}

/** Refuses a resume from a checkpoint already past the requested step count. */
export function checkResumeSteps(checkpointStep: number, steps: number, file: string): void {
  if (checkpointStep > steps)
    throw new CheckpointError(
      `cannot resume ${file} at step ${checkpointStep} with --steps ${steps}: a run does not shrink; pass --steps ${checkpointStep} or more`,
    );
}

/**
 * The records of a metrics.jsonl, one JSON object a line, for a resume. A last line that is not
 * JSON is a write cut off by a crash or a full disk: it is dropped and said in `notes`. A bad line
 * before the end means the file was altered, which is an error naming the file and the line.
 */
export function readMetricsRecords<T>(text: string, file: string, notes: string[]): T[] {
  const lines = text.split('\n');
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const records: T[] = [];
  lines.forEach((line, n) => {
    try {
      records.push(JSON.parse(line) as T);
    } catch {
      if (n !== lines.length - 1)
        throw new AlmoraError(
          'INVALID_ARGUMENT',
          `cannot resume: line ${n + 1} of ${file} is not JSON and is not the last line (the file was altered); fix or delete that line`,
        );
      notes.push(
        `dropped the torn last line of ${file} (${line.length} bytes, a write cut off by a crash or a full disk); the checkpoint it followed is intact`,
      );
    }
  });
  return records;
}
