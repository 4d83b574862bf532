/**
 * The gpu.js backend of almora: every Backend primitive as a float32 gpu.js kernel (WebGL2/WebGL in browsers, headless-gl in Node, webasm and cpu fallbacks).
 *
 * @packageDocumentation
 * @module @almora/gpu
 */
export { GpuBackend, type GpuMatrix, type GpuMode } from './gpu-backend.js';
export { createGpuBackend, availableGpuModes, webgpuAvailable, type GpuBackendOptions } from './create.js';
