import { BackendError } from '@almora/tensor';
import { KERNEL_NAMES, type KernelExports } from './kernels.js';

/**
 * The control block shared by the host and the threads, in the kernels' memory: int32 slots, then
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
/** Workers that died (the keeper counts them), the first one's part, and its exit code (−1: an uncaught error, −2: terminated). */
const DEAD = 9;
const DEAD_PART = 10;
const DEAD_CODE = 11;
/** Bytes of the control block. */
export const CONTROL_BYTES = 256;
const MAX_ARGS = 16;
/**
 * How long the host blocks before it looks at the DEAD slot again. The keeper wakes it on a death,
 * but a wake sent between the host's read of PENDING and its wait would be lost without a bound.
 */
const WAIT_SLICE_MS = 50;

// One script, two roles. A "compute" worker instantiates the kernels over the shared memory, then
// waits for a generation bump, runs its share of the range, counts down, and waits again; a kernel
// that traps is reported through the FAILED slot. The "keeper" starts the compute workers and
// watches them: a host blocked in Atomics.wait cannot receive a worker's exit or error event (they
// arrive on its event loop), so the keeper, whose loop stays free, records a death in the DEAD
// slots and wakes the host. Node delivers exit events (terminate, out of memory, process.exit);
// browsers deliver only uncaught errors, and a terminate() the keeper made itself.
const WORKER_SOURCE = `
const node = typeof process === 'object' && process.versions && process.versions.node;
const port = node ? require('node:worker_threads').parentPort : self;
const listen = (fn) => (node ? port.once('message', fn) : (self.onmessage = (e) => { self.onmessage = null; fn(e.data); }));
listen((init) => (init.role === 'keeper' ? keep(init) : compute(init)));

function compute({ module, memory, names, part, control }) {
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
}

function keep({ module, memory, names, control, workers, source }) {
  const slots = new Int32Array(memory.buffer, control, 16);
  const handles = [];
  const gone = new Set();
  const died = (part, code) => {
    if (gone.has(part)) return;
    gone.add(part);
    if (Atomics.compareExchange(slots, ${DEAD_PART}, 0, part) === 0) Atomics.store(slots, ${DEAD_CODE}, code);
    Atomics.add(slots, ${DEAD}, 1);
    Atomics.notify(slots, ${PENDING});
  };
  const url = node ? undefined : URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  const started = Array.from({ length: workers }, (_, w) => new Promise((resolve, reject) => {
    const part = w + 1;
    const init = { role: 'compute', module, memory, names, part, control };
    if (node) {
      const worker = new (require('node:worker_threads').Worker)(source, { eval: true });
      worker.once('message', resolve);
      worker.on('error', (error) => (died(part, -1), reject(error)));
      worker.on('exit', (code) => (died(part, code), reject(new Error('exited with code ' + code))));
      worker.postMessage(init);
      handles.push(worker);
    } else {
      const worker = new Worker(url);
      worker.onmessage = () => resolve();
      worker.onerror = (event) => (died(part, -1), reject(new Error(event.message)));
      worker.postMessage(init);
      handles.push(worker);
    }
  }));
  Promise.all(started).then(
    () => {
      if (url) URL.revokeObjectURL(url);
      port.postMessage('ready');
    },
    (error) => port.postMessage({ error: String(error && error.message ? error.message : error) }),
  );
  // From the host, for tests: terminate worker \`part\` after \`after\` ms (browsers send no event for it).
  const onMessage = ({ kill, after }) => setTimeout(() => {
    handles[kill - 1].terminate();
    died(kill, -2);
  }, after);
  if (node) port.on('message', onMessage);
  else self.onmessage = (event) => onMessage(event.data);
}
`;

/** What the host needs of the keeper: Node's worker_threads.Worker and the browser's Worker both offer it. */
interface WorkerHandle {
  terminate(): unknown;
  postMessage(message: unknown): void;
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

interface KeeperInit {
  role: 'keeper';
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  names: readonly string[];
  control: number;
  workers: number;
  source: string;
}

/**
 * Starts the keeper, which starts the compute workers; resolves once every one is ready. `lost`
 * is called if the keeper itself later fails or exits (its event reaches the host's loop).
 */
async function spawnKeeper(init: KeeperInit, lost: (why: string) => void): Promise<WorkerHandle> {
  const started = (message: unknown) =>
    typeof message === 'object' && message !== null && 'error' in message
      ? new BackendError(`a wasm worker failed to start: ${String(message.error)}`)
      : undefined;
  if (typeof process === 'object' && process.versions?.node) {
    const { Worker } = await nodeBuiltin<typeof import('node:worker_threads')>('worker_threads');
    const keeper = new Worker(WORKER_SOURCE, { eval: true });
    keeper.unref();
    await new Promise<void>((resolve, reject) => {
      keeper.once('message', (message: unknown) => {
        const failure = started(message);
        if (failure) reject(failure);
        else resolve();
      });
      keeper.once('error', reject);
      keeper.postMessage(init);
    });
    keeper.on('error', (error) => lost(`the keeper thread failed: ${error.message}`));
    keeper.on('exit', (code) => lost(`the keeper thread exited with code ${code}`));
    return keeper;
  }
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
  const keeper = new Worker(url);
  URL.revokeObjectURL(url);
  await new Promise<void>((resolve, reject) => {
    keeper.onmessage = (event: MessageEvent) => {
      const failure = started(event.data);
      if (failure) reject(failure);
      else resolve();
    };
    keeper.onerror = (event) => reject(new BackendError(`a wasm worker failed to start: ${event.message}`));
    keeper.postMessage(init);
  });
  keeper.onerror = (event) => lost(`the keeper thread failed: ${event.message}`);
  return keeper;
}

/**
 * Runs kernels over row ranges on the calling thread and `workers` more, all on one shared
 * memory: the caller writes the arguments into the control block, bumps the generation, takes
 * part 0 itself and waits for the others with Atomics.wait. A worker that dies (terminated, out of
 * memory, an uncaught error) is reported by the keeper thread: the waiting caller throws a
 * {@link BackendError} naming the worker and the kernel, and every later run throws it again.
 */
export class ThreadPool {
  /** Why the pool can no longer run kernels, once it cannot. */
  private broken: string | undefined;

  private constructor(
    private readonly exports: KernelExports,
    private readonly memory: WebAssembly.Memory,
    private readonly control: number,
    private readonly workers: number,
    private keeper: WorkerHandle | undefined,
  ) {}

  /** Starts `workers` threads over `memory` (shared), each with its own instance of `module`, and the keeper that watches them. */
  static async start(module: WebAssembly.Module, exports: KernelExports, memory: WebAssembly.Memory, control: number, workers: number): Promise<ThreadPool> {
    // The keeper may be lost before the pool exists: the reason waits here until it does.
    const lost: { pool?: ThreadPool; why?: string } = {};
    const keeper = await spawnKeeper({ role: 'keeper', module, memory, names: KERNEL_NAMES, control, workers, source: WORKER_SOURCE }, (why) => {
      lost.why ??= why;
      if (lost.pool) lost.pool.broken ??= why;
    });
    const pool = new ThreadPool(exports, memory, control, workers, keeper);
    pool.broken = lost.why;
    lost.pool = pool;
    return pool;
  }

  /** Threads that compute, the caller included. */
  get threads(): number {
    return this.workers + 1;
  }

  /**
   * Runs `kernel(...args, start, end)` over [0, count) in `parts` contiguous ranges, one per thread.
   * `scratch`, when given, names the argument that points to per-thread scratch space and its
   * bytes per thread: part p gets pointer + p·stride. Throws a {@link BackendError} when a worker
   * died before or during the run; the pool is then closed.
   */
  run(kernel: (typeof KERNEL_NAMES)[number], args: number[], count: number, parts: number, scratch?: { arg: number; stride: number }): void {
    if (args.length > MAX_ARGS) throw new BackendError(`kernel ${kernel} has ${args.length} arguments; at most ${MAX_ARGS} fit the control block`);
    const slots = new Int32Array(this.memory.buffer, this.control, 16);
    this.checkAlive(slots, kernel, 'before');
    const used = Math.min(parts, this.threads);
    slots[KERNEL] = KERNEL_NAMES.indexOf(kernel);
    slots[COUNT] = count;
    slots[PARTS] = used;
    slots[ARITY] = args.length;
    slots[SCRATCH_ARG] = scratch ? scratch.arg : -1;
    slots[SCRATCH_STRIDE] = scratch ? scratch.stride : 0;
    new Float64Array(this.memory.buffer, this.control + 64, args.length).set(args);
    Atomics.store(slots, PENDING, this.workers);
    Atomics.add(slots, GENERATION, 1);
    Atomics.notify(slots, GENERATION);
    const end = Math.floor(count / used);
    let failure: unknown;
    try {
      if (end > 0) this.exports[kernel](...args, 0, end);
    } catch (error) {
      failure = error;
    }
    // Wait for every live worker's count-down: a dead one never counts down, so the wait ends
    // when no more than the dead remain (the live ones still finish, so none writes into memory
    // the caller reuses after the throw). Sliced, so a lost wake costs WAIT_SLICE_MS, not forever.
    for (let pending = Atomics.load(slots, PENDING); pending > Atomics.load(slots, DEAD); pending = Atomics.load(slots, PENDING)) {
      Atomics.wait(slots, PENDING, pending, WAIT_SLICE_MS);
    }
    this.checkAlive(slots, kernel, 'during');
    if (failure !== undefined || Atomics.exchange(slots, FAILED, 0) !== 0) {
      throw new BackendError(`wasm kernel ${kernel} failed${failure instanceof Error ? `: ${failure.message}` : ' in a worker thread'}`);
    }
  }

  /** Throws, and closes the pool, once a worker or the keeper is gone. */
  private checkAlive(slots: Int32Array, kernel: string, when: 'before' | 'during'): void {
    if (this.broken === undefined && Atomics.load(slots, DEAD) > 0) {
      const code = Atomics.load(slots, DEAD_CODE);
      const how = code === -2 ? 'was terminated' : code === -1 ? 'failed with an uncaught error' : `exited with code ${code}`;
      this.broken = `wasm worker thread ${Atomics.load(slots, DEAD_PART)} ${how} (noticed ${when} kernel ${kernel})`;
    }
    if (this.broken === undefined) return;
    this.terminate();
    throw new BackendError(`${this.broken}; the wasm thread pool is unusable: create a new backend`);
  }

  /** Terminates worker `part` (1 … workers) `afterMs` after the keeper gets this message: for tests of a worker that dies. */
  killWorker(part: number, afterMs: number): void {
    this.keeper?.postMessage({ kill: part, after: afterMs });
  }

  /** Stops the keeper and the workers it started (a terminated keeper takes its nested workers with it). */
  terminate(): void {
    const keeper = this.keeper;
    this.keeper = undefined;
    this.broken ??= 'the thread pool was closed';
    void keeper?.terminate();
  }
}
