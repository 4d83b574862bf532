// Runs in headless Chromium: the conformance checks on gpu.js's webgl2 mode.
import { fromFlat } from '@almora/tensor';
import { createGpuBackend } from '../../src/index.js';
import { gradientChecks, primitiveChecks, tallChecks } from '../conformance.js';

declare global {
  interface Window {
    runConformance(): { backend: string; onTextures: boolean; checks: { name: string; deviation: number; tolerance: number }[] };
  }
}

window.runConformance = () => {
  const backend = createGpuBackend({ mode: 'webgl2' });
  // gpu.js degrades to its CPU kernels on some failures; on the GPU, results are textures.
  const probe = backend.affine(backend.upload(fromFlat(1, 2, [1, 2])), 2);
  const onTextures = !(probe.data instanceof Float32Array);
  return { backend: backend.name, onTextures, checks: [...primitiveChecks(backend), ...tallChecks(backend), ...gradientChecks(backend)] };
};
