// The explorer's Web Worker: long computations here never freeze the page.
import { createGpuBackend, webgpuAvailable } from '@almora/gpu';
import { type Backend, cpuBackend } from '@almora/tensor';
import { explore, type ExplorerParams, STAGES } from './compute.js';

/** A request from the page. */
export interface ExploreRequest {
  params: ExplorerParams;
  backend: 'auto' | 'cpu';
}

/** What the worker posts back. */
export type ExploreMessage =
  | { type: 'ready'; gpu: string | undefined }
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

const gpu = gpuBackend();
void gpu.then((found) => scope.postMessage({ type: 'ready', gpu: found?.name }));

scope.onmessage = async (event) => {
  const { params, backend } = event.data;
  try {
    const device = backend === 'auto' ? ((await gpu) ?? cpuBackend) : cpuBackend;
    const result = await explore(params, device, (stage) => scope.postMessage({ type: 'stage', stage, index: STAGES.indexOf(stage) }));
    scope.postMessage({ type: 'result', result });
  } catch (error) {
    scope.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  }
};
