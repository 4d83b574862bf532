import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { caseRng, emptyCounts, type FuzzCounts, tally } from './fuzz-counts.js';
import { inParallel, runNode } from './fuzz-process.js';

/** Options of {@link fuzzKillResume}. */
export interface KillResumeOptions {
  loops: number;
  seed: number;
  /** The built cli.js of `almora`. */
  cliPath: string;
  /** Loops run at once (default: half the cores, at least 1). */
  concurrency?: number;
}

const STEPS = 30;
const TIMEOUT_MS = 120_000;

function args(seed: number, runDir: string): string[] {
  // Divergence stops are another test's subject: a seed whose loss rises past the factor from a
  // tiny first value would end the reference run before any kill, and test nothing.
  const job = '--length 64 --dim 4 --sequences 4 --batch-size 2 --method exact --compare-exact false --divergence-factor 0 --quiet'.split(' ');
  return ['train', '--task', 'teacher', ...job, '--seed', String(seed), '--steps', String(STEPS), '--checkpoint-every', '1', '--run-dir', runDir];
}

/**
 * Everything a finished run leaves that must not depend on how often it was killed: the kept
 * checkpoint files byte for byte (by their `.ckpt` ending only, so a change of naming cannot
 * blind the check), the losses, the exported adapters and the base saved beside them. The
 * adapter config names its own run's base folder, so that path is written relative to the run.
 */
async function outcome(runDir: string): Promise<Record<string, string>> {
  const dir = path.join(runDir, 'exact');
  const checkpoints = path.join(dir, 'checkpoints');
  const kept = (await readdir(checkpoints)).filter((name) => name.endsWith('.ckpt')).sort();
  const metrics = (await readFile(path.join(dir, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { step: number; loss: number });
  const result: Record<string, string> = {
    checkpoints: kept.join(', '),
    // Losses only: a metrics line also holds the step's wall time, which differs run to run.
    losses: JSON.stringify(metrics.map((m) => [m.step, m.loss])),
    adapterConfig: (await readFile(path.join(dir, 'adapters', 'adapter_config.json'), 'utf8')).replace(
      JSON.stringify(path.resolve(dir, 'base')),
      '"<run>/base"',
    ),
    adapterWeights: (await readFile(path.join(dir, 'adapters', 'adapter_model.safetensors'))).toString('base64'),
    baseConfig: await readFile(path.join(dir, 'base', 'config.json'), 'utf8'),
    baseWeights: (await readFile(path.join(dir, 'base', 'model.safetensors'))).toString('base64'),
  };
  for (const name of kept) result[name] = await readFile(path.join(checkpoints, name), 'utf8');
  return result;
}

/** One loop: up to three seeded SIGKILLs, then --resume until done; '' if it ended like the reference. */
async function killAndResume(
  index: number,
  options: KillResumeOptions,
  trainSeed: number,
  referenceMs: number,
  reference: Record<string, string>,
  root: string,
): Promise<string> {
  const rng = caseRng(options.seed, index);
  const runDir = path.join(root, String(index));
  const base = args(trainSeed, runDir);
  const kills = 1 + rng.int(3);
  const moments: number[] = [];
  for (let k = 0; k < kills; k++) {
    const killAfterMs = Math.round(rng.uniform(0.05, 1.1) * referenceMs);
    moments.push(killAfterMs);
    const run = await runNode([options.cliPath, ...base, ...(k > 0 ? ['--resume'] : [])], { cwd: root, timeoutMs: TIMEOUT_MS, killAfterMs });
    if (run.signal === null && run.code !== 0) return `run ${k + 1} (killed after ${moments.join(', ')} ms) failed: ${run.stderr.trim().slice(0, 300)}`;
  }
  const resumed = await runNode([options.cliPath, ...base, '--resume'], { cwd: root, timeoutMs: TIMEOUT_MS });
  if (resumed.code !== 0)
    return `resume after kills at ${moments.join(', ')} ms failed (${resumed.signal ?? `exit ${resumed.code}`}): ${resumed.stderr.trim().slice(0, 300)}`;
  const got = await outcome(runDir).catch((error: unknown) => ({ error: String(error) }) as Record<string, string>);
  const differs = [...new Set([...Object.keys(reference), ...Object.keys(got)])].filter((key) => got[key] !== reference[key]);
  return differs.length > 0
    ? `after kills at ${moments.join(', ')} ms the resumed run differs from the uninterrupted one in ${differs.join(', ')}${got.error ? ` (${got.error})` : ''}`
    : '';
}

/**
 * Runs a small job once uninterrupted with a checkpoint every step, then per loop again with
 * one to three SIGKILLs at seeded moments (each restart a --resume), then --resume to the end. The
 * kept checkpoints, metrics losses and exported adapters must equal the reference byte for byte;
 * a loop whose resume fails or differs counts in `dataLost`. The kill moments are seeded; which
 * step each lands on depends on the machine's speed.
 */
export async function fuzzKillResume(options: KillResumeOptions): Promise<FuzzCounts> {
  const counts = emptyCounts();
  if (options.loops === 0) return counts;
  const root = await mkdtemp(path.join(os.tmpdir(), 'almora-fuzz-resume-'));
  try {
    const trainSeed = 1 + caseRng(options.seed, -1).int(1000);
    const whole = await runNode([options.cliPath, ...args(trainSeed, path.join(root, 'reference'))], { cwd: root, timeoutMs: TIMEOUT_MS });
    if (whole.code !== 0) throw new Error(`the uninterrupted reference run failed: ${whole.stderr}`);
    const reference = await outcome(path.join(root, 'reference'));
    const concurrency = options.concurrency ?? Math.max(1, Math.floor(os.availableParallelism() / 2));
    const problems = await inParallel(options.loops, concurrency, (i) => killAndResume(i, options, trainSeed, whole.ms, reference, root));
    problems.forEach((problem, i) => tally(counts, problem ? 'dataLost' : 'ok', `loop ${i} (seed ${options.seed}): ${problem}`));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return counts;
}
