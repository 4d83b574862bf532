import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomNormal, Rng } from '@almora/tensor';
import { afterAll, describe, expect, it } from 'vitest';
import {
  encodeSafetensors,
  loraConfig,
  matrixToTensor,
  PeftError,
  readModelFolder,
  readPeftAdapter,
  tensorToMatrix,
  writeModelFolder,
  writePeftAdapter,
} from '../src/index.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'almora-peft-files-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('adapter and model folders on disk', () => {
  it('writes an adapter folder PEFT reads (two files, no temp files left) and reads it back', async () => {
    const dir = path.join(await tempDir(), 'nested', 'adapter');
    const rng = new Rng(1);
    const adapter = {
      config: loraConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj'] }),
      modules: { 'model.layers.0.self_attn.q_proj': { lora_A: randomNormal(2, 4, rng), lora_B: randomNormal(4, 2, rng) } },
    };
    await writePeftAdapter(dir, adapter, { dtype: 'F64' });
    expect((await readdir(dir)).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const back = await readPeftAdapter(dir);
    expect(back.modules['model.layers.0.self_attn.q_proj'].lora_A.toArray()).toEqual(adapter.modules['model.layers.0.self_attn.q_proj'].lora_A.toArray());
  });

  it('writes through a caller’s writer when given one', async () => {
    const dir = await tempDir();
    const written: string[] = [];
    const adapter = {
      config: loraConfig({ r: 1, lora_alpha: 1, target_modules: ['q'] }),
      modules: { 'a.q': { lora_A: randomNormal(1, 2, new Rng(2)), lora_B: randomNormal(2, 1, new Rng(3)) } },
    };
    await writePeftAdapter(dir, adapter, {
      writeFile: async (file, data) => {
        written.push(path.basename(file));
        await writeFile(file, data);
      },
    });
    expect(written).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
  });

  it('names a missing or unreadable file with a typed error', async () => {
    const dir = await tempDir();
    await expect(readPeftAdapter(dir)).rejects.toThrow(PeftError);
    await expect(readPeftAdapter(dir)).rejects.toThrow(/cannot read .*adapter_config\.json.*ENOENT/);
    // The system error stays reachable, so a caller can tell a missing file from an unreadable one.
    await expect(readPeftAdapter(dir)).rejects.toMatchObject({ cause: { code: 'ENOENT', syscall: 'open' } });
    await mkdir(path.join(dir, 'config.json'));
    await expect(readModelFolder(dir)).rejects.toThrow(/cannot read .*config\.json/);
    await expect(readModelFolder(dir)).rejects.toMatchObject({ cause: { code: 'EISDIR' } });
  });

  it('writes a model folder as transformers does and reads it back, RMSNorm weights 1-D', async () => {
    const dir = await tempDir();
    const rng = new Rng(4);
    const q = randomNormal(4, 6, rng);
    const norm = randomNormal(1, 6, rng);
    await writeModelFolder(dir, {
      config: { model_type: 'llama', torch_dtype: 'float32' },
      tensors: { 'model.q_proj.weight': matrixToTensor(q), 'model.norm.weight': matrixToTensor(norm, 'F32', [6]) },
    });
    expect(JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8'))).toEqual({ model_type: 'llama', torch_dtype: 'float32' });
    const model = await readModelFolder(dir);
    expect(model.config.model_type).toBe('llama');
    expect(model.tensors['model.norm.weight'].shape).toEqual([6]);
    expect(tensorToMatrix(model.tensors['model.q_proj.weight']).toArray()).toEqual(q.toArray().map((row) => row.map(Math.fround)));
    expect(tensorToMatrix(model.tensors['model.norm.weight']).shape).toEqual([1, 6]);
  });

  it('reads a sharded model through model.safetensors.index.json, and refuses a shard outside the folder or holding stray tensors', async () => {
    const dir = await tempDir();
    const t = (v: number) => ({ dtype: 'F32' as const, shape: [1], data: Float32Array.from([v]) });
    await writeFile(path.join(dir, 'config.json'), '{"model_type": "llama"}');
    await writeFile(path.join(dir, 'model-00001-of-00002.safetensors'), encodeSafetensors({ tensors: { a: t(1), b: t(2) }, metadata: { format: 'pt' } }));
    await writeFile(path.join(dir, 'model-00002-of-00002.safetensors'), encodeSafetensors({ tensors: { c: t(3) }, metadata: { format: 'pt' } }));
    const index = (map: Record<string, string>) => writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
    await index({ a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' });
    const model = await readModelFolder(dir);
    expect(Object.fromEntries(Object.entries(model.tensors).map(([k, v]) => [k, v.data[0]]))).toEqual({ a: 1, b: 2, c: 3 });
    await index({ a: '../escape.safetensors' });
    await expect(readModelFolder(dir)).rejects.toThrow(/must name a \.safetensors file in the folder/);
    await index({ a: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' });
    await expect(readModelFolder(dir)).rejects.toThrow(/holds "b", which model\.safetensors\.index\.json maps elsewhere or not at all/);
    await index({
      a: 'model-00001-of-00002.safetensors',
      b: 'model-00001-of-00002.safetensors',
      c: 'model-00002-of-00002.safetensors',
      d: 'model-00002-of-00002.safetensors',
    });
    await expect(readModelFolder(dir)).rejects.toThrow(/lacks d/);
  });
});
