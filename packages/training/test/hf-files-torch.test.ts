import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { pythonModuleMissing, SYSTEM_PYTHON as PYTHON } from '@almora/vitest-config/python';
import { decodeSafetensors, encodeSafetensors, type SafetensorsDType } from '@almora/peft';
import {
  initQwen3Adapters,
  initQwen3Weights,
  QWEN3_TINY,
  qwen3Config,
  type Qwen3Config,
  qwen3ForCausalLM,
  type Qwen3Lora,
  type Qwen3Model,
  type Qwen3Module,
  type Qwen3Weights,
} from '@almora/model';
import { fromFlat, type Matrix, randomNormal, Rng, scale, transpose } from '@almora/tensor';
import { loadPeftAdapters, loadQwen3, savePeftAdapters, saveQwen3 } from '../src/hf-files.js';

// The files saveQwen3 and savePeftAdapters write, read back by an independent reader
// (test/peers/hf_files_torch.py: safetensors parsed with Python's standard library, keys, shapes and
// configs held to transformers' Qwen3ForCausalLM and PEFT's LoRA conventions, adapters merged as
// merge_and_unload does, logits from the model package's float64 torch peer) and compared with
// what loadQwen3 + loadPeftAdapters + qwen3ForCausalLM compute from the same folders.

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'peers', 'hf_files_torch.py');
/**
 * Both sides read the same F32 (or F64) values into float64, so the logits differ only by the
 * rounding of two float64 forwards that associate differently (ours keeps x·Aᵀ·Bᵀ apart from x·Wᵀ,
 * the peer merges W + s·B·A first, and torch's BLAS sums in its own order): observed 1.7e-15 (F32
 * case) and 1.9e-15 (F64 case) relative to max(1, max|logit|) ≈ 4.3, a few ulps. 1e-12 leaves 500×
 * for another BLAS or torch build and is still far below anything a misread file gives: one F32
 * rounding too many is ~1e-8, a doubled lora_alpha 0.7 (the last test).
 */
const TOLERANCE = 1e-12;

interface Plain {
  rows: number;
  cols: number;
  data: number[];
}

interface PeerResult {
  torch: string;
  problems: string[];
  logits: Plain[] | null;
}

/** max|a − b| / max(1, max|b|) over two matrices of one shape. */
function mismatch(a: Matrix, b: Plain): number {
  expect([a.rows, a.cols]).toEqual([b.rows, b.cols]);
  let num = 0;
  let den = 1;
  for (let i = 0; i < b.rows; i++) {
    for (let j = 0; j < b.cols; j++) {
      num = Math.max(num, Math.abs(a.get(i, j) - b.data[i * b.cols + j]));
      den = Math.max(den, Math.abs(b.data[i * b.cols + j]));
    }
  }
  return num / den;
}

function runPeer(modelDir: string, adapterDir: string, ids: number[][]): PeerResult {
  const run = spawnSync(PYTHON, [SCRIPT, modelDir, adapterDir], { input: JSON.stringify({ ids }), encoding: 'utf8', maxBuffer: 1 << 26 });
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as PeerResult;
}

interface Case {
  name: string;
  config: Qwen3Config;
  targets: readonly Qwen3Module[];
  dtype: SafetensorsDType;
  seed: number;
}

/** QWEN3_TINY's shape (tied embeddings, 4 query heads on 2 key/value heads) with few positions. */
const TINY = qwen3Config({ ...QWEN3_TINY, max_position_embeddings: 16 });
const CASES: Case[] = [
  {
    name: 'QWEN3_TINY (tied, 4 query heads on 2 key/value heads), F32, LoRA on q_proj, v_proj and down_proj',
    config: TINY,
    targets: ['q_proj', 'v_proj', 'down_proj'],
    dtype: 'F32',
    seed: 70,
  },
  {
    name: 'untied lm_head, 4 query heads on 1 key/value head, F64, LoRA on all seven modules',
    config: qwen3Config({ ...TINY, tie_word_embeddings: false, num_key_value_heads: 1 }),
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    dtype: 'F64',
    seed: 71,
  },
];

/**
 * A seeded model with nothing trivial in it: linear weights normal(0, 0.15), RMSNorm gains
 * 1 + 0.3·normal, LoRA r = 4, lora_alpha = 6 (scaling 1.5) with lora_A and lora_B both random.
 */
function randomModel(config: Qwen3Config, targets: readonly Qwen3Module[], rng: Rng): { weights: Qwen3Weights; lora: Qwen3Lora } {
  const weights = initQwen3Weights({ ...config, initializer_range: 0.15 }, rng);
  for (const [key, m] of Object.entries(weights)) {
    if (m.rows === 1) weights[key] = randomNormal(1, m.cols, rng, { mean: 1, std: 0.3 });
  }
  const lora = initQwen3Adapters(config, { r: 4, lora_alpha: 6, target_modules: targets }, rng);
  for (const adapter of Object.values(lora.adapters)) adapter.lora_B = scale(randomNormal(adapter.lora_B.rows, adapter.lora_B.cols, rng), 0.3);
  return { weights, lora };
}

let root: string | undefined;
async function folder(name: string): Promise<string> {
  root ??= await mkdtemp(path.join(os.tmpdir(), 'almora-hf-files-'));
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  return dir;
}
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** The matrix with every entry as the file's dtype stores it (F32 rounds, F64 keeps). */
function stored(m: Matrix, dtype: SafetensorsDType): Matrix {
  return dtype === 'F64' ? m : fromFlat(m.rows, m.cols, Array.from(m.toFlat(), Math.fround));
}

function logitsOf(model: Qwen3Model, ids: number[][]): Matrix[] {
  const result = qwen3ForCausalLM(model, ids, { method: 'exact' });
  result.dispose();
  return result.logits;
}

/**
 * Writes the case's model and adapters, loads them back and runs our forward on what was loaded
 * (`ours`) and on the model in memory with its values as the dtype stores them (`meant`): the
 * two must be the same numbers, or the writer and reader share a mistake the peer could not see.
 */
async function prepare(c: Case, name: string): Promise<{ modelDir: string; adapterDir: string; ids: number[][]; ours: Matrix[]; meant: Matrix[] }> {
  const rng = new Rng(c.seed);
  const { weights, lora } = randomModel(c.config, c.targets, rng);
  const modelDir = await folder(`${name}/model`);
  const adapterDir = await folder(`${name}/adapter`);
  await saveQwen3(modelDir, c.config, weights, c.dtype);
  await savePeftAdapters(adapterDir, lora, modelDir, c.dtype);
  const ids = [7, 5].map((length) => Array.from({ length }, () => rng.int(c.config.vocab_size)));
  const { config, weights: loaded } = await loadQwen3(modelDir);
  const ours = logitsOf({ config, weights: loaded, lora: await loadPeftAdapters(adapterDir, config) }, ids);
  const adapters = Object.fromEntries(
    Object.entries(lora.adapters).map(([p, a]) => [p, { lora_A: stored(a.lora_A, c.dtype), lora_B: stored(a.lora_B, c.dtype) }]),
  );
  const meant = logitsOf(
    { config: c.config, weights: Object.fromEntries(Object.entries(weights).map(([k, m]) => [k, stored(m, c.dtype)])), lora: { ...lora, adapters } },
    ids,
  );
  return { modelDir, adapterDir, ids, ours, meant };
}

type Tensors = ReturnType<typeof decodeSafetensors>['tensors'];

const FILES = { model: ['model.safetensors', 'config.json'], adapter: ['adapter_model.safetensors', 'adapter_config.json'] } as const;

/** A copy of a model or adapter folder with its tensors (and optionally its config) changed. */
async function corrupt(
  kind: keyof typeof FILES,
  from: string,
  to: string,
  edit: (tensors: Tensors) => Tensors,
  config: (json: Record<string, unknown>) => void = () => {},
): Promise<void> {
  const [tensorsFile, configFile] = FILES[kind];
  const file = decodeSafetensors(new Uint8Array(await readFile(path.join(from, tensorsFile))));
  file.tensors = edit(file.tensors);
  const json = JSON.parse(await readFile(path.join(from, configFile), 'utf8')) as Record<string, unknown>;
  config(json);
  await writeFile(path.join(to, tensorsFile), encodeSafetensors(file));
  await writeFile(path.join(to, configFile), JSON.stringify(json));
}

/** The tensor transposed, its shape [in, out] (the orientation a numpy or JAX writer might use). */
function transposed(t: Tensors[string]): Tensors[string] {
  const [rows, cols] = t.shape;
  const flat = transpose(fromFlat(rows, cols, Array.from(t.data))).toFlat();
  return { dtype: t.dtype, shape: [cols, rows], data: t.dtype === 'F32' ? Float32Array.from(flat) : Float64Array.from(flat) };
}

const DOWN = 'base_model.model.model.layers.1.mlp.down_proj';
const missing = pythonModuleMissing('torch');

describe(`saveQwen3 + savePeftAdapters read as transformers + PEFT would, merged and run in PyTorch float64${missing ? ` (skipped: ${missing})` : ''}`, () => {
  for (const [n, c] of CASES.entries()) {
    it.skipIf(missing !== undefined)(`${c.name}: no problems, logits to ${TOLERANCE}`, async () => {
      const { modelDir, adapterDir, ids, ours, meant } = await prepare(c, `case${n}`);
      ours.forEach((z, i) => expect(Array.from(z.toFlat())).toEqual(Array.from(meant[i].toFlat())));
      const peer = runPeer(modelDir, adapterDir, ids);
      expect(peer.problems).toEqual([]);
      expect(peer.logits).toHaveLength(ids.length);
      const worst = Math.max(...ours.map((z, i) => mismatch(z, peer.logits![i])));
      expect(worst).toBeLessThan(TOLERANCE);
    });
  }

  it.skipIf(missing !== undefined)('a lora_A written in/out-transposed ([in, r]) is reported, and no logits are made', async () => {
    const { modelDir, adapterDir, ids } = await prepare(CASES[0], 'transposed');
    const bad = await folder('transposed/bad');
    await corrupt('adapter', adapterDir, bad, (tensors) => ({ ...tensors, [`${DOWN}.lora_A.weight`]: transposed(tensors[`${DOWN}.lora_A.weight`]) }));
    const peer = runPeer(modelDir, bad, ids);
    expect(peer.problems).toEqual([`adapter_model.safetensors: ${DOWN}.lora_A.weight has shape [192, 4], PEFT's is [4, 192] ([r, in])`]);
    expect(peer.logits).toBeNull();
  });

  it.skipIf(missing !== undefined)(
    "an adapter key with PEFT's adapter name left in (….lora_B.default.weight) is reported as missing and unexpected",
    async () => {
      const { modelDir, adapterDir, ids } = await prepare(CASES[0], 'renamed');
      const bad = await folder('renamed/bad');
      await corrupt('adapter', adapterDir, bad, (tensors) =>
        Object.fromEntries(Object.entries(tensors).map(([key, t]) => [key === `${DOWN}.lora_B.weight` ? `${DOWN}.lora_B.default.weight` : key, t])),
      );
      const peer = runPeer(modelDir, bad, ids);
      expect(peer.problems).toEqual([
        `adapter_model.safetensors has no ${DOWN}.lora_B.weight (PEFT would keep its fresh initialisation)`,
        `adapter_model.safetensors has the unexpected key ${DOWN}.lora_B.default.weight (PEFT would not load it into any LoRA layer)`,
      ]);
    },
  );

  it.skipIf(missing !== undefined)(
    'the logit comparison can fail: lora_alpha doubled in adapter_config.json is a well-formed file with other logits',
    async () => {
      const { modelDir, adapterDir, ids, ours } = await prepare(CASES[0], 'alpha');
      const bad = await folder('alpha/bad');
      await corrupt(
        'adapter',
        adapterDir,
        bad,
        (tensors) => tensors,
        (json) => (json.lora_alpha = 2 * (json.lora_alpha as number)),
      );
      const peer = runPeer(modelDir, bad, ids);
      expect(peer.problems).toEqual([]);
      expect(Math.max(...ours.map((z, i) => mismatch(z, peer.logits![i])))).toBeGreaterThan(1e-3);
    },
  );

  it.skipIf(missing !== undefined)('a transposed k_proj and a q_norm written 2-D ([1, 16]) in model.safetensors are reported', async () => {
    const { modelDir, adapterDir, ids } = await prepare(CASES[0], 'model');
    const bad = await folder('model/bad');
    const [K, Q] = ['model.layers.0.self_attn.k_proj.weight', 'model.layers.1.self_attn.q_norm.weight'];
    await corrupt('model', modelDir, bad, (tensors) => ({ ...tensors, [K]: transposed(tensors[K]), [Q]: { ...tensors[Q], shape: [1, 16] } }));
    const peer = runPeer(bad, adapterDir, ids);
    expect(peer.problems).toEqual([
      `model.safetensors: ${K} has shape [64, 32], Qwen3ForCausalLM's is [32, 64]`,
      `model.safetensors: ${Q} has shape [1, 16], Qwen3ForCausalLM's is [16]`,
    ]);
    expect(peer.logits).toBeNull();
  });
});
