export { GpuBackend, type GpuMatrix, type GpuMode } from './gpu-backend.js';
export { createGpuBackend, availableGpuModes, type GpuBackendOptions } from './create.js';
