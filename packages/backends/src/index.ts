/**
 * Every almora backend by name, in one registry: what the bench's `--backend`, the docs explorer and
 * `almora train --backend` choose from. Adding a backend means writing its package and one entry
 * here.
 *
 * @packageDocumentation
 * @module @almora/backends
 */
import { availableGpuModes, createGpuBackend, type GpuMode } from '@almora/gpu';
import { cpuBackend } from '@almora/kernels';
import { type Backend, InvalidArgumentError } from '@almora/tensor';
import { createWasmBackend, threadSupport } from '@almora/wasm';

/** A backend ready to use, and how to let go of it (threads, device memory). */
export interface OpenBackend {
  /** The backend to pass as `backend`. */
  backend: Backend;
  /** Releases what it holds (stops threads); harmless on the CPU. */
  close(): void;
}

/** One registered backend family. */
export interface BackendEntry {
  /** The name, or the prefix before ':' for parameterized names ('wasm:2', 'gpu.js:webgl2'). */
  name: string;
  /** One line: what it is, and its variants. */
  description: string;
  /** The names it answers to here, variants included. */
  names(): string[];
  /** Whether it can run here, and if not why; `undefined` when it can. */
  unavailable(variant: string | undefined): string | undefined;
  /** Starts it; `variant` is what followed the ':'. */
  open(variant: string | undefined): Promise<OpenBackend>;
}

/** Most threads a 'wasm:N' name may ask for: each is a worker with its own engine instance. */
const MAX_THREADS = 256;

const GPU_VARIANTS = ['gpu', 'best', 'webgpu', 'webgl2', 'webgl', 'headlessgl', 'webasm', 'cpu'] as const;

/** The registry: the CPU, WebAssembly SIMD on every core, and gpu.js in each of its modes. */
export const BACKENDS: readonly BackendEntry[] = [
  {
    name: 'cpu',
    description: 'plain JavaScript on the calling thread, float64 or float32 as uploaded (the reference)',
    names: () => ['cpu'],
    unavailable: (variant) => (variant === undefined ? undefined : `'cpu' takes no variant, got 'cpu:${variant}'`),
    open: () => Promise.resolve({ backend: cpuBackend, close: () => {} }),
  },
  {
    name: 'wasm',
    description: "WebAssembly 128-bit SIMD kernels on every core ('wasm'), or on N threads ('wasm:N'), float64 or float32 as uploaded",
    names: () => ['wasm', 'wasm:1', ...(threadSupport().available ? ['wasm:2'] : [])],
    unavailable: (variant) => {
      if (variant === undefined) return undefined;
      if (!/^[1-9]\d{0,2}$/.test(variant)) return `'wasm:${variant}' needs a positive whole number of threads, written plainly (at most ${MAX_THREADS})`;
      const threads = Number(variant);
      if (threads > MAX_THREADS) return `'wasm:${variant}' asks for more than ${MAX_THREADS} threads`;
      return threads > 1 && !threadSupport().available ? threadSupport().reason : undefined;
    },
    open: async (variant) => {
      const backend = await createWasmBackend(variant === undefined ? {} : { threads: Number(variant) });
      return { backend, close: () => backend.close() };
    },
  },
  {
    name: 'gpu.js',
    description: `gpu.js kernels in float32: 'gpu.js:<mode>' with mode ${GPU_VARIANTS.join(', ')} ('gpu': the best GPU mode, 'best': falling back to webasm, then cpu)`,
    names: () => {
      const modes = availableGpuModes();
      const gpu = modes.some((m) => m === 'webgl2' || m === 'webgl' || m === 'headlessgl');
      return [...(gpu ? ['gpu.js:gpu'] : []), 'gpu.js:best', ...modes.map((mode) => `gpu.js:${mode}`)];
    },
    unavailable: (variant) => {
      if (variant === undefined || !(GPU_VARIANTS as readonly string[]).includes(variant))
        return `name a gpu.js mode: 'gpu.js:<mode>' with mode ${GPU_VARIANTS.join(', ')}`;
      const modes = availableGpuModes();
      if (variant === 'gpu') return modes.some((m) => m === 'webgl2' || m === 'webgl' || m === 'headlessgl') ? undefined : 'no GPU mode of gpu.js runs here';
      return variant === 'best' || modes.includes(variant as GpuMode) ? undefined : `gpu.js mode ${variant} does not run here (available: ${modes.join(', ')})`;
    },
    open: (variant) => Promise.resolve({ backend: createGpuBackend({ mode: variant as GpuMode | 'gpu' | 'best' }), close: () => {} }),
  },
];

function entryOf(name: string): { entry: BackendEntry; variant: string | undefined } {
  const colon = name.indexOf(':');
  const family = colon < 0 ? name : name.slice(0, colon);
  const entry = BACKENDS.find((e) => e.name === family);
  if (!entry) throw new InvalidArgumentError(`unknown backend "${name}"; choose from ${backendNames().join(', ')}`);
  return { entry, variant: colon < 0 ? undefined : name.slice(colon + 1) };
}

/** Every backend name that runs here, variants included. */
export function backendNames(): string[] {
  return BACKENDS.flatMap((entry) => entry.names());
}

/** Why the named backend cannot run here, or `undefined` when it can; throws on a name nothing registered answers to. */
export function backendUnavailable(name: string): string | undefined {
  const { entry, variant } = entryOf(name);
  return entry.unavailable(variant);
}

/** Starts the named backend ('cpu', 'wasm', 'wasm:1', 'gpu.js:webgl2', …); a typed error says why when it cannot run here. *
 * @example
 * ```ts
 * import { backendNames, openBackend } from '@almora/backends';
 * import { loraGradients, syntheticProblem } from '@almora/lora';
 * import { Rng } from '@almora/tensor';
 *
 * console.log(backendNames()); // what runs here, e.g. [ 'cpu', 'wasm', 'wasm:1', 'gpu.js:webasm', … ]
 * const { backend, close } = await openBackend('wasm');
 * const problem = syntheticProblem({ length: 2048, d: 8, rank: 2, targets: ['q', 'v'], gamma: 0.5 }, new Rng(1));
 * console.log(loraGradients(problem, { backend }).report.backend);
 * close();
 * ```
 */
export async function openBackend(name: string): Promise<OpenBackend> {
  const { entry, variant } = entryOf(name);
  const why = entry.unavailable(variant);
  if (why !== undefined) throw new InvalidArgumentError(`backend "${name}" cannot run here: ${why}`);
  return entry.open(variant);
}
