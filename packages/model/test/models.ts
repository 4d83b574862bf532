// Small random Qwen3 models and the finite-difference helpers the model tests share.
import { expect } from 'vitest';
import { type Matrix, randomNormal, type Rng, scale } from '@almora/tensor';
import { centralDifferences } from '@almora/vitest-config/finite-difference';
import {
  initQwen3Adapters,
  initQwen3Weights,
  QWEN3_MODULES,
  qwen3Config,
  type Qwen3Config,
  qwen3ForCausalLM,
  type Qwen3Model,
  type Qwen3Module,
  type Qwen3Options,
} from '../src/index.js';

/** A 2-layer Qwen3 small enough for finite differences: 4 query heads on 2 key/value heads of width 4. */
export function tinyConfig(overrides: Partial<Qwen3Config> = {}): Qwen3Config {
  return qwen3Config({
    vocab_size: 11,
    hidden_size: 8,
    intermediate_size: 12,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 4,
    max_position_embeddings: 128,
    tie_word_embeddings: false,
    ...overrides,
  });
}

/**
 * A seeded model whose every gradient is nonzero: linear weights normal(0, 0.4), RMSNorm gains
 * 1 + 0.3·normal, and LoRA (r = 2, lora_alpha = 4) on `targets` with lora_A and lora_B both random.
 */
export function randomModel(
  config: Qwen3Config,
  rng: Rng,
  targets: readonly Qwen3Module[] = QWEN3_MODULES,
  dtype: 'float64' | 'float32' = 'float64',
): Qwen3Model {
  const weights = initQwen3Weights({ ...config, initializer_range: 0.4 }, rng, { dtype });
  for (const [key, m] of Object.entries(weights)) {
    if (m.rows === 1) weights[key] = randomNormal(1, m.cols, rng, { dtype, mean: 1, std: 0.3 });
  }
  const lora = initQwen3Adapters(config, { r: 2, lora_alpha: 4, target_modules: targets }, rng, { dtype });
  for (const adapter of Object.values(lora.adapters)) adapter.lora_B = scale(randomNormal(adapter.lora_B.rows, adapter.lora_B.cols, rng, { dtype }), 0.3);
  return { config, weights, lora };
}

/** Random token ids, one array per sequence length. */
export function randomIds(vocab: number, lengths: readonly number[], rng: Rng): number[][] {
  return lengths.map((length) => Array.from({ length }, () => rng.int(vocab)));
}

/** Central finite difference of f at the given entries of m (m is changed and restored in place). */
export function finiteDifference(m: Matrix, f: () => number, entries: readonly number[], h = 1e-5): Map<number, number> {
  const values = centralDifferences(m, f, entries, h);
  return new Map(entries.map((e, n) => [e, values[n]]));
}

/** Up to `count` distinct entries of an n-entry matrix, drawn from rng (all of them when n ≤ count). */
export function someEntries(n: number, count: number, rng: Rng): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const picked = new Set<number>();
  while (picked.size < count) picked.add(rng.int(n));
  return [...picked];
}

/** max over the entries of |analytic − numeric| / max(1, max|numeric|). */
export function fdMismatch(analytic: Matrix, numeric: Map<number, number>): number {
  let num = 0;
  let den = 1;
  for (const [e, value] of numeric) {
    num = Math.max(num, Math.abs(analytic.get(Math.floor(e / analytic.cols), e % analytic.cols) - value));
    den = Math.max(den, Math.abs(value));
  }
  return num / den;
}

/** max|a − b| / max(1, max|b|) over two matrices of one shape. */
export function mismatch(a: Matrix, b: Matrix): number {
  let num = 0;
  let den = 1;
  for (let i = 0; i < b.rows; i++) {
    for (let j = 0; j < b.cols; j++) {
      num = Math.max(num, Math.abs(a.get(i, j) - b.get(i, j)));
      den = Math.max(den, Math.abs(b.get(i, j)));
    }
  }
  return num / den;
}

/** Central differences with h = 1e-5 in float64: a correct gradient agrees to ~1e-10 relative; 1e-7 leaves room. */
export const FD_TOLERANCE = 1e-7;
/** Entries checked per parameter matrix (all of the smaller ones). */
const ENTRIES = 12;

/** The loss alone, its attention state released. */
function lossOf(model: Qwen3Model, ids: number[][], options: Qwen3Options): () => number {
  return () => {
    const result = qwen3ForCausalLM(model, ids, options);
    result.dispose();
    return result.loss;
  };
}

/** Checks every parameter and adapter of the model against finite differences; returns the largest mismatch. */
export function checkAll(model: Qwen3Model, ids: number[][], options: Qwen3Options, rng: Rng): number {
  const { weights: grads, lora } = qwen3ForCausalLM(model, ids, { ...options, weightGradients: true }).backward();
  const loss = lossOf(model, ids, options);
  let worst = 0;
  expect(Object.keys(grads!).sort()).toEqual(Object.keys(model.weights).sort());
  for (const [key, weight] of Object.entries(model.weights)) {
    expect(grads![key].shape, key).toEqual(weight.shape);
    const error = fdMismatch(grads![key], finiteDifference(weight, loss, someEntries(weight.size, ENTRIES, rng)));
    expect(error, key).toBeLessThan(FD_TOLERANCE);
    worst = Math.max(worst, error);
  }
  expect(Object.keys(lora).sort()).toEqual(Object.keys(model.lora!.adapters).sort());
  for (const [path, adapter] of Object.entries(model.lora!.adapters)) {
    for (const which of ['lora_A', 'lora_B'] as const) {
      expect(lora[path][which].shape, `${path}.${which}`).toEqual(adapter[which].shape);
      const error = fdMismatch(lora[path][which], finiteDifference(adapter[which], loss, someEntries(adapter[which].size, ENTRIES, rng)));
      expect(error, `${path}.${which}`).toBeLessThan(FD_TOLERANCE);
      worst = Math.max(worst, error);
    }
  }
  return worst;
}
