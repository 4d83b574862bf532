import { BackendError, type Backend, type DeviceMatrix, type DType, type Matrix, toDType } from '@almora/tensor';

/** One head's projected inputs, as handles of the backend that computes it. */
export interface HeadInput<T extends DeviceMatrix = Matrix> {
  /** Queries Q (L_q×d_h). */
  q: T;
  /** Keys K (L_k×d_h). */
  k: T;
  /** Values V (L_k×d_h). */
  v: T;
  /** Target Y (L_q×d_h). */
  y: T;
  /** Softmax temperature β. */
  beta: number;
  /** Mask keys j > i. */
  causal: boolean;
}

/** Output and gradients of one attention head on one sequence: what every path computes. */
export interface HeadResult<T extends DeviceMatrix = Matrix> {
  /** O = f·V (L_q×d_h). */
  output: T;
  /** ∂loss/∂Q (L_q×d_h). */
  dq: T;
  /** ∂loss/∂K (L_k×d_h). */
  dk: T;
  /** ∂loss/∂V (L_k×d_h). */
  dv: T;
}

/**
 * Reads a handle back now, in the host's dtype (a float32 device's results are widened); the
 * synchronous entry points need a backend that can.
 */
export function readNow<T extends DeviceMatrix>(backend: Backend<T>, m: T, dtype: DType): Matrix {
  if (!backend.readSync) {
    throw new BackendError(`the ${backend.name} backend reads back only asynchronously; loraGradients needs one with readSync`);
  }
  const host = backend.readSync(m);
  return host.dtype === dtype ? host : toDType(host, dtype);
}

/** A rows×1 column of ones in the precision of `like`. */
export function onesColumn<T extends DeviceMatrix>(backend: Backend<T>, rows: number, like: T): T {
  return backend.affine(backend.zeros(rows, 1, like), 0, 1);
}
