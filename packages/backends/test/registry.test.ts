import { loraGradients } from '@almora/lora';
import { randomNormal, Rng } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { BACKENDS, backendNames, backendUnavailable, openBackend } from '../src/index.js';

describe('the backend registry', () => {
  it('names the CPU, wasm and gpu.js, each with a description', () => {
    expect(BACKENDS.map((b) => b.name)).toEqual(['cpu', 'wasm', 'gpu.js']);
    for (const entry of BACKENDS) expect(entry.description.length).toBeGreaterThan(20);
    expect(backendNames()).toEqual(expect.arrayContaining(['cpu', 'wasm', 'wasm:1', 'gpu.js:best', 'gpu.js:cpu']));
  });

  it('opens every name it lists, and each computes the same loss as the CPU', async () => {
    const rng = new Rng(3);
    const problem = {
      x: randomNormal(64, 4, rng),
      target: randomNormal(64, 4, rng),
      weights: { q: randomNormal(4, 4, rng), k: randomNormal(4, 4, rng), v: randomNormal(4, 4, rng) },
      adapters: { q: { a: randomNormal(1, 4, rng), b: randomNormal(4, 1, rng) } },
      alpha: 1,
    };
    const reference = loraGradients(problem, { method: 'exact' }).loss;
    for (const name of backendNames()) {
      const { backend, close } = await openBackend(name);
      const loss = loraGradients(problem, { method: 'exact', backend }).loss;
      close();
      expect(Math.abs(loss - reference) / reference, name).toBeLessThan(backend.precision === 'float32' ? 1e-5 : 1e-12);
    }
  });

  it('refuses unknown names and variants that cannot run, saying why', async () => {
    await expect(openBackend('tpu')).rejects.toThrow(/unknown backend "tpu"; choose from cpu, wasm/);
    for (const odd of ['wasm:0', 'wasm:1e3', 'wasm:0x10', 'wasm: 2', 'wasm:100000'])
      expect(backendUnavailable(odd), odd).toMatch(/positive whole number|more than 256/);
    expect(backendUnavailable('cpu:bogus')).toMatch(/'cpu' takes no variant/);
    expect(backendUnavailable('gpu.js:quantum')).toMatch(/name a gpu.js mode/);
    expect(backendUnavailable('wasm')).toBeUndefined();
    await expect(openBackend('wasm:x')).rejects.toThrowError(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
