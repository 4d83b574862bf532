import { AlmoraError } from '@almora/tensor';

/**
 * The fast (low-rank) path was asked for where it cannot give a meaningful answer: e.g. the
 * approximate softmax row sums are not all positive. The message says which norms are too large.
 * Its `code` is 'OUT_OF_REGIME'.
 */
export class OutOfRegimeError extends AlmoraError {
  constructor(message: string) {
    super('OUT_OF_REGIME', message);
  }
}
