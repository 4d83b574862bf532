import { createRequire } from 'node:module';
import path from 'node:path';
// The union package, not tfjs-core alone: only it registers the gradients tf.grads needs.
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

/** The tfjs backends almora is compared with: its pure-JS cpu backend and its SIMD WebAssembly backend. */
export type TfjsBackend = 'cpu' | 'wasm';

let wasmPathSet = false;

/**
 * Makes `backend` tfjs's active backend. The wasm binaries are read from the installed
 * @tensorflow/tfjs-backend-wasm package (never downloaded).
 */
export async function useTfjs(backend: TfjsBackend): Promise<typeof tf> {
  if (backend === 'wasm' && !wasmPathSet) {
    const require = createRequire(import.meta.url);
    setWasmPaths(`${path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'))}/dist/`);
    wasmPathSet = true;
  }
  const ok = await tf.setBackend(backend);
  if (!ok || tf.getBackend() !== backend) throw new Error(`tfjs backend ${backend} failed to initialise`);
  return tf;
}

/**
 * Reads a result back and frees it. Measured here: wrapping the same call in tf.tidy made
 * tfjs-wasm's matMul ~10× slower (1.7 vs 28 GFLOP/s at n=512), so peers are timed this way.
 */
export function readAndDispose(t: tf.Tensor): ArrayLike<number> {
  const data = t.dataSync();
  t.dispose();
  return data;
}

export { tf };
