// Runs in headless Chromium: the conformance checks on gpu.js's webgl2 and webgpu modes.
import { fromFlat } from '@almora/tensor';
import { createGpuBackend, webgpuAvailable } from '../../src/index.js';
import { gradientChecks, primitiveChecks, tallChecks } from '@almora/conformance';

declare global {
  interface Window {
    runConformance(
      mode: 'webgl2' | 'webgpu',
    ): Promise<{ backend: string; onDevice: boolean; checks: { name: string; deviation: number; tolerance: number }[] } | { unavailable: string }>;
  }
}

window.runConformance = async (mode) => {
  if (mode === 'webgpu' && !(await webgpuAvailable())) return { unavailable: 'no WebGPU adapter in this Chromium' };
  const backend = createGpuBackend({ mode });
  // Whole gradients first, on fresh kernels: WebGPU once went wrong when a kernel's first call
  // (which builds it) overlapped a call of another size.
  const gradients = await gradientChecks(backend);
  // gpu.js degrades to its CPU kernels on some failures; on the device, results are textures or
  // buffers, never plain arrays.
  const probe = backend.affine(backend.upload(fromFlat(1, 2, [1, 2])), 2);
  const onDevice = !((await probe.data) instanceof Float32Array);
  return { backend: backend.name, onDevice, checks: [...gradients, ...(await primitiveChecks(backend)), ...(await tallChecks(backend))] };
};
