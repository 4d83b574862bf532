// The explorer's Web Worker: long computations here never freeze the page, and a worker may block,
// which the wasm backend's threads need.
import { openBackend } from '@almora/backends';
import { createGpuBackend, webgpuAvailable } from '@almora/gpu';
import { cpuBackend } from '@almora/kernels';
import type { Backend } from '@almora/tensor';
import { explore, type ExplorerParams, STAGES } from './compute.js';

/** A request from the page. */
export interface ExploreRequest {
  params: ExplorerParams;
  /** 'wasm': WebAssembly SIMD, float64 (the CPU where it cannot run); 'gpu': the best GPU, float32 (the CPU where there is none); 'cpu'. */
  backend: 'wasm' | 'gpu' | 'cpu';
}

/** What the worker posts back. */
export type ExploreMessage =
  | { type: 'ready'; wasm: string | undefined; gpu: string | undefined }
  | { type: 'stage'; stage: string; index: number }
  | { type: 'result'; result: Awaited<ReturnType<typeof explore>> }
  | { type: 'error'; message: string };

const scope = self as unknown as { postMessage(message: ExploreMessage): void; onmessage: ((event: MessageEvent<ExploreRequest>) => Promise<void>) | null };

/** The best GPU this browser offers: WebGPU, else WebGL2/WebGL, else none. */
async function gpuBackend(): Promise<Backend | undefined> {
  if (await webgpuAvailable()) return createGpuBackend({ mode: 'webgpu' });
  try {
    return createGpuBackend({ mode: 'gpu' });
  } catch {
    return undefined;
  }
}

/** The wasm backend on every core the page allows (one without cross-origin isolation), or none. */
async function wasmBackend(): Promise<Backend | undefined> {
  try {
    return (await openBackend('wasm')).backend;
  } catch {
    return undefined;
  }
}

const gpu = gpuBackend();
const wasm = wasmBackend();
void Promise.all([wasm, gpu]).then(([w, g]) => scope.postMessage({ type: 'ready', wasm: w?.name, gpu: g?.name }));

scope.onmessage = async (event) => {
  const { params, backend } = event.data;
  try {
    const device = (backend === 'wasm' ? await wasm : backend === 'gpu' ? await gpu : undefined) ?? cpuBackend;
    const result = await explore(params, device, (stage) => scope.postMessage({ type: 'stage', stage, index: STAGES.indexOf(stage) }));
    scope.postMessage({ type: 'result', result });
  } catch (error) {
    scope.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  }
};
