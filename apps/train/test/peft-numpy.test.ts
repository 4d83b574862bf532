import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initQwen3Adapters, qwen3Config, QWEN3_TINY, type Qwen3Module, qwen3StateDictShapes } from '@almora/model';
import type { SafetensorsDType } from '@almora/peft';
import { add, fromFlat, type Matrix, matmul, randomNormal, Rng, scale } from '@almora/tensor';
import { pythonModuleMissing, SYSTEM_PYTHON } from '@almora/vitest-config/python';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveConfig, teacherTask, trainRun } from '../src/index.js';
import { freshQwen3, savePeftAdapters, saveQwen3 } from '@almora/training';

// Every adapter the trainer writes — the attention head's (trainRun → adapters/) and the
// language model's (savePeftAdapters beside saveQwen3's base, as finetune writes them), in F32 and
// F64 — read by @almora/peft's numpy peer (packages/peft/test/peers/peft_numpy.py: the safetensors
// header held to the spec with Python's standard library, PEFT's target rules with Python's re,
// no safetensors, peft or torch package), which runs each adapted layer from the files alone:
// y = x·Wᵀ + scaling·(x·lora_Aᵀ)·lora_Bᵀ. That must match the layer the trainer trained, computed
// here from its matrices in memory (the paper's orientation for the head: x·(W* + (α/r)·B·A)), to
// 1e-6 relative. Both sides compute in float64 from the same stored values: the gap is rounding.

const PEER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../packages/peft/test/peers/peft_numpy.py');
const TOLERANCE = 1e-6;
const missing = pythonModuleMissing('numpy');

interface Plain {
  rows: number;
  cols: number;
  data: number[];
}
interface PeerCase {
  adapter_dir: string;
  model_dir: string | null;
  base: Record<string, Plain> | null;
  inputs: Record<string, Plain>;
}
interface PeerResult {
  problems: string[];
  outputs: Record<string, Plain>;
}

const plain = (m: Matrix): Plain => ({ rows: m.rows, cols: m.cols, data: Array.from(m.toFlat()) });
const stored = (m: Matrix, dtype: SafetensorsDType): Matrix => (dtype === 'F64' ? m : fromFlat(m.rows, m.cols, Array.from(m.toFlat(), Math.fround)));

function runPeer(cases: PeerCase[]): PeerResult[] {
  const run = spawnSync(SYSTEM_PYTHON, [PEER], { input: JSON.stringify({ cases }), encoding: 'utf8', maxBuffer: 1 << 26 });
  expect(run.status, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { results: PeerResult[] }).results;
}

/** The peer's outputs against ours: the same modules, each within TOLERANCE of max(1, max|y|). */
function expectOutputs(result: PeerResult, expected: Record<string, Matrix>, what: string): void {
  expect(result.problems, what).toEqual([]);
  expect(Object.keys(result.outputs).sort(), what).toEqual(Object.keys(expected).sort());
  for (const [module, y] of Object.entries(expected)) {
    const theirs = result.outputs[module];
    expect([theirs.rows, theirs.cols]).toEqual([y.rows, y.cols]);
    const scaleOf = Math.max(1, ...theirs.data.map(Math.abs));
    const gap = Math.max(...Array.from(y.toFlat(), (v, k) => Math.abs(v - theirs.data[k])));
    expect(gap / scaleOf, `${what}: ${module}`).toBeLessThan(TOLERANCE);
  }
}

let root: string | undefined;
async function folder(): Promise<string> {
  root ??= await mkdtemp(path.join(os.tmpdir(), 'almora-peft-numpy-'));
  return mkdtemp(path.join(root, 'case-'));
}
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe(`the trainer's adapters, read by numpy and the standard library alone${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it.skipIf(missing !== undefined)(
    "the attention head's run (adapters/ of trainRun, F32, q, k and v): header to spec, each layer's output to 1e-6",
    async () => {
      const config = resolveConfig({
        length: 64,
        dim: 4,
        sequences: 2,
        batchSize: 1,
        method: 'exact',
        compareExact: false,
        steps: 3,
        targets: ['q', 'k', 'v'],
        rank: 2,
        alpha: 3,
      });
      const task = teacherTask(config);
      const runDir = await folder();
      const run = await trainRun(config, task, runDir);
      const rng = new Rng(9);
      const inputs: Record<string, Matrix> = {};
      const expected: Record<string, Matrix> = {};
      for (const t of config.targets) {
        const module = `self_attn.${t}_proj`;
        const { a, b } = run.adapters[t]!;
        inputs[module] = randomNormal(3, config.dim, rng);
        // The paper's layer: x·(W* + (α/r)·B·A), B d_in×r and A r×d_out as the trainer holds them; base and adapters stored as F32.
        expected[module] = matmul(
          inputs[module],
          add(stored(task.frozen[t], 'F32'), scale(matmul(stored(b, 'F32'), stored(a, 'F32')), config.alpha / config.rank)),
        );
      }
      // The base is the folder the adapter names (base_model_name_or_path), as PEFT would load it.
      const adapterDir = path.join(runDir, 'adapters');
      const named = (JSON.parse(await readFile(path.join(adapterDir, 'adapter_config.json'), 'utf8')) as { base_model_name_or_path: string })
        .base_model_name_or_path;
      expect(named).toBe(path.join(runDir, 'base'));
      const [result] = runPeer([
        {
          adapter_dir: adapterDir,
          model_dir: named,
          base: null,
          inputs: Object.fromEntries(Object.entries(inputs).map(([m, x]) => [m, plain(x)])),
        },
      ]);
      expectOutputs(result, expected, 'trainRun');
    },
  );

  for (const dtype of ['F32', 'F64'] as const) {
    it.skipIf(missing !== undefined)(
      `the language model's adapters beside its base (savePeftAdapters + saveQwen3, ${dtype}, all seven modules${dtype === 'F64' ? ', a rank_pattern' : ''}): header to spec, each layer's output to 1e-6`,
      async () => {
        const shape = qwen3Config({
          ...QWEN3_TINY,
          hidden_size: 32,
          intermediate_size: 48,
          num_attention_heads: 2,
          num_key_value_heads: 1,
          head_dim: 16,
          max_position_embeddings: 64,
        });
        const rng = new Rng(dtype === 'F32' ? 31 : 64);
        const model = freshQwen3(shape, 5);
        const targets: Qwen3Module[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
        // F64 also spreads ranks as an allocator does (PEFT's rank_pattern: each module scaled by lora_alpha / its own r).
        const rank_pattern = dtype === 'F64' ? { 'model.layers.0.self_attn.q_proj': 1, 'model.layers.1.mlp.down_proj': 5 } : undefined;
        const lora = initQwen3Adapters(shape, { r: 3, lora_alpha: 5, target_modules: targets, ...(rank_pattern ? { rank_pattern } : {}) }, rng);
        for (const adapter of Object.values(lora.adapters)) adapter.lora_B = randomNormal(adapter.lora_B.rows, adapter.lora_B.cols, rng);
        const dir = await folder();
        const [modelDir, adapterDir] = [path.join(dir, 'base'), path.join(dir, 'adapter')];
        await saveQwen3(modelDir, shape, model.weights, dtype);
        await savePeftAdapters(adapterDir, lora, modelDir, dtype);
        const shapes = qwen3StateDictShapes(shape);
        const inputs: Record<string, Matrix> = {};
        const expected: Record<string, Matrix> = {};
        for (const [module, { lora_A, lora_B }] of Object.entries(lora.adapters)) {
          const x = randomNormal(2, shapes[`${module}.weight`][1], rng);
          inputs[module] = x;
          const w = stored(model.weights[`${module}.weight`], dtype);
          expected[module] = add(
            matmul(x, w, { transposeB: true }),
            scale(matmul(matmul(x, stored(lora_A, dtype), { transposeB: true }), stored(lora_B, dtype), { transposeB: true }), 5 / lora_A.rows),
          );
        }
        const [result] = runPeer([
          { adapter_dir: adapterDir, model_dir: modelDir, base: null, inputs: Object.fromEntries(Object.entries(inputs).map(([m, x]) => [m, plain(x)])) },
        ]);
        expectOutputs(result, expected, `savePeftAdapters ${dtype}`);
        expect(Object.keys(result.outputs)).toHaveLength(shape.num_hidden_layers * targets.length);
        if (rank_pattern) expect(lora.adapters['model.layers.1.mlp.down_proj'].lora_A.rows).toBe(5);
      },
    );
  }
});
