import { PLAIN_KERNELS, SHARED_KERNELS } from './generated/kernels.js';

/** Every kernel the module exports, by the index the worker threads are told. */
export const KERNEL_NAMES = [
  'matmulF64',
  'matmulF32',
  'matmulTNF64',
  'matmulTNF32',
  'transposeF64',
  'transposeF32',
  'zipF64',
  'zipF32',
  'mapF64',
  'mapF32',
  'scaleRowsF64',
  'scaleRowsF32',
  'rowSumsF64',
  'rowSumsF32',
  'colSumsF64',
  'colSumsF32',
  'triangleF64',
  'triangleF32',
  'faceSplitF64',
  'faceSplitF32',
  'faceSplitReduceF64',
  'faceSplitReduceF32',
  'productFeaturesF64',
  'productFeaturesF32',
  'productFeaturesBackwardF64',
  'productFeaturesBackwardF32',
  'softmaxRowsF64',
  'softmaxRowsF32',
  'scoresGradientF64',
  'scoresGradientF32',
  'rowMaxF64',
  'rowMaxF32',
] as const;

/** A kernel's name without its dtype suffix. */
export type KernelFamily = (typeof KERNEL_NAMES)[number] extends `${infer F}F64` | `${infer F}F32` ? F : never;

/** The module's exports: each kernel takes numbers (pointers, sizes, scalars) and ends with its range [start, end). */
export type KernelExports = Record<(typeof KERNEL_NAMES)[number], (...args: number[]) => void> & { staticEnd(): number };

function decode(base64: string): Uint8Array {
  if (typeof atob === 'function') return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Uint8Array(Buffer.from(base64, 'base64'));
}

/** Compiles the kernels for plain or shared memory. */
export function compileKernels(shared: boolean): Promise<WebAssembly.Module> {
  return WebAssembly.compile(decode(shared ? SHARED_KERNELS : PLAIN_KERNELS) as BufferSource);
}

/** Whether this engine runs 128-bit SIMD (every current browser and Node 16+): a tiny module that uses it validates. */
export function simdSupported(): boolean {
  // (module (func (result v128) i32.const 0 i32x4.splat))
  const probe = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 8, 1, 6, 0, 65, 0, 253, 17, 11]);
  return WebAssembly.validate(probe);
}
