import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromArray, InvalidArgumentError, matmul, maxAbs, randomNormal, Rng, sub, transpose } from '@almora/tensor';
import { decodeSafetensors, encodeSafetensors, readModelFolder, tensorToMatrix } from '@almora/peft';
import { exportPeft, importPeft, saveHeadBase } from '../src/index.js';

describe('PEFT export and import', () => {
  it("writes PEFT's key names and shapes (lora_A = Bᵀ, lora_B = Aᵀ) and reads them back to the same update", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'almora-peft-'));
    const b = fromArray([
      [0.5, -1],
      [2, 0.25],
      [1, 1],
    ]); // d_in = 3, r = 2
    const a = fromArray([
      [1, 0, -1, 2],
      [0.5, 0.5, 0, 1],
    ]); // r = 2, d_out = 4
    await exportPeft(dir, { adapters: { q: { a, b }, v: { a, b } }, rank: 2, alpha: 4 });
    const config = JSON.parse(await readFile(path.join(dir, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] });
    const file = decodeSafetensors(new Uint8Array(await readFile(path.join(dir, 'adapter_model.safetensors'))));
    expect(file.tensors['base_model.model.self_attn.q_proj.lora_A.weight'].shape).toEqual([2, 3]);
    expect(file.tensors['base_model.model.self_attn.q_proj.lora_B.weight'].shape).toEqual([4, 2]);
    expect(Array.from(file.tensors['base_model.model.self_attn.q_proj.lora_A.weight'].data)).toEqual([0.5, 2, 1, -1, 0.25, 1]);
    const back = await importPeft(dir);
    expect(back.rank).toBe(2);
    expect(back.alpha).toBe(4);
    expect(maxAbs(sub(matmul(back.adapters.q!.b, back.adapters.q!.a), matmul(b, a)))).toBeLessThan(1e-6);
  });

  it('names its base and still reads adapters written under the old attention.* paths', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'almora-peft-'));
    const adapter = { a: fromArray([[1, 2]]), b: fromArray([[1], [2]]) };
    await exportPeft(dir, { adapters: { k: adapter }, rank: 1, alpha: 1 }, 'F64', '/runs/x/base');
    const config = JSON.parse(await readFile(path.join(dir, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ base_model_name_or_path: '/runs/x/base', task_type: null, target_modules: ['k_proj'] });
    const weights = path.join(dir, 'adapter_model.safetensors');
    const file = decodeSafetensors(new Uint8Array(await readFile(weights)));
    const legacy = Object.fromEntries(Object.entries(file.tensors).map(([key, tensor]) => [key.replace('self_attn.', 'attention.'), tensor]));
    await writeFile(weights, encodeSafetensors({ tensors: legacy, metadata: {} }));
    expect((await importPeft(dir)).adapters.k!.b.toArray()).toEqual([[1], [2]]);
    await writeFile(weights, encodeSafetensors({ tensors: { ...legacy, ...file.tensors }, metadata: {} }));
    await expect(importPeft(dir)).rejects.toThrow(/k_proj appears under both self_attn.k_proj and attention.k_proj/);
  });

  it("writes the frozen head as a model folder: W*ᵀ under self_attn.{q,k,v}_proj.weight, the head's shape and β in config.json", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'almora-base-'));
    const rng = new Rng(3);
    const frozen = { q: randomNormal(8, 8, rng), k: randomNormal(8, 8, rng), v: randomNormal(8, 8, rng) };
    await saveHeadBase(dir, { frozen, heads: 2, causal: true }, 'F64');
    const folder = await readModelFolder(dir);
    expect({ ...folder.config }).toMatchObject({
      model_type: 'almora_attention_head',
      hidden_size: 8,
      num_attention_heads: 2,
      head_dim: 4,
      causal: true,
      attention_scale: 0.5,
    });
    expect(Object.keys(folder.tensors).sort()).toEqual(['self_attn.k_proj.weight', 'self_attn.q_proj.weight', 'self_attn.v_proj.weight']);
    for (const t of ['q', 'k', 'v'] as const)
      expect(tensorToMatrix(folder.tensors[`self_attn.${t}_proj.weight`]).toArray()).toEqual(transpose(frozen[t]).toArray());
  });

  it('rejects configs PEFT would mean differently', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'almora-peft-'));
    await exportPeft(dir, { adapters: { q: { a: fromArray([[1, 2]]), b: fromArray([[1], [2]]) } }, rank: 1, alpha: 1 });
    const configFile = path.join(dir, 'adapter_config.json');
    const config = JSON.parse(await readFile(configFile, 'utf8'));
    await writeFile(configFile, JSON.stringify({ ...config, use_rslora: true }));
    await expect(importPeft(dir)).rejects.toThrow(/use_rslora/);
    await writeFile(configFile, JSON.stringify({ ...config, target_modules: ['o_proj'] }));
    await expect(importPeft(dir)).rejects.toThrow(/o_proj/);
  });

  it('refuses hostile adapter files with typed errors: a null or broken config, a zero-width adapter of huge r', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'almora-peft-'));
    await exportPeft(dir, { adapters: { q: { a: fromArray([[1, 2]]), b: fromArray([[1], [2]]) } }, rank: 1, alpha: 1 });
    const configFile = path.join(dir, 'adapter_config.json');
    const config = JSON.parse(await readFile(configFile, 'utf8'));
    await writeFile(configFile, 'null');
    await expect(importPeft(dir)).rejects.toThrow(InvalidArgumentError);
    await writeFile(configFile, '{"peft_type": "LORA",');
    await expect(importPeft(dir)).rejects.toThrow(/not valid JSON/);
    // r = 2^45 with lora_A [2^45, 0] and lora_B [0, 2^45]: no bytes, every shape check passes, and a transpose would loop 2^45 times.
    const huge = 2 ** 45;
    await writeFile(configFile, JSON.stringify({ ...config, r: huge }));
    const empty = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: new Float32Array(0) });
    await writeFile(
      path.join(dir, 'adapter_model.safetensors'),
      encodeSafetensors({
        tensors: { 'base_model.model.self_attn.q_proj.lora_A.weight': empty([huge, 0]), 'base_model.model.self_attn.q_proj.lora_B.weight': empty([0, huge]) },
        metadata: {},
      }),
    );
    await expect(importPeft(dir)).rejects.toThrow(/in and out ≥ 1/);
  });
});

describe('hostile inputs found by the fuzz suite (#12)', () => {
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;

  async function adapterFolder(): Promise<{ dir: string; configFile: string; config: Record<string, unknown> }> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'almora-peft-'));
    const adapter = { a: fromArray([[1, 2]]), b: fromArray([[1], [2]]) };
    await exportPeft(dir, { adapters: { q: adapter, v: adapter }, rank: 1, alpha: 1 });
    const configFile = path.join(dir, 'adapter_config.json');
    return { dir, configFile, config: JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown> };
  }

  it('refuses config values nested 10^5 deep with typed errors, not a stack overflow', async () => {
    const { dir, configFile, config } = await adapterFolder();
    for (const text of [
      deep,
      JSON.stringify({ ...config, r: 0 }).replace('"r":0', `"r":${deep}`),
      JSON.stringify(config).replace('"target_modules":["q_proj","v_proj"]', `"target_modules":[${deep}]`),
    ]) {
      await writeFile(configFile, text);
      await expect(importPeft(dir)).rejects.toThrow(InvalidArgumentError);
    }
  });

  it('refuses lora_alpha 1e999 (Infinity to JSON.parse)', async () => {
    const { dir, configFile, config } = await adapterFolder();
    await writeFile(configFile, JSON.stringify({ ...config, lora_alpha: 0 }).replace('"lora_alpha":0', '"lora_alpha":1e999'));
    await expect(importPeft(dir)).rejects.toThrow(/lora_alpha must be a finite number > 0, got Infinity/);
  });

  it('refuses target_modules that leave tensors of the file unread, or list nothing', async () => {
    const { dir, configFile, config } = await adapterFolder();
    await writeFile(configFile, JSON.stringify({ ...config, target_modules: ['q_proj'] }));
    await expect(importPeft(dir)).rejects.toThrow(/self_attn\.v_proj has adapter tensors, but target_modules \["q_proj"\] does not select it/);
    await writeFile(configFile, JSON.stringify({ ...config, target_modules: [] }));
    await expect(importPeft(dir)).rejects.toThrow(/non-empty list/);
  });

  it('names a missing or unreadable adapter file with a typed error', async () => {
    const { dir, configFile } = await adapterFolder();
    await rm(path.join(dir, 'adapter_model.safetensors'));
    await expect(importPeft(dir)).rejects.toThrow(/cannot read .*adapter_model\.safetensors: ENOENT/);
    await rm(configFile);
    await mkdir(configFile);
    await expect(importPeft(dir)).rejects.toThrow(InvalidArgumentError);
  });
});
