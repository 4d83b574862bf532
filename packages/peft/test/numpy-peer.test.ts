import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { add, fromFlat, type Matrix, matmul, randomNormal, Rng, scale } from '@almora/tensor';
import { pythonModuleMissing, SYSTEM_PYTHON } from '@almora/vitest-config/python';
import { afterAll, describe, expect, it } from 'vitest';
import {
  loraConfig,
  type LoraConfigInput,
  loraScaling,
  matrixToTensor,
  type PeftAdapter,
  type SafetensorsDType,
  writeModelFolder,
  writePeftAdapter,
} from '../src/index.js';
import { BF16, decodeBits, encodeBits, F16 } from '../src/half.js';

// Adapters this package writes, read back by test/peers/peft_numpy.py — the safetensors format
// parsed with Python's standard library and numpy, PEFT's target and pattern rules with Python's
// re — which runs each adapted layer on an input from the files alone. Its outputs must match
// x·Wᵀ + scaling·(x·lora_Aᵀ)·lora_Bᵀ computed here from the values as the dtype stores them, to
// 1e-6 relative (both sides compute in float64 from the same stored values: the observed gap is
// float64 rounding, ~1e-16).

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'peers', 'peft_numpy.py');
const TOLERANCE = 1e-6;
const missing = pythonModuleMissing('numpy');

interface Plain {
  rows: number;
  cols: number;
  data: number[];
}
interface PeerResult {
  problems: string[];
  outputs: Record<string, Plain>;
}

const plain = (m: Matrix): Plain => ({ rows: m.rows, cols: m.cols, data: Array.from(m.toFlat()) });
const storedAs =
  (dtype: SafetensorsDType) =>
  (m: Matrix): Matrix => {
    const round =
      dtype === 'F64'
        ? (x: number) => x
        : dtype === 'F32'
          ? Math.fround
          : (x: number) => decodeBits(encodeBits(x, dtype === 'F16' ? F16 : BF16), dtype === 'F16' ? F16 : BF16);
    return fromFlat(m.rows, m.cols, Array.from(m.toFlat(), round));
  };

/** max|a − b| / max(1, max|b|). */
function mismatch(a: Matrix, b: Plain): number {
  expect([a.rows, a.cols]).toEqual([b.rows, b.cols]);
  let num = 0;
  let den = 1;
  a.toFlat().forEach((v, k) => {
    num = Math.max(num, Math.abs(v - b.data[k]));
    den = Math.max(den, Math.abs(b.data[k]));
  });
  return num / den;
}

function runNumpyPeer(
  cases: { adapter_dir: string; model_dir: string | null; base: Record<string, Plain> | null; inputs: Record<string, Plain> }[],
): PeerResult[] {
  const run = spawnSync(SYSTEM_PYTHON, [SCRIPT], { input: JSON.stringify({ cases }), encoding: 'utf8', maxBuffer: 1 << 26 });
  expect(run.status, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { results: PeerResult[] }).results;
}

let root: string | undefined;
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

interface Case {
  name: string;
  dtype: SafetensorsDType;
  config: Omit<LoraConfigInput, 'r'> & { r: number };
}
const CASES: Case[] = [
  { name: 'F32, a list of last names', dtype: 'F32', config: { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'down_proj'] } },
  {
    name: 'F64, a regex, rank_pattern and alpha_pattern',
    dtype: 'F64',
    config: { r: 4, lora_alpha: 8, target_modules: '.*\\.(q_proj|down_proj)', rank_pattern: { down_proj: 2 }, alpha_pattern: { 'layers\\.1\\..*': 3 } },
  },
  { name: 'F16, all-linear, use_rslora', dtype: 'F16', config: { r: 4, lora_alpha: 8, target_modules: 'all-linear', use_rslora: true } },
  { name: 'BF16, a dotted suffix', dtype: 'BF16', config: { r: 3, lora_alpha: 5, target_modules: ['mlp.down_proj', 'self_attn.q_proj'] } },
];
const LAYERS: Record<string, [number, number]> = {
  'model.layers.0.self_attn.q_proj': [12, 8],
  'model.layers.0.mlp.down_proj': [8, 20],
  'model.layers.1.self_attn.q_proj': [12, 8],
  'model.layers.1.mlp.down_proj': [8, 20],
};

/** Writes a base model folder and the case's adapter; returns the peer's case and the layer outputs expected here. */
async function prepare(c: Case, seed: number) {
  root ??= await mkdtemp(path.join(os.tmpdir(), 'almora-peft-numpy-'));
  const rng = new Rng(seed);
  const config = loraConfig({ ...c.config, task_type: 'CAUSAL_LM', base_model_name_or_path: 'base' });
  const weights = Object.fromEntries(Object.entries(LAYERS).map(([m, [o, i]]) => [m, scale(randomNormal(o, i, rng), 0.3)]));
  const modules = Object.fromEntries(
    Object.entries(LAYERS).map(([m, [o, i]]) => {
      const r = m.endsWith('down_proj') && c.config.rank_pattern ? 2 : c.config.r;
      return [m, { lora_A: randomNormal(r, i, rng), lora_B: randomNormal(o, r, rng) }];
    }),
  );
  const adapter: PeftAdapter = { config, modules };
  const [adapterDir, modelDir] = [path.join(root, `${seed}`, 'adapter'), path.join(root, `${seed}`, 'base')];
  await writePeftAdapter(adapterDir, adapter, { dtype: c.dtype });
  await writeModelFolder(modelDir, {
    config: { model_type: 'llama', torch_dtype: 'float32' },
    tensors: Object.fromEntries(Object.entries(weights).map(([m, w]) => [`${m}.weight`, matrixToTensor(w)])),
  });
  const inputs = Object.fromEntries(Object.entries(LAYERS).map(([m, [, i]]) => [m, randomNormal(3, i, rng)]));
  const expected = Object.fromEntries(
    Object.entries(modules).map(([m, { lora_A, lora_B }]) => {
      const [a, b, w] = [storedAs(c.dtype)(lora_A), storedAs(c.dtype)(lora_B), storedAs('F32')(weights[m])];
      const x = inputs[m];
      return [m, add(matmul(x, w, { transposeB: true }), scale(matmul(matmul(x, a, { transposeB: true }), b, { transposeB: true }), loraScaling(config, m)))];
    }),
  );
  return {
    peer: { adapter_dir: adapterDir, model_dir: modelDir, base: null, inputs: Object.fromEntries(Object.entries(inputs).map(([m, x]) => [m, plain(x)])) },
    expected,
    adapterDir,
  };
}

describe(`adapters read by numpy and the standard library alone (test/peers/peft_numpy.py)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it.skipIf(missing !== undefined)(
    `${CASES.map((c) => c.name).join('; ')}: the header meets the spec and every adapted layer's output matches to ${TOLERANCE}`,
    async () => {
      const prepared = await Promise.all(CASES.map((c, n) => prepare(c, 100 + n)));
      const results = runNumpyPeer(prepared.map((p) => p.peer));
      results.forEach((result, n) => {
        expect(result.problems, CASES[n].name).toEqual([]);
        expect(Object.keys(result.outputs).sort(), CASES[n].name).toEqual(Object.keys(prepared[n].expected).sort());
        for (const [module, y] of Object.entries(prepared[n].expected))
          expect(mismatch(y, result.outputs[module]), `${CASES[n].name}: ${module}`).toBeLessThan(TOLERANCE);
      });
    },
  );

  it.skipIf(missing !== undefined)('the check can fail: a doubled lora_alpha changes the outputs, bytes after the last tensor are reported', async () => {
    const { peer, expected, adapterDir } = await prepare(CASES[0], 200);
    const configFile = path.join(adapterDir, 'adapter_config.json');
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { lora_alpha: number };
    await writeFile(configFile, JSON.stringify({ ...config, lora_alpha: 2 * config.lora_alpha }));
    const [doubled] = runNumpyPeer([peer]);
    expect(doubled.problems).toEqual([]);
    expect(Math.max(...Object.entries(expected).map(([m, y]) => mismatch(y, doubled.outputs[m])))).toBeGreaterThan(1e-2);
    await writeFile(configFile, JSON.stringify(config));
    const weightsFile = path.join(adapterDir, 'adapter_model.safetensors');
    const bytes = new Uint8Array(await readFile(weightsFile));
    await writeFile(weightsFile, Buffer.concat([bytes, new Uint8Array([0, 0, 0, 0])]));
    expect(runNumpyPeer([peer])[0].problems).toEqual(['adapter_model.safetensors: 4 bytes after the last tensor']);
  });
});
