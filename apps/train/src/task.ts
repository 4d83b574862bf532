import { attentionForward, type Target } from '@almora/lora';
import { add, frobeniusNorm, matmul, type Matrix, randomNormal, Rng, scale, scaleRows } from '@almora/tensor';
import type { TrainConfig } from './config.js';

/** The paper's setting (Definition 1.2) as a learnable task: a teacher head with a hidden low-rank ΔW. */
export interface TeacherTask {
  /** W*_q, W*_k, W*_v: the frozen weights the student starts from. */
  frozen: { q: Matrix; k: Matrix; v: Matrix };
  /** The hidden rank-r updates ΔW_μ the student should recover as (α/r)·B_μ·A_μ. */
  hidden: Partial<Record<Target, Matrix>>;
  /** Sequences X and the teacher's outputs Y = Attn(X; W* + ΔW). */
  data: { x: Matrix; y: Matrix }[];
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
