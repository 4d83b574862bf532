// Bundled into a page that headless Chromium opens: measures gpu.js's browser modes there.
import { availableGpuModes, createGpuBackend, type GpuMode, webgpuAvailable } from '@almora/gpu';
import { type BackendMeasurement, type BackendSizes, measureBackends } from './measure.js';

/** What the page reports back to the suite. */
export interface PageResult {
  renderer: string;
  measurements: BackendMeasurement[];
  skipped: string[];
}

declare global {
  interface Window {
    measureInBrowser(sizes: BackendSizes, repeats: number, seed: number): Promise<PageResult>;
  }
}

function renderer(): string {
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return 'no WebGL2 context';
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  return String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
}

window.measureInBrowser = async (sizes, repeats, seed) => {
  const candidates: GpuMode[] = ['webgpu', 'webgl2', 'webgl'];
  const hasWebGpu = await webgpuAvailable();
  const modes = candidates.filter((m) => (m === 'webgpu' ? hasWebGpu : availableGpuModes().includes(m)));
  const skipped = candidates.filter((m) => !modes.includes(m)).map((m) => `gpu.js ${m}: not available in this Chromium`);
  const cases = modes.map((mode) => ({ label: `gpu.js ${mode} (Chromium)`, backend: createGpuBackend({ mode }), dtype: 'float64' as const }));
  return { renderer: renderer(), measurements: await measureBackends(cases, sizes, repeats, seed), skipped };
};
