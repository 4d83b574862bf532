import { BackendError, type Backend, type DeviceMatrix, type DType, type Matrix, toDType } from '@almora/tensor';

/** One head's projected inputs, as handles of the backend that computes it. */
export interface HeadInput<T extends DeviceMatrix = Matrix> {
  /** Queries Q (L_q×d_h). */
  q: T;
  /** Keys K (L_k×d_h). */
  k: T;
  /** Values V (L_k×d_v). */
  v: T;
  /** Softmax temperature β. */
  beta: number;
  /** Mask keys j > i. */
  causal: boolean;
}

/** What every backward path of one head computes from an upstream gradient ∂O. */
export interface HeadGradients<T extends DeviceMatrix = Matrix> {
  /** ∂loss/∂Q (L_q×d_h). */
  dq: T;
  /** ∂loss/∂K (L_k×d_h). */
  dk: T;
  /** ∂loss/∂V (L_k×d_v). */
  dv: T;
}

/** A read-back an algorithm waits for: a handle, its backend, and the host dtype wanted. */
export interface ReadRequest {
  backend: Backend;
  handle: DeviceMatrix;
  dtype: DType;
}

/**
 * An algorithm written once for synchronous and asynchronous devices: a generator that yields
 * each {@link ReadRequest} and is resumed with the host matrix. {@link runNow} answers at once
 * (the CPU, gpu.js's sync modes), {@link runLater} awaits (WebGPU).
 */
export type Reading<R> = Generator<ReadRequest, R, Matrix>;

/** Reads `m` back in `dtype` (a float32 device's results are widened), whenever the driver can. */
export function* readBack<T extends DeviceMatrix>(backend: Backend<T>, m: T, dtype: DType): Reading<Matrix> {
  return yield { backend: backend as unknown as Backend, handle: m, dtype };
}

function widened(host: Matrix, dtype: DType): Matrix {
  return host.dtype === dtype ? host : toDType(host, dtype);
}

/** Reads a handle back now; the synchronous entry points need a backend that can. */
export function readNow<T extends DeviceMatrix>(backend: Backend<T>, m: T, dtype: DType): Matrix {
  if (!backend.readSync) {
    throw new BackendError(
      `the ${backend.name} backend reads back only asynchronously: use the async entry point (attentionAsync, loraAttentionAsync, loraGradientsAsync)`,
    );
  }
  return widened(backend.readSync(m), dtype);
}

/**
 * Drives a {@link Reading} to its result, answering every read synchronously. A failed read is
 * thrown into the algorithm, so its cleanup (finally blocks) runs before the error reaches the caller.
 */
export function runNow<R>(reading: Reading<R>): R {
  let step = reading.next();
  while (!step.done) {
    let host: Matrix;
    try {
      host = readNow(step.value.backend, step.value.handle, step.value.dtype);
    } catch (error) {
      step = reading.throw(error);
      continue;
    }
    step = reading.next(host);
  }
  return step.value;
}

/** Drives a {@link Reading} to its result, awaiting every read; a failed read is thrown into the algorithm like {@link runNow}'s. */
export async function runLater<R>(reading: Reading<R>): Promise<R> {
  let step = reading.next();
  while (!step.done) {
    const { backend, handle, dtype } = step.value;
    let host: Matrix;
    try {
      host = widened(await backend.read(handle), dtype);
    } catch (error) {
      step = reading.throw(error);
      continue;
    }
    step = reading.next(host);
  }
  return step.value;
}

/** A rows×1 column of ones in the precision of `like`. */
export function onesColumn<T extends DeviceMatrix>(backend: Backend<T>, rows: number, like: T): T {
  return backend.affine(backend.zeros(rows, 1, like), 0, 1);
}
