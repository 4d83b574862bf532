import { GPU } from 'gpu.js';
import { BackendError } from '@almora/tensor';
import { GpuBackend, type GpuMode } from './gpu-backend.js';

/** GPU modes with synchronous read-back, best first: what 'gpu' and 'best' choose from. */
const GPU_MODES = ['webgl2', 'webgl', 'headlessgl'] as const satisfies readonly GpuMode[];
/** gpu.js's CPU fallbacks, best first. */
const FALLBACK_MODES = ['webasm', 'cpu'] as const satisfies readonly GpuMode[];

/** Options of {@link createGpuBackend}. */
export interface GpuBackendOptions {
  /**
   * A gpu.js mode; 'gpu' (default) takes the best GPU mode with synchronous read-back and throws
   * {@link BackendError} if there is none; 'best' falls back to webasm, then cpu, and says so in
   * the backend's name. 'webgpu' is never chosen for you: it reads back only asynchronously, so it
   * serves `loraGradientsAsync`, not `loraGradients`.
   */
  mode?: GpuMode | 'gpu' | 'best';
}

/**
 * The gpu.js modes that can run here, GPU modes first. 'webgpu' is listed where the API exists
 * (`navigator.gpu`); whether an adapter answers shows at the first kernel.
 */
export function availableGpuModes(): GpuMode[] {
  const supported: Record<GpuMode, boolean> = {
    webgpu: GPU.isWebGPUSupported,
    webgl2: GPU.isWebGL2Supported,
    webgl: GPU.isWebGLSupported,
    headlessgl: GPU.isHeadlessGLSupported,
    webasm: GPU.isWebAssemblySupported,
    cpu: true,
  };
  return (['webgpu', ...GPU_MODES, ...FALLBACK_MODES] as const).filter((mode) => supported[mode]);
}

/**
 * The mode `requested` takes among the `available` ones: 'gpu' the best GPU mode with synchronous
 * read-back, 'best' that or a CPU fallback — never 'webgpu', which only an explicit request gets
 * (the synchronous entry points refuse it) — and a named mode itself if available.
 */
export function chooseMode(requested: GpuMode | 'gpu' | 'best', available: readonly GpuMode[]): GpuMode | undefined {
  const among = (modes: readonly GpuMode[]) => modes.find((mode) => available.includes(mode));
  if (requested === 'gpu') return among(GPU_MODES);
  if (requested === 'best') return among([...GPU_MODES, ...FALLBACK_MODES]);
  return available.includes(requested) ? requested : undefined;
}

/**
 * A {@link GpuBackend}: the primitives of `Backend` as gpu.js kernels, float32, chained through
 * textures without reading back between steps. Pass it as `backend` to `loraGradients`.
 */
export function createGpuBackend(options: GpuBackendOptions = {}): GpuBackend {
  const requested = options.mode ?? 'gpu';
  const available = availableGpuModes();
  const mode = chooseMode(requested, available);
  if (!mode) {
    const what = requested === 'gpu' ? 'no GPU mode (webgl2, webgl, headlessgl)' : `gpu.js mode '${requested}'`;
    throw new BackendError(
      `${what} is available here (available: ${available.join(', ')}); in Node, headlessgl needs the optional 'gl' package built and an X display; use { mode: 'best' } to fall back to webasm or cpu`,
    );
  }
  const gpu = new GPU({ mode });
  // Matrices live in textures only in the GL modes.
  const limit = mode === 'webgl2' || mode === 'webgl' || mode === 'headlessgl' ? maxTextureSize(gpu) : Number.POSITIVE_INFINITY;
  return new GpuBackend(mode, gpu, limit);
}

function maxTextureSize(gpu: GPU): number {
  const context = (gpu as unknown as { context?: { getParameter(name: number): number; MAX_TEXTURE_SIZE: number } }).context;
  return context ? context.getParameter(context.MAX_TEXTURE_SIZE) : 4096;
}

/** Whether a WebGPU adapter actually answers here (the API can exist without one). */
export async function webgpuAvailable(): Promise<boolean> {
  try {
    return GPU.isWebGPUSupported && (await GPU.isWebGPUAvailable());
  } catch {
    return false;
  }
}
