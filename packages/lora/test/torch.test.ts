import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pythonModuleMissing, SYSTEM_PYTHON as PYTHON } from '@almora/vitest-config/python';
import { fromFlat, type Matrix, randomNormal, Rng } from '@almora/tensor';
import { type AttentionLayer, loraAttention } from '../src/index.js';
import { randomLayer } from './layers.js';

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'peers', 'torch_layers.py');

interface Plain {
  rows: number;
  cols: number;
  data: number[];
}

const plain = (m: Matrix): Plain => ({ rows: m.rows, cols: m.cols, data: Array.from(m.toFlat()) });

function plainLayer(layer: AttentionLayer): unknown {
  const map = <V, W>(record: Partial<Record<string, V>>, f: (v: V) => W) => Object.fromEntries(Object.entries(record).map(([k, v]) => [k, f(v as V)]));
  return {
    heads: layer.heads,
    causal: layer.causal ?? false,
    beta: layer.beta,
    weights: map(layer.weights, plain),
    bias: layer.bias && map(layer.bias, plain),
    lora: layer.lora && {
      r: layer.lora.r,
      alpha: layer.lora.alpha,
      adapters: map(layer.lora.adapters, (a) => ({ lora_A: plain(a.lora_A), lora_B: plain(a.lora_B) })),
    },
  };
}

/** max|ours − torch| / max(1, max|torch|). */
function mismatch(ours: Matrix, theirs: Plain): number {
  const reference = fromFlat(theirs.rows, theirs.cols, theirs.data);
  expect(ours.shape).toEqual(reference.shape);
  let num = 0;
  let den = 1;
  for (let t = 0; t < reference.data.length; t++) {
    num = Math.max(num, Math.abs(ours.toFlat()[t] - reference.data[t]));
    den = Math.max(den, Math.abs(reference.data[t]));
  }
  return num / den;
}

const missing = pythonModuleMissing('torch');

describe(`two stacked LoRA attention layers against PyTorch float64 autograd${missing ? ` (skipped: ${missing})` : ''}`, () => {
  for (const causal of [false, true]) {
    it.skipIf(missing !== undefined)(
      `x → layer 1 → layer 2 → sum(out ∘ G): output, dx and every adapter gradient to 1e-10 (${causal ? 'causal' : 'not causal'})`,
      () => {
        const rng = new Rng(causal ? 31 : 30);
        const first = randomLayer({ dModel: 8, heads: 2, headDim: 4, r: 2, adapted: ['q_proj', 'v_proj'], causal, bias: true }, rng);
        const second = randomLayer({ dModel: 8, heads: 4, headDim: 2, r: 3, adapted: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], causal }, rng);
        const x = randomNormal(24, 8, rng);
        const g = randomNormal(24, 8, rng);

        const one = loraAttention(first, x, { method: 'exact' });
        const two = loraAttention(second, one.output, { method: 'exact' });
        const back2 = two.backward(g);
        const back1 = one.backward(back2.dx);

        const run = spawnSync(PYTHON, [SCRIPT], {
          input: JSON.stringify({ layers: [plainLayer(first), plainLayer(second)], x: plain(x), g: plain(g) }),
          encoding: 'utf8',
          maxBuffer: 1 << 26,
        });
        expect(run.status, run.stderr).toBe(0);
        const torch = JSON.parse(run.stdout) as { output: Plain; dx: Plain; grads: Record<string, { lora_A: Plain; lora_B: Plain }>[] };
        expect(mismatch(two.output, torch.output)).toBeLessThan(1e-10);
        expect(mismatch(back1.dx, torch.dx)).toBeLessThan(1e-10);
        [back1.grads, back2.grads].forEach((grads, n) => {
          expect(Object.keys(grads).sort()).toEqual(Object.keys(torch.grads[n]).sort());
          for (const [module, reference] of Object.entries(torch.grads[n])) {
            const ours = grads[module as keyof typeof grads]!;
            expect(mismatch(ours.lora_A, reference.lora_A)).toBeLessThan(1e-10);
            expect(mismatch(ours.lora_B, reference.lora_B)).toBeLessThan(1e-10);
          }
        });
      },
    );
  }
});
