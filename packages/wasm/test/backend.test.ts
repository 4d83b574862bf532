import { gradientChecks, primitiveChecks, refusalChecks, tallChecks } from '@almora/conformance';
import { loraGradients } from '@almora/lora';
import { cpuBackend } from '@almora/kernels';
import { BackendError, DTypeError, fromFlat, randomNormal, Rng, scale, ShapeError } from '@almora/tensor';
import { afterAll, describe, expect, it } from 'vitest';
import { createWasmBackend, threadSupport } from '../src/index.js';

const single = await createWasmBackend({ threads: 1 });
const every = await createWasmBackend();
afterAll(() => {
  single.close();
  every.close();
});
console.log(`wasm backends under test: ${single.name}; ${every.name} (${threadSupport().reason})`);

const byName = <C extends { name: string }>(checks: C[]) => checks.map((c) => [c.name, c] as const);

describe.each([single, every])('$name', (backend) => {
  describe.each(['float64', 'float32'] as const)('in %s', async (dtype) => {
    const checks = [...(await primitiveChecks(backend, dtype)), ...(dtype === 'float64' ? await tallChecks(backend) : [])];
    it.each(byName(checks))('%s agrees with its definition', (_name, check) => {
      expect(check.deviation).toBeLessThanOrEqual(check.tolerance);
    });
  });
  it('refuses a fractional row offset, a bad causal start and a fractional diagonal offset with typed errors', () => {
    expect(refusalChecks(backend)).toEqual([]);
  });
  describe('whole gradients', async () => {
    const checks = await gradientChecks(backend);
    it.each(byName(checks))('%s agrees with the CPU in float64', (_name, check) => {
      expect(check.deviation).toBeLessThanOrEqual(check.tolerance);
    });
  });
});

describe('the wasm backend', () => {
  it('runs on every core in Node, over shared memory', () => {
    expect(threadSupport().available).toBe(true);
    expect(every.threads).toBeGreaterThanOrEqual(1);
    expect(every.name).toBe(`wasm simd ${every.threads} thread${every.threads === 1 ? '' : 's'}`);
    expect(single.threads).toBe(1);
  });

  it('multiplies over an inner dimension of 0 to zeros, in memory that held other values', () => {
    const rng = new Rng(10);
    const junk = single.upload(randomNormal(5, 9, rng));
    single.dispose(junk);
    const product = single.matmul(single.upload(fromFlat(5, 0, new Float64Array(0))), single.upload(fromFlat(0, 9, new Float64Array(0))));
    expect(Array.from(single.readSync(product).toFlat())).toEqual(new Array<number>(45).fill(0));
  });

  it('splits long work over its threads with the same result as one thread, bit for bit', () => {
    const rng = new Rng(4);
    const a = randomNormal(301, 37, rng);
    const b = randomNormal(37, 129, rng);
    const products = [single, every].map((backend) => {
      const [ha, hb] = [backend.upload(a), backend.upload(b)];
      const product = backend.matmul(ha, hb);
      const probabilities = backend.attentionProbabilities(ha, ha, 0.3, 5);
      const out = [backend.readSync(product), backend.readSync(probabilities)];
      for (const h of [ha, hb, product, probabilities]) backend.dispose(h);
      return out;
    });
    expect(products[1][0].toFlat()).toEqual(products[0][0].toFlat());
    expect(products[1][1].toFlat()).toEqual(products[0][1].toFlat());
  });

  it('refuses mixed dtypes, mismatched shapes and handles used after dispose, with typed errors', () => {
    const rng = new Rng(5);
    const f64 = single.upload(randomNormal(4, 3, rng));
    const f32 = single.upload(fromFlat(3, 4, new Float32Array(12), { dtype: 'float32' }));
    expect(() => single.matmul(f64, f32)).toThrow(DTypeError);
    expect(() => single.add(f64, single.upload(randomNormal(3, 4, rng)))).toThrow(ShapeError);
    expect(() => single.matmul(f64, f64)).toThrow(ShapeError);
    expect(() => single.sliceRows(f64, 2, 9)).toThrow(ShapeError);
    single.dispose(f64);
    expect(() => single.abs(f64)).toThrow(BackendError);
    single.dispose(f64);
  });

  it('keeps a transposed K for block after block of queries, and forgets it once K changes or goes', () => {
    const rng = new Rng(8);
    const [q, k, block] = [randomNormal(16, 4, rng), randomNormal(64, 4, rng), randomNormal(3, 4, rng)];
    const [hq, hk, hblock] = [q, k, block].map((m) => every.upload(m));
    const softmax = () => {
      const p = every.attentionProbabilities(hq, hk, 0.5);
      const host = every.readSync(p);
      every.dispose(p);
      return host.toFlat();
    };
    const before = softmax();
    expect(softmax()).toEqual(before);
    // K's rows 10–12 change through a row slice, which shares K's memory.
    every.accumulate(every.sliceRows(hk, 10, 13), hblock);
    const changed = cpuBackend.attentionProbabilities(q, every.readSync(hk), 0.5).toFlat();
    const after = softmax();
    expect(after).not.toEqual(before);
    for (let t = 0; t < after.length; t++) expect(Math.abs(after[t] - changed[t])).toBeLessThan(1e-15);
    for (const h of [hq, hk, hblock]) every.dispose(h);
  });

  it('gives back every product tree: a loop of fast gradients does not grow the heap (trees are made per call)', () => {
    const rng = new Rng(9);
    const d = 8;
    const small = (rows: number, cols: number) => scale(randomNormal(rows, cols, rng), 0.3);
    const problem = {
      x: small(256, d),
      target: randomNormal(256, d, rng),
      weights: { q: small(d, d), k: small(d, d), v: small(d, d) },
      adapters: { q: { a: small(2, d), b: small(d, 2) } },
      alpha: 2,
      heads: 2,
    };
    const run = () => loraGradients(problem, { method: 'fast', degree: 3, backend: single });
    run();
    const before = single.memoryBytes;
    for (let i = 0; i < 30; i++) run();
    expect(single.memoryBytes).toBe(before);
  });

  it('reuses released memory: a loop of same-sized work does not grow the heap', () => {
    const rng = new Rng(6);
    const host = randomNormal(256, 64, rng);
    const round = () => {
      const h = single.upload(host);
      const p = single.matmul(h, h, { transposeB: true });
      single.dispose(p);
      single.dispose(h);
    };
    round();
    const before = single.memoryBytes;
    for (let i = 0; i < 20; i++) round();
    expect(single.memoryBytes).toBe(before);
  });

  it('gives loraGradients the same answer as the CPU', () => {
    const rng = new Rng(7);
    const d = 8;
    const problem = {
      x: randomNormal(200, d, rng),
      target: randomNormal(200, d, rng),
      weights: { q: randomNormal(d, d, rng), k: randomNormal(d, d, rng), v: randomNormal(d, d, rng) },
      adapters: { q: { a: randomNormal(2, d, rng), b: randomNormal(d, 2, rng) }, v: { a: randomNormal(2, d, rng), b: randomNormal(d, 2, rng) } },
      alpha: 2,
      heads: 2,
    };
    const cpu = loraGradients(problem, { method: 'exact' });
    const wasm = loraGradients(problem, { method: 'exact', backend: every });
    expect(wasm.report.backend).toBe(every.name);
    expect(Math.abs(wasm.loss - cpu.loss)).toBeLessThan(1e-9 * cpu.loss);
  });
});
