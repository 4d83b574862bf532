// Runs in headless Chromium, on a cross-origin-isolated page: the page starts this same script as a
// module Web Worker (a page's main thread may not block, which the kernels' threads need), and the
// worker runs the conformance kit on the wasm backend with every core.
import { gradientChecks, primitiveChecks, tallChecks } from '@almora/conformance';
import { createWasmBackend, threadSupport } from '../../src/index.js';

interface Outcome {
  backend: string;
  threads: number;
  isolated: boolean;
  checks: { name: string; deviation: number; tolerance: number; seconds: number }[];
}

declare global {
  interface Window {
    runConformance(): Promise<Outcome | { error: string }>;
  }
}

async function conformance(): Promise<Outcome> {
  const backend = await createWasmBackend();
  const checks = [
    ...(await primitiveChecks(backend, 'float64')),
    ...(await primitiveChecks(backend, 'float32')),
    ...(await tallChecks(backend)),
    ...(await gradientChecks(backend)),
  ];
  const threads = backend.threads;
  backend.close();
  return { backend: backend.name, threads, isolated: threadSupport().available, checks };
}

if (typeof window === 'undefined') {
  conformance().then(
    (outcome) => postMessage(outcome),
    (error: unknown) => postMessage({ error: error instanceof Error ? error.message : String(error) }),
  );
} else {
  window.runConformance = () =>
    new Promise((resolve) => {
      const worker = new Worker('/entry.js', { type: 'module' });
      worker.onmessage = (event: MessageEvent<Outcome | { error: string }>) => resolve(event.data);
      worker.onerror = (event) => resolve({ error: event.message });
    });
}
