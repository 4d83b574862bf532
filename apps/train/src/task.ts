import { attentionForward, type Target } from '@almora/lora';
import type { SafetensorsFile } from '@almora/peft';
import {
  add,
  assertFinite,
  fromFlat,
  frobeniusNorm,
  InvalidArgumentError,
  matmul,
  type Matrix,
  randomNormal,
  Rng,
  scale,
  scaleRows,
  ShapeError,
} from '@almora/tensor';
import type { TrainConfig } from './config.js';

/** What a run trains on: frozen weights and a dataset of sequences with their targets. */
export interface TrainingTask {
  /** W*_q, W*_k, W*_v: the frozen weights the student starts from. */
  frozen: { q: Matrix; k: Matrix; v: Matrix };
  /** Sequences X (L_n×d) and targets Y (L_n×d). */
  data: { x: Matrix; y: Matrix }[];
  /** The update the targets were made with, when known: the report then measures how well it was recovered. */
  hidden?: Partial<Record<Target, Matrix>>;
}

/** The paper's setting (Definition 1.2) as a learnable task: a teacher head with a hidden low-rank ΔW. */
export interface TeacherTask extends TrainingTask {
  /** The hidden rank-r updates ΔW_μ the student should recover as (α/r)·B_μ·A_μ. */
  hidden: Partial<Record<Target, Matrix>>;
}

/**
 * Checks a task against the config: square d×d frozen weights and, for every sequence, X and Y of
 * d columns and equal rows, finite. An error names the sequence and both shapes.
 */
export function checkTask(task: TrainingTask, config: TrainConfig): void {
  const d = config.dim;
  for (const t of ['q', 'k', 'v'] as const) {
    const w = task.frozen[t];
    if (!w || w.rows !== d || w.cols !== d)
      throw new ShapeError(`frozen W*_${t} is ${w ? `${w.rows}×${w.cols}` : 'missing'} but dim is ${d}: it must be ${d}×${d}`);
    assertFinite(w, `frozen W*_${t}`);
  }
  if (task.data.length < config.batchSize) throw new ShapeError(`the dataset has ${task.data.length} sequences, fewer than batchSize ${config.batchSize}`);
  task.data.forEach(({ x, y }, n) => {
    if (x.cols !== d) throw new ShapeError(`sequence ${n}: X is ${x.rows}×${x.cols} but dim is ${d}`);
    if (y.rows !== x.rows || y.cols !== d)
      throw new ShapeError(`sequence ${n}: X is ${x.rows}×${x.cols} but Y is ${y.rows}×${y.cols}; Y must be ${x.rows}×${d}`);
    assertFinite(x, `sequence ${n}: X`);
    assertFinite(y, `sequence ${n}: Y`);
  });
}

/**
 * Reads a dataset from a safetensors file: frozen weights `w_q`, `w_k`, `w_v` (d×d) and sequences
 * `x.0`, `y.0`, `x.1`, `y.1`, … (L_n×d each), F32 or F64.
 */
export function taskFromSafetensors(file: SafetensorsFile): TrainingTask {
  const matrix = (name: string): Matrix => {
    const t = file.tensors[name];
    if (!t) throw new InvalidArgumentError(`dataset has no tensor "${name}"`);
    if (t.shape.length !== 2) throw new ShapeError(`dataset tensor "${name}" has shape [${t.shape}]; a matrix is needed`);
    return fromFlat(t.shape[0], t.shape[1], Float64Array.from(t.data));
  };
  const data: TrainingTask['data'] = [];
  for (let n = 0; `x.${n}` in file.tensors || `y.${n}` in file.tensors; n++) data.push({ x: matrix(`x.${n}`), y: matrix(`y.${n}`) });
  if (data.length === 0) throw new InvalidArgumentError('dataset has no sequences: expected tensors x.0, y.0, …');
  return { frozen: { q: matrix('w_q'), k: matrix('w_k'), v: matrix('w_v') }, data };
}

/** Rows of X rescaled to Euclidean norm `norm` (the optional pre-normalisation of Remark 5.2). */
export function normalizeRows(x: Matrix, norm: number): Matrix {
  const factors = new Float64Array(x.rows);
  for (let i = 0; i < x.rows; i++) {
    let s = 0;
    for (let j = 0; j < x.cols; j++) s += x.data[x.offset + i * x.stride + j] ** 2;
    factors[i] = s > 0 ? norm / Math.sqrt(s) : 0;
  }
  return scaleRows(x, factors);
}

/**
 * Builds the embedded task from the config's seed: W* with N(0, 1/d) entries; for each target a
 * rank-r ΔW scaled to `teacherScale`·‖W*‖_F; seeded sequences X (entries N(0, inputScale²), rows
 * optionally normalised); targets Y from the teacher's exact forward pass.
 */
export function teacherTask(config: TrainConfig): TeacherTask {
  const rng = new Rng(config.seed);
  const d = config.dim;
  const weight = () => scale(randomNormal(d, d, rng), 1 / Math.sqrt(d));
  const frozen = { q: weight(), k: weight(), v: weight() };
  const hidden: Partial<Record<Target, Matrix>> = {};
  for (const t of config.targets) {
    const delta = matmul(randomNormal(d, config.rank, rng), randomNormal(config.rank, d, rng));
    hidden[t] = scale(delta, (config.teacherScale * frobeniusNorm(frozen[t])) / frobeniusNorm(delta));
  }
  const teacher = {
    q: hidden.q ? add(frozen.q, hidden.q) : frozen.q,
    k: hidden.k ? add(frozen.k, hidden.k) : frozen.k,
    v: hidden.v ? add(frozen.v, hidden.v) : frozen.v,
  };
  const data = Array.from({ length: config.sequences }, () => {
    const raw = randomNormal(config.length, d, rng, { std: config.inputScale });
    const x = config.normalizeInputs > 0 ? normalizeRows(raw, config.normalizeInputs) : raw;
    return { x, y: attentionForward(x, teacher, { heads: config.heads, causal: config.causal }) };
  });
  return { frozen, hidden, data };
}
