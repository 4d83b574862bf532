import { BackendError } from '@almora/tensor';
import { KERNEL_NAMES, type KernelExports } from './kernels.js';

/**
 * The control block shared by the host and the workers, in the kernels' memory: int32 slots, then
 * up to 16 float64 arguments at byte 64.
 */
const GENERATION = 0;
const PENDING = 1;
const KERNEL = 2;
const COUNT = 3;
const PARTS = 4;
const ARITY = 5;
const SCRATCH_ARG = 6;
const SCRATCH_STRIDE = 7;
const FAILED = 8;
/** Bytes of the control block. */
export const CONTROL_BYTES = 256;
const MAX_ARGS = 16;

// Runs in every worker, in Node (worker_threads, eval) and in browsers (a Blob URL): instantiate the
// kernels over the shared memory, then wait for a generation bump, run this worker's share of the
// range, count down, and wait again. A kernel that traps is reported through the FAILED slot.
const WORKER_SOURCE = `
const node = typeof process === 'object' && process.versions && process.versions.node;
const port = node ? require('node:worker_threads').parentPort : self;
const listen = (fn) => (node ? port.once('message', fn) : (self.onmessage = (e) => fn(e.data)));
listen(({ module, memory, names, part, control }) => {
  const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const kernels = names.map((name) => exports[name]);
  const slots = new Int32Array(memory.buffer, control, 16);
  let generation = Atomics.load(slots, ${GENERATION});
  port.postMessage('ready');
  for (;;) {
    Atomics.wait(slots, ${GENERATION}, generation);
    generation = Atomics.load(slots, ${GENERATION});
    const parts = slots[${PARTS}];
    if (part < parts) {
      const count = slots[${COUNT}];
      const start = Math.floor((count * part) / parts);
      const end = Math.floor((count * (part + 1)) / parts);
      if (end > start) {
        const args = Array.from(new Float64Array(memory.buffer, control + 64, slots[${ARITY}]));
        if (slots[${SCRATCH_ARG}] >= 0) args[slots[${SCRATCH_ARG}]] += part * slots[${SCRATCH_STRIDE}];
        try {
          kernels[slots[${KERNEL}]](...args, start, end);
        } catch {
          Atomics.store(slots, ${FAILED}, 1);
        }
      }
    }
    if (Atomics.sub(slots, ${PENDING}, 1) === 1) Atomics.notify(slots, ${PENDING});
  }
});
`;

/** What a worker handle must offer: Node's worker_threads.Worker and the browser's Worker both do. */
interface WorkerHandle {
  terminate(): unknown;
}

/**
 * Node's built-in modules, imported by a name bundlers do not follow: a browser bundle of this
 * package must not try to resolve them, and only Node ever takes these paths.
 */
function nodeBuiltin<T>(name: 'os' | 'worker_threads'): Promise<T> {
  const specifier = `node:${name}`;
  return import(/* @vite-ignore */ specifier) as Promise<T>;
}

/** Whether this thread may block on Atomics.wait: Node's main thread and workers can; a browser's main thread cannot. */
export function canBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

/** Cores this machine offers: os.availableParallelism() in Node, navigator.hardwareConcurrency in browsers. */
export async function coreCount(): Promise<number> {
  if (typeof process === 'object' && process.versions?.node) {
    const os = await nodeBuiltin<typeof import('node:os')>('os');
    return os.availableParallelism();
  }
  return typeof navigator === 'object' && navigator.hardwareConcurrency ? navigator.hardwareConcurrency : 1;
}

async function spawn(init: { module: WebAssembly.Module; memory: WebAssembly.Memory; names: readonly string[]; part: number; control: number }): Promise<WorkerHandle> {
  if (typeof process === 'object' && process.versions?.node) {
    const { Worker } = await nodeBuiltin<typeof import('node:worker_threads')>('worker_threads');
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
      worker.postMessage(init);
    });
    return worker;
  }
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
  const worker = new Worker(url);
  URL.revokeObjectURL(url);
  await new Promise<void>((resolve, reject) => {
    worker.onmessage = () => resolve();
    worker.onerror = (event) => reject(new BackendError(`a wasm worker failed to start: ${event.message}`));
    worker.postMessage(init);
  });
  return worker;
}

/**
 * Runs kernels over row ranges on the calling thread and `workers` more, all on one shared
 * memory: the caller writes the arguments into the control block, bumps the generation, takes
 * part 0 itself and waits for the others with Atomics.wait.
 */
export class ThreadPool {
  private constructor(
    private readonly exports: KernelExports,
    private readonly memory: WebAssembly.Memory,
    private readonly control: number,
    private readonly workers: WorkerHandle[],
  ) {}

  /** Starts `workers` threads over `memory` (shared), each with its own instance of `module`. */
  static async start(module: WebAssembly.Module, exports: KernelExports, memory: WebAssembly.Memory, control: number, workers: number): Promise<ThreadPool> {
    const handles = await Promise.all(Array.from({ length: workers }, (_, w) => spawn({ module, memory, names: KERNEL_NAMES, part: w + 1, control })));
    return new ThreadPool(exports, memory, control, handles);
  }

  /** Threads that compute, the caller included. */
  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * Runs `kernel(...args, start, end)` over [0, count) in `parts` contiguous ranges, one per thread.
   * `scratch`, when given, names the argument that points to per-thread scratch space and its
   * bytes per thread: part p gets pointer + p·stride.
   */
  run(kernel: (typeof KERNEL_NAMES)[number], args: number[], count: number, parts: number, scratch?: { arg: number; stride: number }): void {
    if (args.length > MAX_ARGS) throw new BackendError(`kernel ${kernel} has ${args.length} arguments; at most ${MAX_ARGS} fit the control block`);
    const slots = new Int32Array(this.memory.buffer, this.control, 16);
    const used = Math.min(parts, this.threads);
    slots[KERNEL] = KERNEL_NAMES.indexOf(kernel);
    slots[COUNT] = count;
    slots[PARTS] = used;
    slots[ARITY] = args.length;
    slots[SCRATCH_ARG] = scratch ? scratch.arg : -1;
    slots[SCRATCH_STRIDE] = scratch ? scratch.stride : 0;
    new Float64Array(this.memory.buffer, this.control + 64, args.length).set(args);
    Atomics.store(slots, PENDING, this.workers.length);
    Atomics.add(slots, GENERATION, 1);
    Atomics.notify(slots, GENERATION);
    const end = Math.floor(count / used);
    let failure: unknown;
    try {
      if (end > 0) this.exports[kernel](...args, 0, end);
    } catch (error) {
      failure = error;
    }
    for (let pending = Atomics.load(slots, PENDING); pending !== 0; pending = Atomics.load(slots, PENDING)) Atomics.wait(slots, PENDING, pending);
    if (failure !== undefined || Atomics.exchange(slots, FAILED, 0) !== 0) {
      throw new BackendError(`wasm kernel ${kernel} failed${failure instanceof Error ? `: ${failure.message}` : ' in a worker thread'}`);
    }
  }

  /** Stops the workers. */
  terminate(): void {
    for (const worker of this.workers) void worker.terminate();
    this.workers.length = 0;
  }
}
