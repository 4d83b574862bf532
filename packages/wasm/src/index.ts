/**
 * The WebAssembly backend of almora: every `Backend` primitive as a 128-bit SIMD kernel (f64x2 and
 * f32x4), split by rows over worker threads sharing the kernels' memory where the host allows it.
 *
 * @packageDocumentation
 * @module @almora/wasm
 */
import { BackendError } from '@almora/tensor';
import { WasmBackend } from './backend.js';
import { Heap } from './heap.js';
import { compileKernels, type KernelExports, simdSupported } from './kernels.js';
import { canBlock, CONTROL_BYTES, coreCount, ThreadPool } from './threads.js';

export { WasmBackend, type WasmMatrix } from './backend.js';

/** Options of {@link createWasmBackend}. */
export interface WasmBackendOptions {
  /**
   * Threads the kernels run on, the calling one included. Default: every core. More than one needs
   * shared memory (Node, or a cross-origin-isolated page) and a thread that may block
   * (Node, or a Web Worker: a page's main thread runs single-threaded).
   */
  threads?: number;
}

/** Whether the kernels can run on more than one thread here. */
export interface ThreadSupport {
  /** Shared memory and blocking waits are both available. */
  available: boolean;
  /** Why, or why not, in one sentence. */
  reason: string;
}

/** Whether the kernels can run on more than one thread here, and if not, why. */
export function threadSupport(): ThreadSupport {
  if (typeof SharedArrayBuffer !== 'function')
    return { available: false, reason: 'SharedArrayBuffer is unavailable (a page needs cross-origin isolation: COOP/COEP headers)' };
  if (!canBlock()) return { available: false, reason: "this thread may not block on Atomics.wait (a page's main thread): run almora in a Web Worker" };
  return { available: true, reason: 'shared memory and blocking waits are available' };
}

/**
 * Compiles the kernels, makes their memory, and starts the worker threads: a {@link WasmBackend}
 * to pass as `backend` to `loraGradients`, `attention` or `loraAttention`. Call `close()` when done
 * to stop the threads (they do not keep Node alive).
 *
 * @example
 * ```ts
 * import { createWasmBackend } from '@almora/wasm';
 * import { loraGradients, syntheticProblem } from '@almora/lora';
 * import { Rng } from '@almora/tensor';
 *
 * const backend = await createWasmBackend(); // one thread per core
 * const problem = syntheticProblem({ length: 8192, d: 16, rank: 4, targets: ['q', 'k', 'v'], gamma: 0.5 }, new Rng(1));
 * const { report } = loraGradients(problem, { method: 'auto', backend });
 * console.log(backend.name, report.chosen, report.reason); // e.g. "wasm simd 2 threads", the path 'auto' took and why
 * backend.close();
 * ```
 */
export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  if (!simdSupported()) throw new BackendError('this engine has no WebAssembly SIMD (128-bit); the wasm backend needs it (Node 16+, current browsers)');
  const cores = await coreCount();
  const wanted = options.threads ?? cores;
  if (!Number.isInteger(wanted) || wanted < 1 || wanted > 4 * cores)
    throw new BackendError(`threads must be an integer from 1 to ${4 * cores} (4 × the ${cores} cores here), got ${wanted}`);
  const threads = threadSupport().available ? wanted : 1;
  const shared = threads > 1;
  const module = await compileKernels(shared);
  const memory = new WebAssembly.Memory(shared ? { initial: 17, maximum: 65_536, shared: true } : { initial: 17 });
  const exports = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
  const control = Math.ceil(exports.staticEnd() / 64) * 64;
  const heap = new Heap(memory, control + CONTROL_BYTES);
  const pool = shared ? await ThreadPool.start(module, exports, memory, control, threads - 1) : undefined;
  return WasmBackend.over(`wasm simd ${threads} thread${threads === 1 ? '' : 's'}`, heap, exports, pool);
}
