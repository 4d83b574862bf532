import { BackendError } from '@almora/tensor';
import { afterEach, describe, expect, it } from 'vitest';
import { Heap } from '../src/heap.js';
import { compileKernels, type KernelExports } from '../src/kernels.js';
import { CONTROL_BYTES, ThreadPool } from '../src/threads.js';

/** A pool of the calling thread and one worker over fresh shared memory, with a heap above its control block. */
async function pool(): Promise<{ pool: ThreadPool; heap: Heap; exports: KernelExports }> {
  const module = await compileKernels(true);
  const memory = new WebAssembly.Memory({ initial: 17, maximum: 65_536, shared: true });
  const exports = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
  const control = Math.ceil(exports.staticEnd() / 64) * 64;
  return { pool: await ThreadPool.start(module, exports, memory, control, 1), heap: new Heap(memory, control + CONTROL_BYTES), exports };
}

/** The arguments of a float64 matmul long enough (≈ 4 GFLOP, two parts) for a worker to die in the middle of it. */
function longMatmul(heap: Heap, exports: KernelExports): { args: number[]; rows: number; scratch: { arg: number; stride: number } } {
  const [rows, k, n] = [2048, 1024, 1024];
  const a = heap.allocate(rows * k * 8);
  const b = heap.allocate(k * n * 8);
  const c = heap.allocate(rows * n * 8);
  heap.f64(a, rows * k).fill(0.5);
  heap.f64(b, k * n).fill(0.25);
  const stride = (exports as unknown as { matmulScratchBytes(size: number, n: number, k: number): number }).matmulScratchBytes(8, n, k);
  return { args: [a, b, c, n, k, heap.allocate(2 * stride)], rows, scratch: { arg: 5, stride } };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a wasm thread pool whose worker dies', () => {
  let open: ThreadPool | undefined;
  afterEach(() => open?.terminate());

  it('throws a typed error naming the worker and the kernel when the worker is terminated mid-kernel, instead of waiting forever', async () => {
    const { pool: p, heap, exports } = await pool();
    open = p;
    const { args, rows, scratch } = longMatmul(heap, exports);
    // Once whole, so the worker runs optimized code and the kill lands in the middle of its part.
    p.run('matmulF64', args, rows, 2, scratch);
    p.killWorker(1, 20);
    const started = performance.now();
    expect(() => p.run('matmulF64', args, rows, 2, scratch)).toThrow(BackendError);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(() => p.run('matmulF64', args, rows, 2, scratch)).toThrow(/^wasm worker thread 1 was terminated \(noticed during kernel matmulF64\)/);
    // The pool stays unusable, and says why, without dispatching anything.
    expect(() => p.run('matmulF64', args, rows, 2, scratch)).toThrow(/wasm worker thread 1 (was terminated|exited).*matmulF64.*unusable/);
  }, 30_000);

  it('refuses the next kernel at once when a worker died between kernels', async () => {
    const { pool: p, heap, exports } = await pool();
    open = p;
    const { args, rows, scratch } = longMatmul(heap, exports);
    p.killWorker(1, 0);
    await sleep(300);
    const started = performance.now();
    expect(() => p.run('matmulF64', args, rows, 2, scratch)).toThrow(/wasm worker thread 1 (was terminated|exited)/);
    expect(performance.now() - started).toBeLessThan(1_000);
  }, 30_000);
});
