import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pythonModuleMissing, SYSTEM_PYTHON as PYTHON } from '@almora/vitest-config/python';
import { fromFlat, type Matrix, Rng } from '@almora/tensor';
import { qwen3ForCausalLM, type Qwen3Model } from '../src/index.js';
import { mismatch, randomIds, randomModel, tinyConfig } from './models.js';

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'peers', 'torch_qwen3.py');
/** The issue's bar: loss and every gradient within 1e-9 of PyTorch's float64 autograd (relative to max(1, |reference|)). */
const TOLERANCE = 1e-9;

interface Plain {
  rows: number;
  cols: number;
  data: number[];
}

const plain = (m: Matrix): Plain => ({ rows: m.rows, cols: m.cols, data: Array.from(m.toFlat()) });
const matrix = (p: Plain): Matrix => fromFlat(p.rows, p.cols, p.data);
const record = <V, W>(r: Record<string, V>, f: (v: V) => W): Record<string, W> => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, f(v)]));

interface TorchResult {
  torch: string;
  loss: number;
  logits: Plain[];
  weights: Record<string, Plain>;
  lora: Record<string, { lora_A: Plain; lora_B: Plain }>;
}

function runTorch(model: Qwen3Model, ids: number[][], qkNormCap: number | undefined): TorchResult {
  const lora = model.lora && {
    r: model.lora.r,
    lora_alpha: model.lora.lora_alpha,
    adapters: record(model.lora.adapters, (a) => ({ lora_A: plain(a.lora_A), lora_B: plain(a.lora_B) })),
  };
  const input = JSON.stringify({ config: model.config, weights: record(model.weights, plain), lora, ids, labels: null, qkNormCap: qkNormCap ?? null });
  const run = spawnSync(PYTHON, [SCRIPT], { input, encoding: 'utf8', maxBuffer: 1 << 26 });
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as TorchResult;
}

const missing = pythonModuleMissing('torch');

describe(`a 2-layer Qwen3 with LoRA on all seven modules against PyTorch float64 autograd${missing ? ` (skipped: ${missing})` : ''}`, () => {
  for (const [name, tied, kv, cap] of [
    ['untied embeddings, 4 query heads on 2 key/value heads', false, 2, undefined],
    ['tied embeddings, 4 query heads on 1 key/value head, q_norm/k_norm gains capped at 1.1', true, 1, 1.1],
  ] as const) {
    it.skipIf(missing !== undefined)(`${name}: loss, logits, every base weight and adapter gradient to 1e-9`, () => {
      const rng = new Rng(tied ? 41 : 40);
      const model = randomModel(
        tinyConfig({ tie_word_embeddings: tied, num_key_value_heads: kv, hidden_size: 12, intermediate_size: 20, vocab_size: 17 }),
        rng,
      );
      const ids = randomIds(17, [9, 6], rng);
      const ours = qwen3ForCausalLM(model, ids, { method: 'exact', weightGradients: true, qkNormCap: cap });
      const grads = ours.backward();
      const torch = runTorch(model, ids, cap);

      let worst = Math.abs(ours.loss - torch.loss) / Math.max(1, Math.abs(torch.loss));
      ours.logits.forEach((z, n) => (worst = Math.max(worst, mismatch(z, matrix(torch.logits[n])))));
      expect(Object.keys(grads.weights!).sort()).toEqual(Object.keys(torch.weights).sort());
      for (const [key, reference] of Object.entries(torch.weights)) {
        const error = mismatch(grads.weights![key], matrix(reference));
        expect(error, key).toBeLessThan(TOLERANCE);
        worst = Math.max(worst, error);
      }
      expect(Object.keys(grads.lora).sort()).toEqual(Object.keys(torch.lora).sort());
      for (const [path, reference] of Object.entries(torch.lora)) {
        for (const which of ['lora_A', 'lora_B'] as const) {
          const error = mismatch(grads.lora[path][which], matrix(reference[which]));
          expect(error, `${path}.${which}`).toBeLessThan(TOLERANCE);
          worst = Math.max(worst, error);
        }
      }
      expect(worst).toBeLessThan(TOLERANCE);
    });
  }
});
