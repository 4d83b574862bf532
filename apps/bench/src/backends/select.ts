import { createGpuBackend, type GpuMode } from '@almora/gpu';
import { type Backend, cpuBackend } from '@almora/tensor';

/** Backend names the bench accepts: `cpu`, or `gpu.js:<mode>` with a gpu.js mode, `gpu` or `best`. */
export const BACKEND_NAMES = ['cpu', ...(['gpu', 'best', 'webgl2', 'webgl', 'headlessgl', 'webasm', 'cpu'] as const).map((m) => `gpu.js:${m}`)];

/** The backend a `--backend` value names; throws, listing the names, on anything else. */
export function backendByName(name: string): Backend {
  if (name === 'cpu') return cpuBackend;
  const mode = name.startsWith('gpu.js:') ? name.slice('gpu.js:'.length) : undefined;
  if (mode === undefined || !BACKEND_NAMES.includes(name)) throw new Error(`unknown backend "${name}"; choose from ${BACKEND_NAMES.join(', ')}`);
  return createGpuBackend({ mode: mode as GpuMode | 'gpu' | 'best' });
}

