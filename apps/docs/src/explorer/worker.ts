// The explorer's Web Worker: long computations here never freeze the page, and a worker may block,
// which the wasm backend's threads need.
import { openBackend } from '@almora/backends';
import { createGpuBackend, webgpuAvailable } from '@almora/gpu';
import { cpuBackend } from '@almora/kernels';
import type { Backend } from '@almora/tensor';
import { type DiagramCell, type DiagramSpec, explore, type ExplorerParams, phaseDiagram, STAGES } from './compute.js';

/** Where to compute: 'wasm': WebAssembly SIMD, float64 (the CPU where it cannot run); 'gpu': the best GPU, float32 (the CPU where there is none); 'cpu'. */
export type BackendChoice = 'wasm' | 'gpu' | 'cpu';

/** A request from the page: one point, a phase diagram, or stopping the diagram that runs. */
export type ExploreRequest =
  { kind: 'point'; params: ExplorerParams; backend: BackendChoice } | { kind: 'diagram'; spec: DiagramSpec; backend: BackendChoice } | { kind: 'cancel' };

/** What the worker posts back. */
export type ExploreMessage =
  | { type: 'ready'; wasm: string | undefined; gpu: string | undefined }
  | { type: 'stage'; stage: string; index: number }
  | { type: 'result'; result: Awaited<ReturnType<typeof explore>> }
  | { type: 'cell'; cell: DiagramCell }
  | { type: 'diagram'; cells: number; cancelled: boolean; backend: string }
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

let cancelled = false;

scope.onmessage = async (event) => {
  const request = event.data;
  if (request.kind === 'cancel') {
    cancelled = true;
    return;
  }
  try {
    const device = (request.backend === 'wasm' ? await wasm : request.backend === 'gpu' ? await gpu : undefined) ?? cpuBackend;
    if (request.kind === 'point') {
      const result = await explore(request.params, device, (stage) => scope.postMessage({ type: 'stage', stage, index: STAGES.indexOf(stage) }));
      scope.postMessage({ type: 'result', result });
    } else {
      cancelled = false;
      const cells = await phaseDiagram(
        request.spec,
        device,
        (cell) => scope.postMessage({ type: 'cell', cell }),
        () => cancelled,
      );
      scope.postMessage({ type: 'diagram', cells: cells.length, cancelled, backend: device.name });
    }
  } catch (error) {
    scope.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  }
};
