import { InvalidArgumentError, type Matrix, transpose, zeros } from '@almora/tensor';
import { checkAdapterGradients, checkInit, distinctIndices, type LoraMethod, type ModuleMethodState } from './method.js';

/** Options of {@link sbora}. */
export interface SboraOptions {
  /**
   * 'FA' (default): A is fixed to r rows of the identity and B trains — the update touches only
   * r input columns of W. 'FB': B is fixed to r columns of the identity and A trains — only r
   * output rows of W change.
   */
  variant?: 'FA' | 'FB';
  /**
   * The r standard-basis indices (input columns for FA, output rows for FB), distinct; by default
   * r indices drawn uniformly without replacement from the module's rng.
   */
  indices?: readonly number[];
}

/** The r×n matrix whose row k is the standard basis vector e_{indices[k]}. */
function standardBasisRows(indices: readonly number[], n: number): Matrix {
  const m = zeros(indices.length, n);
  indices.forEach((index, k) => m.set(k, index, 1));
  return m;
}

/**
 * SBoRA, standard-basis LoRA (Po et al., "SBoRA: Low-Rank Adaptation with
 * Regional Weight Updates", 2024, arXiv 2407.05413). One factor is fixed to standard basis
 * vectors, the other trains from zero:
 *
 *   SBoRA-FA:  A = [e_{i₁}; …; e_{i_r}] (r×in, fixed),  B₀ = 0 trains:
 *              ΔW = s·B·A is zero outside input columns i₁…i_r (ΔW[:, i_k] = s·B[:, k]);
 *   SBoRA-FB:  B = [e_{o₁} … e_{o_r}] (out×r, fixed),   A₀ = 0 trains:
 *              ΔW is zero outside output rows o₁…o_r (ΔW[o_k, :] = s·A[k, :]).
 *
 * Exact gradients: ∂B = ∂lora_B (FA), ∂A = ∂lora_A (FB). For a square module that is r·d
 * parameters, half of plain LoRA's 2·r·d. How the paper picks the indices (we draw them at
 * random unless given) is not essential to the method's definition.
 */
export function sbora(options: SboraOptions = {}): LoraMethod {
  const { variant = 'FA' } = options;
  if (variant !== 'FA' && variant !== 'FB') throw new InvalidArgumentError(`sbora: variant must be 'FA' or 'FB', got ${String(variant)}`);
  return {
    name: 'sbora',
    description: `SBoRA-${variant}: ${variant === 'FA' ? 'A' : 'B'} fixed to standard basis vectors, only ${variant === 'FA' ? 'B' : 'A'} trains`,
    needsInitialGradient: false,
    needsWeightGradient: false,
    init(init): ModuleMethodState {
      const method = `sbora-${variant}`;
      const { weight, scaling } = checkInit(method, init);
      const n = variant === 'FA' ? weight.cols : weight.rows;
      const indices = options.indices ? [...options.indices] : distinctIndices(n, init.r, init.rng);
      if (indices.length !== init.r || new Set(indices).size !== init.r || indices.some((i) => !Number.isInteger(i) || i < 0 || i >= n)) {
        throw new InvalidArgumentError(`${method}: indices must be ${init.r} distinct integers in [0, ${n}), got [${indices.join(', ')}]`);
      }
      if (variant === 'FA') {
        const lora_A = standardBasisRows(indices, weight.cols);
        const lora_B = zeros(weight.rows, init.r);
        const adapter = () => ({ lora_A, lora_B });
        return {
          parameters: [lora_B],
          scaling,
          adapter,
          gradients: (g) => [checkAdapterGradients(method, g, adapter()).lora_B],
        };
      }
      const lora_B = transpose(standardBasisRows(indices, weight.rows));
      const lora_A = zeros(init.r, weight.cols);
      const adapter = () => ({ lora_A, lora_B });
      return {
        parameters: [lora_A],
        scaling,
        adapter,
        gradients: (g) => [checkAdapterGradients(method, g, adapter()).lora_A],
      };
    },
  };
}
