import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { openBackend } from '@almora/backends';
import { loraGradients, type Adapter, type GradientMethod, type Target } from '@almora/lora';
import { type Backend, fromFlat, NonFiniteError, frobeniusNorm, matmul, type Matrix, maxAbs, Rng, scale, sub, zeros, randomUniform } from '@almora/tensor';
import {
  applyUpdate,
  CheckpointError,
  type CheckpointState,
  checkResumeSteps,
  createOptimizer,
  divergence,
  globalNorm,
  latestCheckpoint,
  learningRate,
  lockRunDir,
  openAppend,
  type OptimizerState,
  resumableHash,
  runSubfolder,
  saveCheckpoint,
  TrainingDivergedError,
  writeFileAtomic,
  readMetricsRecords,
} from '@almora/training';
import type { TrainConfig } from './config.js';
import { exportPeft, saveHeadBase } from './peft.js';
import { checkTask, type TrainingTask } from './task.js';

/** What one step did. */
export interface StepRecord {
  step: number;
  /** ½‖O − Y‖² per sequence, averaged over the batch. */
  loss: number;
  learningRate: number;
  /** Global norm of the batch-mean gradient before clipping. */
  gradNorm: number;
  /** The path loraGradients took, and why. */
  method: 'exact' | 'fast' | 'mixed';
  reason: string;
  /** Γ of this step's batch. */
  gamma: number;
  /** Γ over the whole dataset after the step (after the norm control, if on). */
  gammaAfter: number;
  /** Whether the norm control rescaled B this step. */
  rescaled: boolean;
  seconds: number;
}

/** Options of one run. */
export interface RunOptions {
  /** Continue from the newest checkpoint of this config in the run folder. */
  resume?: boolean;
  /** Use this method instead of the config's (the side-by-side exact run). */
  method?: GradientMethod;
  /** Apply the config's gammaBound (off for the side-by-side reference). */
  normControl?: boolean;
  /** Called after every step. */
  onStep?: (record: StepRecord) => void;
}

/** The outcome of one run. */
export interface RunResult {
  runDir: string;
  method: GradientMethod;
  /** Hash of the run's config and data, as in its checkpoint names (`step-0000010-<hash>.ckpt`). */
  configHash: string;
  records: StepRecord[];
  /** Loss of the student before training (at W*), on the first batch. */
  initialLoss: number;
  /** ‖(α/r)·B_μ·A_μ − ΔW_μ‖_F / ‖ΔW_μ‖_F per adapted target, when the task knows ΔW. */
  deltaErrors: Partial<Record<Target, number>>;
  /** Wall time of the steps run in this process. */
  seconds: number;
  /** Step the run resumed from, if it did. */
  resumedFrom: number | undefined;
  /** What the run recovered from on the way (a stale lock, a torn last line of metrics.jsonl), said plainly. */
  notes: string[];
  adapters: Partial<Record<Target, Adapter>>;
}

/**
 * A stable hash of the config and of the task's data (frozen weights, sequences, targets), in
 * checkpoint names and bodies: a resume with another config — or on another dataset file — is
 * refused instead of silently continuing, and runs on different data never share checkpoints.
 */
export function configHash(config: TrainConfig, task: TrainingTask): string {
  const hash = resumableHash(config);
  const matrices = [task.frozen.q, task.frozen.k, task.frozen.v, ...task.data.flatMap(({ x, y }) => [x, y])];
  for (const m of matrices) {
    const values = Float64Array.from(m.toFlat());
    hash.update(`${m.rows}x${m.cols}`).update(new Uint8Array(values.buffer));
  }
  return hash.digest('hex').slice(0, 16);
}

function paramList(adapters: Partial<Record<Target, Adapter>>, targets: Target[]): [string, Matrix][] {
  return targets.flatMap((t) => [
    [`${t}.a`, adapters[t]!.a],
    [`${t}.b`, adapters[t]!.b],
  ]);
}

/** PEFT's initialisation in the paper's convention: B uniform in ±1/√d (PEFT's lora_A), A = 0 (its lora_B). */
function initialAdapters(config: TrainConfig): Partial<Record<Target, Adapter>> {
  const rng = new Rng(config.seed + 1);
  const bound = 1 / Math.sqrt(config.dim);
  const adapters: Partial<Record<Target, Adapter>> = {};
  for (const t of config.targets)
    adapters[t] = { a: zeros(config.rank, config.dim), b: randomUniform(config.dim, config.rank, rng, { low: -bound, high: bound }) };
  return adapters;
}

/** Γ parts of the adapted Q and K over the dataset: √β·‖X·W*‖∞ and √β·(α/r)·‖X·B·A‖∞. */
function gammaParts(
  config: TrainConfig,
  task: TrainingTask,
  adapters: Partial<Record<Target, Adapter>>,
  target: 'q' | 'k',
): { frozen: number; adapter: number; total: number } {
  const rootBeta = Math.sqrt(1 / Math.sqrt(config.dim / config.heads));
  const s = config.alpha / config.rank;
  let frozen = 0;
  let adapter = 0;
  let total = 0;
  for (const { x } of task.data) {
    const base = matmul(x, task.frozen[target]);
    frozen = Math.max(frozen, rootBeta * maxAbs(base));
    const ad = adapters[target];
    if (ad) {
      const update = scale(matmul(matmul(x, ad.b), ad.a), s);
      adapter = Math.max(adapter, rootBeta * maxAbs(update));
      let worst = 0;
      for (let i = 0; i < base.data.length; i++) worst = Math.max(worst, Math.abs(base.data[i] + update.data[i]));
      total = Math.max(total, rootBeta * worst);
    } else total = Math.max(total, rootBeta * maxAbs(base));
  }
  return { frozen, adapter, total };
}

/**
 * The norm control of Remark 5.2: if Γ of the adapted Q or K exceeds `bound` (0: off), shrink that
 * adapter's B so that frozen part + adapter part ≤ bound (a sufficient condition by the triangle
 * inequality). Returns Γ over the dataset afterwards and whether anything was rescaled.
 */
function enforceGammaBound(
  bound: number,
  config: TrainConfig,
  task: TrainingTask,
  adapters: Partial<Record<Target, Adapter>>,
): { gamma: number; rescaled: boolean } {
  let rescaled = false;
  let gamma = 0;
  for (const target of ['q', 'k'] as const) {
    let parts = gammaParts(config, task, adapters, target);
    const adapter = adapters[target];
    // Only the adapter's part can be shrunk; if the frozen part alone exceeds the bound, leave it.
    if (bound > 0 && adapter && parts.total > bound && parts.adapter > 0 && parts.frozen < bound) {
      const factor = (bound - parts.frozen) / parts.adapter;
      adapter.b.data.forEach((v, i) => (adapter.b.data[i] = v * factor));
      rescaled = true;
      parts = gammaParts(config, task, adapters, target);
    }
    gamma = Math.max(gamma, parts.total);
  }
  return { gamma, rescaled };
}

/** Draws `count` distinct indices of [0, n) from `rng` (partial Fisher–Yates). */
function drawBatch(rng: Rng, n: number, count: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + rng.int(n - i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order.slice(0, count);
}

/**
 * Trains the adapters on the task: mini-batches, Adam or SGD, warm-up and decay, clipping, the
 * gradient method per step, checkpoints every `checkpointEvery` steps (resumable bit for bit), a
 * metrics line per step, and the final adapters in PEFT's format. Stops with
 * {@link TrainingDivergedError} — the last good checkpoint intact — if the loss or a gradient is
 * not finite. Holds the folder's `run.lock` throughout: a second run into `runDir` fails at once
 * with `RunLockedError`. Writes nothing through a symlink inside `runDir` (`RunDirError`).
 */
export async function trainRun(config: TrainConfig, task: TrainingTask, runDir: string, options: RunOptions = {}): Promise<RunResult> {
  checkTask(task, config);
  await mkdir(runDir, { recursive: true });
  const lock = await lockRunDir(runDir);
  try {
    const opened = await openBackend(config.backend);
    try {
      return await trainLocked(config, task, runDir, options, lock.note ? [lock.note] : [], opened.backend);
    } finally {
      opened.close();
    }
  } finally {
    await lock.release();
  }
}

async function trainLocked(
  config: TrainConfig,
  task: TrainingTask,
  runDir: string,
  options: RunOptions,
  notes: string[],
  backend: Backend,
): Promise<RunResult> {
  const method = options.method ?? config.method;
  const normControl = options.normControl ?? true;
  const checkpoints = await runSubfolder(path.join(runDir, 'checkpoints'));
  const adapterDir = await runSubfolder(path.join(runDir, 'adapters'));
  const metricsFile = path.join(runDir, 'metrics.jsonl');
  const hash = configHash({ ...config, method, gammaBound: normControl ? config.gammaBound : 0 }, task);
  let adapters = initialAdapters(config);
  let optimizer: OptimizerState = createOptimizer(
    config.optimizer,
    paramList(adapters, config.targets).map(([, m]) => m.size),
  );
  const rng = new Rng(config.seed + 2);
  let start = 0;
  let records: StepRecord[] = [];
  let resumedFrom: number | undefined;
  const latest = options.resume ? await latestCheckpoint(checkpoints, hash) : undefined;
  if (latest) {
    const state = latest.state;
    // The name carries the hash; the body's differs only if the file was renamed.
    if (state.configHash !== hash)
      throw new CheckpointError(`cannot resume ${latest.file}: its content was written with another config (hash ${state.configHash}, now ${hash})`);
    checkResumeSteps(state.step, config.steps, latest.file);
    adapters = {};
    for (const t of config.targets) {
      const restore = (name: string) => fromFlat(state.params[name].rows, state.params[name].cols, state.params[name].data);
      adapters[t] = { a: restore(`${t}.a`), b: restore(`${t}.b`) };
    }
    optimizer = state.optimizer;
    rng.setState(state.rngState);
    start = state.step;
    resumedFrom = state.step;
    records = readMetricsRecords<StepRecord>(await readFile(metricsFile, 'utf8').catch(() => ''), metricsFile, notes).filter((r) => r.step < start);
  }
  await writeFileAtomic(metricsFile, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  // One handle for the run's appends: opened without following a symlink, so none planted later is written through.
  const metrics = await openAppend(metricsFile);
  try {
    const params = () => paramList(adapters, config.targets).map(([, m]) => m);
    // checkpoints/ is checked again each time: a symlink planted there mid-run is refused too.
    const checkpoint = async (step: number) =>
      saveCheckpoint(await runSubfolder(checkpoints), {
        step,
        configHash: hash,
        rngState: rng.state,
        params: Object.fromEntries(paramList(adapters, config.targets).map(([name, m]) => [name, { rows: m.rows, cols: m.cols, data: Array.from(m.data) }])),
        optimizer,
      } satisfies CheckpointState);
    let lastCheckpoint: string | undefined = latest?.file;
    let initialLoss = Number.NaN;
    const began = performance.now();
    for (let step = start; step < config.steps; step++) {
      const t0 = performance.now();
      const batch = drawBatch(rng, task.data.length, config.batchSize);
      const diverged = (what: string) =>
        new TrainingDivergedError(
          `training diverged at step ${step + 1}: ${what} (learning rate ${learningRate(config, step).toPrecision(3)}; try a smaller one). ${lastCheckpoint ? `The last good checkpoint, ${lastCheckpoint}, is intact.` : 'No checkpoint was written yet.'}`,
        );
      let result: ReturnType<typeof loraGradients>;
      try {
        result = loraGradients(
          {
            x: batch.map((i) => task.data[i].x),
            target: batch.map((i) => task.data[i].y),
            weights: task.frozen,
            adapters,
            alpha: config.alpha,
            heads: config.heads,
            causal: config.causal,
          },
          { method, epsilon: config.epsilon, backend },
        );
      } catch (error) {
        // Adapters grown so large that attention overflows: the run has diverged, not the input.
        if (error instanceof NonFiniteError) throw diverged(`attention became non-finite (${error.message})`);
        throw error;
      }
      const loss = result.loss / config.batchSize;
      const grads = config.targets.flatMap((t) => [result.grads[t]!.a, result.grads[t]!.b]);
      const gradNorm = globalNorm(grads) / config.batchSize;
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        throw diverged(!Number.isFinite(loss) ? `the loss is ${loss}` : `the gradient norm is ${gradNorm}`);
      }
      if (step === 0) initialLoss = loss;
      const risen = divergence(loss, records[0]?.loss ?? initialLoss, config.divergenceFactor);
      if (risen) throw diverged(risen);
      const clip = config.clipNorm > 0 && gradNorm > config.clipNorm ? config.clipNorm / gradNorm : 1;
      const rate = learningRate(config, step);
      applyUpdate(optimizer, params(), grads, rate, clip / config.batchSize);
      const broken = paramList(adapters, config.targets).find(([, m]) => !m.data.every(Number.isFinite));
      if (broken) {
        throw new TrainingDivergedError(
          `training diverged at step ${step + 1}: the update made ${broken[0]} non-finite (learning rate ${rate.toPrecision(3)}; try a smaller one). ${lastCheckpoint ? `The last good checkpoint, ${lastCheckpoint}, is intact.` : 'No checkpoint was written yet.'}`,
        );
      }
      const control = enforceGammaBound(normControl ? config.gammaBound : 0, config, task, adapters);
      const record: StepRecord = {
        step,
        loss,
        learningRate: rate,
        gradNorm,
        method: result.report.chosen,
        reason: result.report.reason,
        gamma: result.report.gamma,
        gammaAfter: control.gamma,
        rescaled: control.rescaled,
        seconds: (performance.now() - t0) / 1000,
      };
      records.push(record);
      await metrics.appendFile(`${JSON.stringify(record)}\n`);
      options.onStep?.(record);
      const done = step + 1;
      if ((config.checkpointEvery > 0 && done % config.checkpointEvery === 0) || done === config.steps) lastCheckpoint = await checkpoint(done);
    }
    const deltaErrors: Partial<Record<Target, number>> = {};
    for (const t of config.targets.filter((target) => task.hidden?.[target])) {
      const learned = scale(matmul(adapters[t]!.b, adapters[t]!.a), config.alpha / config.rank);
      deltaErrors[t] = frobeniusNorm(sub(learned, task.hidden![t]!)) / frobeniusNorm(task.hidden![t]!);
    }
    const baseDir = await runSubfolder(path.join(runDir, 'base'));
    await saveHeadBase(baseDir, { frozen: task.frozen, heads: config.heads, causal: config.causal });
    await exportPeft(await runSubfolder(adapterDir), { adapters, rank: config.rank, alpha: config.alpha }, 'F32', path.resolve(baseDir));
    return {
      runDir,
      method,
      configHash: hash,
      records,
      initialLoss: Number.isNaN(initialLoss) ? (records[0]?.loss ?? Number.NaN) : initialLoss,
      deltaErrors,
      seconds: (performance.now() - began) / 1000,
      resumedFrom,
      notes,
      adapters,
    };
  } finally {
    await metrics.close();
  }
}
