import { fromFlat, matmul, type Matrix, randomNormal, Rng, toDType, transpose } from '@almora/tensor';
import { afterAll, describe, expect, it } from 'vitest';
import { compileKernels, type KernelExports } from '../src/kernels.js';
import { createWasmBackend } from '../src/index.js';

const single = await createWasmBackend({ threads: 1 });
const every = await createWasmBackend();
afterAll(() => {
  single.close();
  every.close();
});

const abs = (m: Matrix) => fromFlat(m.rows, m.cols, m.toFlat().map(Math.abs));

/**
 * The largest |wasm − exact| over the entries, in units of the forward-error bound of a k-term dot
 * product, k·u·(|A|·|B|)_ij (u the dtype's unit roundoff); the exact product is float64 on the CPU
 * from the same (rounded) inputs. Below 1 means every entry is within the bound.
 */
function boundRatio(product: Matrix, a: Matrix, b: Matrix, k: number, dtype: 'float64' | 'float32'): number {
  const exact = matmul(toDType(a, 'float64'), toDType(b, 'float64')).toFlat();
  const scale = matmul(abs(toDType(a, 'float64')), abs(toDType(b, 'float64'))).toFlat();
  const u = dtype === 'float64' ? 2 ** -53 : 2 ** -24;
  const got = product.toFlat();
  let worst = 0;
  for (let t = 0; t < got.length; t++) worst = Math.max(worst, Math.abs(got[t] - exact[t]) / (k * u * scale[t] + Number.MIN_VALUE));
  return worst;
}

// Sizes on each side of the register block (4 rows × 8 float32 / 4 float64 columns) and of the
// packed panel of B (256 deep × 256 wide), and the tall-skinny shapes almora's algorithms use.
const shapes: [m: number, k: number, n: number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [4, 8, 8],
  [5, 9, 9],
  [7, 255, 17],
  [9, 257, 3],
  [6, 513, 259],
  [33, 300, 520],
  [1000, 16, 153],
];

describe.each([single, every])('matmul on $name', (backend) => {
  describe.each(['float64', 'float32'] as const)('in %s', (dtype) => {
    it.each(shapes)('A·B, Aᵀ·B and A·Bᵀ of %i×%i · %i×… agree with float64 within k·u·|A||B|', (m, k, n) => {
      const rng = new Rng(m * 1000 + k * 10 + n);
      const a = toDType(randomNormal(m, k, rng), dtype);
      const b = toDType(randomNormal(k, n, rng), dtype);
      const [ha, hb, haT, hbT] = [a, b, transpose(a), transpose(b)].map((x) => backend.upload(x));
      const products = [backend.matmul(ha, hb), backend.matmul(haT, hb, { transposeA: true }), backend.matmul(ha, hbT, { transposeB: true })];
      for (const p of products) {
        const host = backend.readSync(p);
        expect([host.rows, host.cols]).toEqual([m, n]);
        expect(boundRatio(host, a, b, k, dtype)).toBeLessThan(1);
      }
      for (const h of [ha, hb, haT, hbT, ...products]) backend.dispose(h);
    });

    it('an inner dimension of 0 gives zeros in every form', () => {
      const a = backend.upload(fromFlat(5, 0, new Float64Array(0), { dtype }));
      const aT = backend.upload(fromFlat(0, 5, new Float64Array(0), { dtype }));
      const b = backend.upload(fromFlat(0, 9, new Float64Array(0), { dtype }));
      for (const p of [backend.matmul(a, b), backend.matmul(aT, b, { transposeA: true })]) {
        expect(Array.from(backend.readSync(p).toFlat())).toEqual(new Array<number>(45).fill(0));
        backend.dispose(p);
      }
    });
  });

  it('keeps the Aᵀ·B shape of the exact path (153 × L · L × 17) within the bound', () => {
    const rng = new Rng(3);
    const a = randomNormal(4099, 153, rng);
    const b = randomNormal(4099, 17, rng);
    const [ha, hb] = [a, b].map((x) => backend.upload(x));
    const p = backend.matmul(ha, hb, { transposeA: true });
    expect(boundRatio(backend.readSync(p), transpose(a), b, 4099, 'float64')).toBeLessThan(1);
    for (const h of [ha, hb, p]) backend.dispose(h);
  });
});

describe('the matmul kernel over row ranges', () => {
  it('gives every row range [start, end) the rows of the whole product, bit for bit', async () => {
    const module = await compileKernels(false);
    const memory = new WebAssembly.Memory({ initial: 64 });
    const kernels = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports & {
      matmulScratchBytes(size: number, n: number, k: number): number;
    };
    const [m, k, n] = [23, 300, 37];
    const rng = new Rng(11);
    const base = Math.ceil(kernels.staticEnd() / 16) * 16;
    const [a, b, whole, parts, scratch] = [
      base,
      base + m * k * 8,
      base + (m + n) * k * 8,
      base + (m + n) * k * 8 + m * n * 8,
      base + (m + n) * k * 8 + 2 * m * n * 8,
    ];
    new Float64Array(memory.buffer, a, m * k).set(randomNormal(m, k, rng).toFlat());
    new Float64Array(memory.buffer, b, k * n).set(randomNormal(k, n, rng).toFlat());
    expect(scratch + kernels.matmulScratchBytes(8, n, k)).toBeLessThan(memory.buffer.byteLength);
    kernels.matmulF64(a, b, whole, n, k, scratch, 0, m);
    // Uneven ranges, some shorter than the 4-row block, one empty.
    for (const [start, end] of [
      [0, 1],
      [1, 6],
      [6, 6],
      [6, 13],
      [13, 23],
    ])
      kernels.matmulF64(a, b, parts, n, k, scratch, start, end);
    expect(Array.from(new Float64Array(memory.buffer, parts, m * n))).toEqual(Array.from(new Float64Array(memory.buffer, whole, m * n)));
  });
});
