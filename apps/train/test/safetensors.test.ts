import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromArray, InvalidArgumentError, matmul, maxAbs, sub } from '@almora/tensor';
import { decodeSafetensors, encodeSafetensors, exportPeft, importPeft, SafetensorsError } from '../src/index.js';

/** A safetensors file built by hand: header length, header bytes, data bytes. */
function handBuilt(header: string, data: number[]): Uint8Array {
  const headerBytes = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

describe('safetensors', () => {
  it('reads a file built byte by byte', () => {
    // 1.0f = 00 00 80 3f, -2.0f = 00 00 00 c0 (little-endian IEEE 754).
    const bytes = handBuilt('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}', [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
    const file = decodeSafetensors(bytes);
    expect(file.metadata).toEqual({ format: 'pt' });
    expect(file.tensors.w.shape).toEqual([2]);
    expect(Array.from(file.tensors.w.data)).toEqual([1, -2]);
  });

  it('writes the exact bytes the format prescribes', () => {
    const bytes = encodeSafetensors({ tensors: { x: { dtype: 'F64', shape: [1, 1], data: new Float64Array([0.5]) } }, metadata: {} });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    expect(JSON.parse(header)).toEqual({ x: { dtype: 'F64', shape: [1, 1], data_offsets: [0, 8] } });
    expect(header.trimEnd()).toBe('{"x":{"dtype":"F64","shape":[1,1],"data_offsets":[0,8]}}');
    // 0.5 as float64 little-endian: 00 00 00 00 00 00 e0 3f
    expect(Array.from(bytes.subarray(8 + headerLength))).toEqual([0, 0, 0, 0, 0, 0, 0xe0, 0x3f]);
  });

  it('round-trips several tensors of both dtypes', () => {
    const file = {
      tensors: {
        b: { dtype: 'F64' as const, shape: [2, 3], data: new Float64Array([1, 2, 3, 4, 5, Math.PI]) },
        a: { dtype: 'F32' as const, shape: [3], data: new Float32Array([0.25, -1, 7]) },
        empty: { dtype: 'F32' as const, shape: [0, 4], data: new Float32Array(0) },
      },
      metadata: { note: 'almora' },
    };
    const back = decodeSafetensors(encodeSafetensors(file));
    expect(back.metadata).toEqual(file.metadata);
    for (const name of Object.keys(file.tensors) as (keyof typeof file.tensors)[]) {
      expect(back.tensors[name].shape).toEqual(file.tensors[name].shape);
      expect(Array.from(back.tensors[name].data)).toEqual(Array.from(file.tensors[name].data));
    }
  });

  it.each([
    ['too short for a header length', new Uint8Array(4), /8-byte header length/],
    ['a header length past the end', handBuilt('{}', []).map((v, i) => (i === 0 ? 200 : v)), /exceeds/],
    ['a header that is not JSON', handBuilt('{"w":', []), /not valid UTF-8 JSON/],
    ['a header that is a list', handBuilt('[]', []), /JSON object/],
    ['an unknown dtype', handBuilt('{"w":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}', [1]), /unsupported dtype/],
    ['a shape that disagrees with the offsets', handBuilt('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', [0, 0, 0, 0]), /needs 8 bytes/],
    ['a truncated data section', handBuilt('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', [0, 0, 0, 0]), /truncated/],
    ['a gap between tensors', handBuilt('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', [0, 0, 0, 0, 0, 0, 0, 0]), /without gaps/],
    ['bytes after the last tensor', handBuilt('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0, 9]), /after the last tensor/],
    ['non-string metadata', handBuilt('{"__metadata__":{"n":1}}', []), /must be a string/],
  ])('rejects %s', (_name, bytes, message) => {
    expect(() => decodeSafetensors(bytes)).toThrow(SafetensorsError);
    expect(() => decodeSafetensors(bytes)).toThrow(message);
  });
});

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
    expect(file.tensors['base_model.model.attention.q_proj.lora_A.weight'].shape).toEqual([2, 3]);
    expect(file.tensors['base_model.model.attention.q_proj.lora_B.weight'].shape).toEqual([4, 2]);
    expect(Array.from(file.tensors['base_model.model.attention.q_proj.lora_A.weight'].data)).toEqual([0.5, 2, 1, -1, 0.25, 1]);
    const back = await importPeft(dir);
    expect(back.rank).toBe(2);
    expect(back.alpha).toBe(4);
    expect(maxAbs(sub(matmul(back.adapters.q!.b, back.adapters.q!.a), matmul(b, a)))).toBeLessThan(1e-6);
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
      encodeSafetensors({ tensors: { 'base_model.model.attention.q_proj.lora_A.weight': empty([huge, 0]), 'base_model.model.attention.q_proj.lora_B.weight': empty([0, huge]) }, metadata: {} }),
    );
    await expect(importPeft(dir)).rejects.toThrow(/at least 1/);
  });
});

describe('safetensors names that are JavaScript keywords of objects', () => {
  it('keeps a tensor named __proto__ (and metadata of that name) through encode and decode', () => {
    const tensors = Object.create(null) as Record<string, { dtype: 'F64'; shape: number[]; data: Float64Array }>;
    tensors['__proto__'] = { dtype: 'F64', shape: [2], data: Float64Array.from([1, 2]) };
    tensors['constructor'] = { dtype: 'F64', shape: [1], data: Float64Array.from([3]) };
    const metadata = Object.create(null) as Record<string, string>;
    metadata['__proto__'] = 'kept';
    const back = decodeSafetensors(encodeSafetensors({ tensors, metadata }));
    expect(Object.keys(back.tensors).sort()).toEqual(['__proto__', 'constructor']);
    expect(Array.from(back.tensors['__proto__'].data)).toEqual([1, 2]);
    expect(back.metadata['__proto__']).toBe('kept');
  });
});

describe('hostile inputs found by the fuzz suite (#12)', () => {
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;

  it('refuses a dtype nested 10^5 deep with a typed error, not a stack overflow', () => {
    const bytes = handBuilt(`{"w":{"dtype":${deep},"shape":[1],"data_offsets":[0,4]}}`, [0, 0, 0, 0]);
    expect(() => decodeSafetensors(bytes)).toThrow(SafetensorsError);
    expect(() => decodeSafetensors(bytes)).toThrow(/unsupported dtype of type list/);
  });

  async function adapterFolder(): Promise<{ dir: string; configFile: string; config: Record<string, unknown> }> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'almora-peft-'));
    const adapter = { a: fromArray([[1, 2]]), b: fromArray([[1], [2]]) };
    await exportPeft(dir, { adapters: { q: adapter, v: adapter }, rank: 1, alpha: 1 });
    const configFile = path.join(dir, 'adapter_config.json');
    return { dir, configFile, config: JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown> };
  }

  it('refuses config values nested 10^5 deep with typed errors, not a stack overflow', async () => {
    const { dir, configFile, config } = await adapterFolder();
    for (const text of [deep, JSON.stringify({ ...config, r: 0 }).replace('"r":0', `"r":${deep}`), JSON.stringify(config).replace('"target_modules":["q_proj","v_proj"]', `"target_modules":[${deep}]`)]) {
      await writeFile(configFile, text);
      await expect(importPeft(dir)).rejects.toThrow(InvalidArgumentError);
    }
  });

  it('refuses lora_alpha 1e999 (Infinity to JSON.parse)', async () => {
    const { dir, configFile, config } = await adapterFolder();
    await writeFile(configFile, JSON.stringify({ ...config, lora_alpha: 0 }).replace('"lora_alpha":0', '"lora_alpha":1e999'));
    await expect(importPeft(dir)).rejects.toThrow(/lora_alpha must be a finite positive number, got Infinity/);
  });

  it('refuses target_modules that leave tensors of the file unread, or list nothing', async () => {
    const { dir, configFile, config } = await adapterFolder();
    await writeFile(configFile, JSON.stringify({ ...config, target_modules: ['q_proj'] }));
    await expect(importPeft(dir)).rejects.toThrow(/holds base_model\.model\.attention\.v_proj\.lora_A\.weight, .* which target_modules \("q_proj"\) does not list/);
    await writeFile(configFile, JSON.stringify({ ...config, target_modules: [] }));
    await expect(importPeft(dir)).rejects.toThrow(/non-empty list/);
  });

  it('names a missing or unreadable adapter file with a typed error', async () => {
    const { dir, configFile } = await adapterFolder();
    await rm(path.join(dir, 'adapter_model.safetensors'));
    await expect(importPeft(dir)).rejects.toThrow(/cannot read adapter_model\.safetensors in .*ENOENT/);
    await rm(configFile);
    await mkdir(configFile);
    await expect(importPeft(dir)).rejects.toThrow(InvalidArgumentError);
  });
});
