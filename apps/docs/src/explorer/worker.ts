// The explorer's Web Worker: long computations here never freeze the page.
import { createGpuBackend } from '@almora/gpu';
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
  | { type: 'result'; result: ReturnType<typeof explore> }
  | { type: 'error'; message: string };

const scope = self as unknown as { postMessage(message: ExploreMessage): void; onmessage: ((event: MessageEvent<ExploreRequest>) => void) | null };

function gpuBackend(): Backend | undefined {
  try {
    return createGpuBackend({ mode: 'gpu' });
  } catch {
    return undefined;
  }
}

const gpu = gpuBackend();
scope.postMessage({ type: 'ready', gpu: gpu?.name });

scope.onmessage = (event) => {
  const { params, backend } = event.data;
  try {
    const result = explore(params, backend === 'auto' && gpu ? gpu : cpuBackend, (stage) => scope.postMessage({ type: 'stage', stage, index: STAGES.indexOf(stage) }));
    scope.postMessage({ type: 'result', result });
  } catch (error) {
    scope.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  }
};
